package sqsfifo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/message"
)

// RedriveMatching moves up to limit dead letters that match (all when match is nil)
// back to the queue, oldest first per conversation, marked redriven, and returns how
// many it moved. Each is sent before it is deleted, with the dead letter's id as
// deduplication id, so a crash in between neither loses it nor, within five minutes,
// doubles it. The dead letters that do not match are made visible again at the end.
func (q *Queue) RedriveMatching(ctx context.Context, limit int, match func(events.SQSMessage) bool) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	moved := 0
	var skipped []string
	defer func() {
		for _, r := range skipped {
			_ = q.changeVisibility(context.WithoutCancel(ctx), q.deadURL, r, 0)
		}
	}()
	for moved < limit {
		msgs, err := q.receive(ctx, q.deadURL, 10, 0, time.Minute)
		if err != nil || len(msgs) == 0 {
			return moved, err
		}
		for _, m := range msgs {
			if moved == limit || (match != nil && !match(m)) {
				skipped = append(skipped, m.ReceiptHandle)
				continue
			}
			if err := q.redriveOne(ctx, m); err != nil {
				return moved, err
			}
			moved++
		}
	}
	return moved, nil
}

func (q *Queue) redriveOne(ctx context.Context, m events.SQSMessage) error {
	attrs := map[string]types.MessageAttributeValue{}
	for k, v := range m.MessageAttributes {
		if !slices.Contains(deadLetterAttrs, k) {
			attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: v.StringValue}
		}
	}
	attrs[message.AttrRedriven] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("true")}
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &q.url, MessageBody: aws.String(m.Body), MessageGroupId: aws.String(m.Attributes["MessageGroupId"]),
		MessageDeduplicationId: aws.String("redrive-" + m.MessageId), MessageAttributes: attrs,
	})
	if err != nil {
		return fmt.Errorf("redrive message %s: %w", m.MessageId, err)
	}
	if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.deadURL, ReceiptHandle: aws.String(m.ReceiptHandle)}); err != nil {
		return fmt.Errorf("delete dead letter %s: %w", m.MessageId, err)
	}
	return nil
}
