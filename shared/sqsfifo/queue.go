// Package sqsfifo is the SQS adapter: the FIFO delivery queue and its dead-letter
// queue. Bot messages are sent in batches of up to 10 with the conversation as
// MessageGroupId and the webhook id as MessageDeduplicationId, so a redone turn's
// copies are dropped by SQS within its five-minute deduplication window.
package sqsfifo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
)

// Client is the part of the SQS API the queue uses.
type Client interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Limits of one SendMessageBatch call.
const (
	maxBatchEntries = 10
	maxBatchBytes   = 256 << 10
)

// Queue is a FIFO queue and its dead-letter queue.
type Queue struct {
	client  Client
	url     string
	deadURL string
}

// New returns the queue at url with its dead-letter queue at deadURL (which may be
// empty for a producer that never dead-letters).
func New(client Client, url, deadURL string) *Queue {
	return &Queue{client: client, url: url, deadURL: deadURL}
}

// Send implements inbound.Queue: one SendMessageBatch per 10 messages (or 256 KiB).
// Entries SQS reports as failed on its side are sent again; SQS drops the copies of
// any that did get through.
func (q *Queue) Send(ctx context.Context, msgs []message.Delivery) error {
	for start := 0; start < len(msgs); {
		end, size := start, 0
		for end < len(msgs) && end-start < maxBatchEntries {
			n := entrySize(msgs[end])
			if end > start && size+n > maxBatchBytes {
				break
			}
			size += n
			end++
		}
		if err := q.sendBatch(ctx, msgs[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func (q *Queue) sendBatch(ctx context.Context, msgs []message.Delivery) error {
	pending := make(map[string]message.Delivery, len(msgs))
	order := make([]string, len(msgs))
	for i, d := range msgs {
		id := "m" + strconv.Itoa(i)
		pending[id], order[i] = d, id
	}
	for attempt := 1; ; attempt++ {
		in := &sqs.SendMessageBatchInput{QueueUrl: &q.url}
		for _, id := range order {
			d, ok := pending[id]
			if !ok {
				continue
			}
			in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(id), MessageBody: aws.String(string(d.Body)),
				MessageGroupId: aws.String(d.GroupID), MessageDeduplicationId: aws.String(d.ID),
				MessageAttributes: stringAttrs(delivery.Attributes(d)),
			})
		}
		out, err := q.client.SendMessageBatch(ctx, in)
		if err != nil {
			return fmt.Errorf("send %d messages: %w", len(in.Entries), err)
		}
		for _, s := range out.Successful {
			delete(pending, aws.ToString(s.Id))
		}
		if len(pending) == 0 {
			return nil
		}
		var errs []error
		retry := attempt < 3
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("message %s: %s: %s", pending[aws.ToString(f.Id)].ID, aws.ToString(f.Code), aws.ToString(f.Message)))
			retry = retry && !f.SenderFault
		}
		if !retry {
			return fmt.Errorf("send messages: %w", errors.Join(errs...))
		}
	}
}

func entrySize(d message.Delivery) int {
	n := len(d.Body)
	for k, v := range delivery.Attributes(d) {
		n += len(k) + len(v) + len("String")
	}
	return n
}

// Receive receives up to max messages (at most 10), long-polling up to wait (at most 20s).
func (q *Queue) Receive(ctx context.Context, n int, wait time.Duration) ([]events.SQSMessage, error) {
	return q.receive(ctx, q.url, n, wait, 0)
}

func (q *Queue) receive(ctx context.Context, url string, n int, wait, visibility time.Duration) ([]events.SQSMessage, error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    &url,
		MaxNumberOfMessages:         int32(min(max(n, 1), 10)),
		WaitTimeSeconds:             int32(min(wait/time.Second, 20)),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		// The deprecated field too: some emulators read only that one.
		AttributeNames:        []types.QueueAttributeName{types.QueueAttributeNameAll}, //nolint:staticcheck
		MessageAttributeNames: []string{"All"},
	}
	if visibility > 0 {
		in.VisibilityTimeout = int32(seconds(visibility))
	}
	out, err := q.client.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("receive messages: %w", err)
	}
	msgs := make([]events.SQSMessage, 0, len(out.Messages))
	for _, m := range out.Messages {
		e := events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Md5OfBody: aws.ToString(m.MD5OfBody), EventSource: "aws:sqs",
			Attributes: map[string]string{}, MessageAttributes: map[string]events.SQSMessageAttribute{},
		}
		for k, v := range m.Attributes {
			e.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			e.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: v.StringValue, DataType: aws.ToString(v.DataType)}
		}
		msgs = append(msgs, e)
	}
	return msgs, nil
}

// Delete deletes a received message.
func (q *Queue) Delete(ctx context.Context, receipt string) error {
	_, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: &receipt})
	if err != nil {
		return fmt.Errorf("delete message: %w", err)
	}
	return nil
}

// ChangeVisibility implements delivery.Queue, in whole seconds (rounded up) as SQS
// counts them, at most 12 hours.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	return q.changeVisibility(ctx, q.url, receipt, d)
}

func (q *Queue) changeVisibility(ctx context.Context, url, receipt string, d time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &url, ReceiptHandle: &receipt, VisibilityTimeout: int32(seconds(d)),
	})
	if err != nil {
		return fmt.Errorf("change visibility: %w", err)
	}
	return nil
}

func seconds(d time.Duration) int64 {
	return min(int64(math.Ceil(max(d, 0).Seconds())), int64(delivery.MaxVisibility/time.Second))
}

// DeadLetter implements delivery.Queue: a copy goes to the dead-letter queue with the
// reason. The deduplication id is the source message's id, so a retried call after a
// crash does not make a second copy, while a message redriven and failed again does.
func (q *Queue) DeadLetter(ctx context.Context, m events.SQSMessage, reason string, attempts int) error {
	attrs := map[string]string{}
	for k, v := range m.MessageAttributes {
		if v.StringValue != nil {
			attrs[k] = *v.StringValue
		}
	}
	attrs[delivery.AttrFailureReason] = reason
	attrs[delivery.AttrAttempts] = strconv.Itoa(attempts)
	attrs[delivery.AttrFailedAt] = time.Now().UTC().Format(time.RFC3339)
	group := m.Attributes["MessageGroupId"]
	if group == "" {
		group = "ungrouped"
	}
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &q.deadURL, MessageBody: &m.Body, MessageGroupId: &group,
		MessageDeduplicationId: aws.String(m.MessageId), MessageAttributes: stringAttrs(attrs),
	})
	if err != nil {
		return fmt.Errorf("dead-letter message %s: %w", m.MessageId, err)
	}
	return nil
}

// DeadLetters lists up to max dead letters without removing them: it receives them
// briefly and makes them visible again at once.
func (q *Queue) DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error) {
	var out []events.SQSMessage
	for len(out) < limit {
		msgs, err := q.receive(ctx, q.deadURL, limit-len(out), 0, 30*time.Second)
		if err != nil {
			return out, err
		}
		if len(msgs) == 0 {
			break
		}
		out = append(out, msgs...)
	}
	var errs []error
	for i := range out {
		if err := q.changeVisibility(ctx, q.deadURL, out[i].ReceiptHandle, 0); err != nil {
			errs = append(errs, err)
		}
		out[i].ReceiptHandle = ""
	}
	return out, errors.Join(errs...)
}

// Redrive moves up to max dead letters back to the queue, oldest first per
// conversation, and returns how many it moved. Each is sent before it is deleted, with
// the dead letter's id as deduplication id, so a crash in between neither loses it nor,
// within five minutes, doubles it.
func (q *Queue) Redrive(ctx context.Context, limit int) (int, error) {
	moved := 0
	for moved < limit {
		msgs, err := q.receive(ctx, q.deadURL, limit-moved, 0, time.Minute)
		if err != nil || len(msgs) == 0 {
			return moved, err
		}
		for _, m := range msgs {
			attrs := map[string]types.MessageAttributeValue{}
			for k, v := range m.MessageAttributes {
				switch k {
				case delivery.AttrFailureReason, delivery.AttrAttempts, delivery.AttrFailedAt:
				default:
					attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: v.StringValue}
				}
			}
			_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{
				QueueUrl: &q.url, MessageBody: aws.String(m.Body), MessageGroupId: aws.String(m.Attributes["MessageGroupId"]),
				MessageDeduplicationId: aws.String("redrive-" + m.MessageId), MessageAttributes: attrs,
			})
			if err != nil {
				return moved, fmt.Errorf("redrive message %s: %w", m.MessageId, err)
			}
			if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.deadURL, ReceiptHandle: aws.String(m.ReceiptHandle)}); err != nil {
				return moved, fmt.Errorf("delete dead letter %s: %w", m.MessageId, err)
			}
			moved++
		}
	}
	return moved, nil
}

func stringAttrs(a map[string]string) map[string]types.MessageAttributeValue {
	out := make(map[string]types.MessageAttributeValue, len(a))
	for k, v := range a {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}
