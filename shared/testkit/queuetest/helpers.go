package queuetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

func send(t *testing.T, q Queue, j message.Job, resend bool) {
	t.Helper()
	if err := q.Send(context.Background(), j, resend); err != nil {
		t.Fatalf("send %s: %v", j.Ref, err)
	}
}

// sendGroups sends one job to each of n fresh conversations, so a queue that locks
// groups hands all n out at once.
func sendGroups(t *testing.T, q Queue, n int) {
	t.Helper()
	for range n {
		send(t, q, Turns(message.DefaultChannel, 1)[0], false)
	}
}

func receive(t *testing.T, q Queue, n int, wait time.Duration) []events.SQSMessage {
	t.Helper()
	msgs, err := q.Receive(context.Background(), n, wait)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// receiveN receives exactly n messages within 10 seconds, without acking them.
func receiveN(t *testing.T, q Queue, n int) []events.SQSMessage {
	t.Helper()
	var out []events.SQSMessage
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		out = append(out, receive(t, q, min(n-len(out), 10), time.Second)...)
	}
	if len(out) != n {
		t.Fatalf("received %d messages, want %d", len(out), n)
	}
	return out
}

// drain receives and acks n messages within 15 seconds, and returns them in the order
// received.
func drain(t *testing.T, q Queue, n int) []events.SQSMessage {
	t.Helper()
	var out []events.SQSMessage
	deadline := time.Now().Add(15 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		msgs := receive(t, q, 10, time.Second)
		if len(msgs) > 0 {
			ack(t, q, msgs)
		}
		out = append(out, msgs...)
	}
	if len(out) != n {
		t.Fatalf("drained %d messages, want %d", len(out), n)
	}
	return out
}

// none fails the test if a message is received within wait.
func none(t *testing.T, q Queue, wait time.Duration, when string) {
	t.Helper()
	if msgs := receive(t, q, 10, wait); len(msgs) != 0 {
		t.Errorf("received %d %s, want 0: %v", len(msgs), when, ids(msgs))
	}
}

func ack(t *testing.T, q Queue, msgs []events.SQSMessage) {
	t.Helper()
	if err := q.Ack(context.Background(), receipts(msgs)); err != nil {
		t.Fatal(err)
	}
}

func deadLetters(t *testing.T, q Queue, limit int) []events.SQSMessage {
	t.Helper()
	dead, err := q.DeadLetters(context.Background(), limit)
	if err != nil {
		t.Fatal(err)
	}
	return dead
}

func receipts(msgs []events.SQSMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ReceiptHandle
	}
	return out
}

func ids(msgs []events.SQSMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.MessageId
	}
	return out
}

func sameIDs(a, b []events.SQSMessage) bool {
	x, y := ids(a), ids(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// ref is the job's ref, read from the body: a redriven message's deduplication id
// need not be the ref.
func ref(t *testing.T, m events.SQSMessage) string {
	t.Helper()
	j, err := message.DecodeJob([]byte(m.Body))
	if err != nil {
		t.Fatalf("message %s: %v", m.MessageId, err)
	}
	return j.Ref
}

func byRef(t *testing.T, msgs []events.SQSMessage) map[string]events.SQSMessage {
	t.Helper()
	out := map[string]events.SQSMessage{}
	for _, m := range msgs {
		out[ref(t, m)] = m
	}
	return out
}

// groupRefs are the refs of the messages of one group, in the order given.
func groupRefs(t *testing.T, msgs []events.SQSMessage, group string) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		if m.Attributes["MessageGroupId"] == group {
			out = append(out, ref(t, m))
		}
	}
	return out
}

func refsOf(jobs []message.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Ref
	}
	return out
}

// attrs are a message's string attributes.
func attrs(m events.SQSMessage) map[string]string {
	out := map[string]string{}
	for k, v := range m.MessageAttributes {
		if v.StringValue != nil {
			out[k] = *v.StringValue
		}
	}
	return out
}
