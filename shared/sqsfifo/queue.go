// Package sqsfifo is the SQS adapter: the FIFO delivery queue and its dead-letter
// queue. Each accepted message's job is sent with its conversation as MessageGroupId
// and its ref and time (Job.DedupID) as MessageDeduplicationId, so a copy sent again by a replayed request is
// dropped by SQS within its five-minute deduplication window.
package sqsfifo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/message"
)

// Client is the part of the SQS API the queue uses.
type Client interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// maxBatchEntries is the most entries one batch call takes.
const maxBatchEntries = 10

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

// Send implements inbound.Queue with one SendMessage.
func (q *Queue) Send(ctx context.Context, j message.Job, resend bool) error {
	body, err := message.EncodeJob(j)
	if err != nil {
		return err
	}
	attrs := map[string]string{message.AttrKind: j.Kind}
	if resend {
		attrs[message.AttrResend] = "true"
	}
	_, err = q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &q.url, MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(j.ConversationRef), MessageDeduplicationId: aws.String(j.DedupID()),
		MessageAttributes: stringAttrs(attrs),
	})
	if err != nil {
		return fmt.Errorf("send job %s: %w", j.Ref, err)
	}
	return nil
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
		//lint:ignore SA1019 local-aws-sqs returns system attributes only for the deprecated field.
		AttributeNames:        []types.QueueAttributeName{types.QueueAttributeNameAll},
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

// Ack implements delivery.Queue and delivery.Source: DeleteMessageBatch, ten at a
// time.
func (q *Queue) Ack(ctx context.Context, receipts []string) error {
	return q.batch(ctx, receipts, func(ctx context.Context, ids, handles []string) ([]types.BatchResultErrorEntry, error) {
		in := &sqs.DeleteMessageBatchInput{QueueUrl: &q.url}
		for i := range ids {
			in.Entries = append(in.Entries, types.DeleteMessageBatchRequestEntry{Id: &ids[i], ReceiptHandle: &handles[i]})
		}
		out, err := q.client.DeleteMessageBatch(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("delete messages: %w", err)
		}
		return out.Failed, nil
	})
}

// Delay implements delivery.Queue: ChangeMessageVisibilityBatch, in whole seconds
// (rounded up) as SQS counts them, at most 12 hours.
func (q *Queue) Delay(ctx context.Context, receipts []string, d time.Duration) error {
	return q.batch(ctx, receipts, func(ctx context.Context, ids, handles []string) ([]types.BatchResultErrorEntry, error) {
		in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.url}
		for i := range ids {
			in.Entries = append(in.Entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: &ids[i], ReceiptHandle: &handles[i], VisibilityTimeout: int32(seconds(d)),
			})
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("change visibility: %w", err)
		}
		return out.Failed, nil
	})
}

// batch runs call on receipts ten at a time and reports the entries SQS refused.
func (q *Queue) batch(ctx context.Context, receipts []string, call func(ctx context.Context, ids, handles []string) ([]types.BatchResultErrorEntry, error)) error {
	var errs []error
	for start := 0; start < len(receipts); start += maxBatchEntries {
		handles := receipts[start:min(start+maxBatchEntries, len(receipts))]
		ids := make([]string, len(handles))
		for i := range ids {
			ids[i] = "r" + strconv.Itoa(i)
		}
		failed, err := call(ctx, ids, handles)
		if err != nil {
			return err
		}
		for _, f := range failed {
			errs = append(errs, fmt.Errorf("entry %s: %s: %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
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

// maxVisibility is SQS's ceiling for a visibility timeout.
const maxVisibility = 12 * time.Hour

func seconds(d time.Duration) int64 {
	return min(int64(math.Ceil(max(d, 0).Seconds())), int64(maxVisibility/time.Second))
}

// DeadLetter implements delivery.Queue: a copy goes to the dead-letter queue with
// attrs beside the job's own. The deduplication id is the source message's id, so a
// retried call after a crash does not make a second copy, while a job redriven and
// failed again does.
func (q *Queue) DeadLetter(ctx context.Context, m events.SQSMessage, extra map[string]string) error {
	attrs := map[string]string{}
	for k, v := range m.MessageAttributes {
		if v.StringValue != nil {
			attrs[k] = *v.StringValue
		}
	}
	maps.Copy(attrs, extra)
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

// deadLetterAttrs are the attributes a dead letter has and a redriven job has not.
var deadLetterAttrs = []string{message.AttrFailureReason, message.AttrAttempts, message.AttrFailedAt, message.AttrOvertakenBy, message.AttrResend}

// Redrive moves up to limit dead letters back to the queue, oldest first per
// conversation, marked redriven, and returns how many it moved.
func (q *Queue) Redrive(ctx context.Context, limit int) (int, error) {
	return q.RedriveMatching(ctx, limit, nil)
}

func stringAttrs(a map[string]string) map[string]types.MessageAttributeValue {
	out := make(map[string]types.MessageAttributeValue, len(a))
	for k, v := range a {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}
