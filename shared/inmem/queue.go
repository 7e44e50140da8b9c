package inmem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// QueueConfig mirrors the SQS FIFO queue settings of the deployed stack.
type QueueConfig struct {
	VisibilityTimeout time.Duration // default 30s
	MaxReceives       int           // redrive to dead letters after this many receives; 0: never
	DedupWindow       time.Duration // default 5m, as SQS FIFO
}

// Queue is an SQS FIFO queue with its dead-letter queue, in memory.
type Queue struct {
	mu    sync.Mutex
	cfg   QueueConfig
	now   func() time.Time
	main  []*entry
	dead  []*entry
	dedup map[string]time.Time
	// dedupOrder lists the ids in dedup by time sent, to forget them in order.
	dedupOrder []sent
	wake       chan struct{}
}

type entry struct {
	id             string
	group          string
	dedupID        string
	body           string
	attrs          map[string]string
	sentAt         time.Time
	firstReceive   time.Time
	receives       int
	receipt        string
	invisibleUntil time.Time
}

type sent struct {
	id string
	at time.Time
}

// ErrReceipt is returned for a receipt handle that no longer names a received message.
var ErrReceipt = errors.New("receipt handle is not valid")

// NewQueue returns an empty queue.
func NewQueue(cfg QueueConfig) *Queue {
	if cfg.VisibilityTimeout <= 0 {
		cfg.VisibilityTimeout = 30 * time.Second
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 5 * time.Minute
	}
	return &Queue{cfg: cfg, now: time.Now, dedup: map[string]time.Time{}, wake: make(chan struct{})}
}

// SetClock replaces the queue's clock, for tests.
func (q *Queue) SetClock(now func() time.Time) {
	q.mu.Lock()
	q.now = now
	q.mu.Unlock()
}

// Send implements inbound.Queue: a job whose Ref was sent within the deduplication
// window is dropped, as SQS FIFO drops it.
func (q *Queue) Send(ctx context.Context, j message.Job, resend bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	body, err := message.EncodeJob(j)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	if !q.fresh(j.DedupID(), now) {
		return nil
	}
	attrs := map[string]string{message.AttrKind: j.Kind}
	if resend {
		attrs[message.AttrResend] = "true"
	}
	q.main = append(q.main, &entry{id: newID(), group: j.ConversationRef, dedupID: j.DedupID(), body: string(body), attrs: attrs, sentAt: now})
	q.signal()
	return nil
}

func (q *Queue) fresh(dedupID string, now time.Time) bool {
	// Forget ids older than the window, oldest first: the order of sending is the
	// order of expiry, so this costs only what it forgets.
	for len(q.dedupOrder) > 0 && now.Sub(q.dedupOrder[0].at) >= q.cfg.DedupWindow {
		if q.dedup[q.dedupOrder[0].id].Equal(q.dedupOrder[0].at) {
			delete(q.dedup, q.dedupOrder[0].id)
		}
		q.dedupOrder = q.dedupOrder[1:]
	}
	if _, seen := q.dedup[dedupID]; seen {
		return false
	}
	q.dedup[dedupID] = now
	q.dedupOrder = append(q.dedupOrder, sent{dedupID, now})
	return true
}

// signal wakes waiting receivers; called with q.mu held.
func (q *Queue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Receive returns up to max messages, waiting up to wait for the first. As in SQS
// FIFO, a group with a message in flight yields nothing, messages of one group come
// in order, and a message received MaxReceives times goes to the dead letters instead.
func (q *Queue) Receive(ctx context.Context, n int, wait time.Duration) ([]events.SQSMessage, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		q.mu.Lock()
		msgs := q.receive(n)
		wake := q.wake
		q.mu.Unlock()
		if len(msgs) > 0 || wait <= 0 {
			return msgs, nil
		}
		// Poll as well as wait: visibility timeouts expire without a signal.
		tick := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			tick.Stop()
			return nil, nil
		case <-wake:
		case <-tick.C:
		}
		tick.Stop()
	}
}

func (q *Queue) receive(n int) []events.SQSMessage {
	now := q.now()
	busy := map[string]bool{}
	for _, e := range q.main {
		if e.invisibleUntil.After(now) {
			busy[e.group] = true
		}
	}
	var out []events.SQSMessage
	taken := map[string]bool{}
	kept := q.main[:0]
	for _, e := range q.main {
		switch {
		case len(out) >= n, busy[e.group] && !taken[e.group]:
			kept = append(kept, e)
		case q.cfg.MaxReceives > 0 && e.receives >= q.cfg.MaxReceives:
			// The redrive policy: over budget, to the dead letters, unreceived.
			e.invisibleUntil, e.receipt = time.Time{}, ""
			q.dead = append(q.dead, e)
		default:
			e.receives++
			if e.firstReceive.IsZero() {
				e.firstReceive = now
			}
			e.receipt = newID()
			e.invisibleUntil = now.Add(q.cfg.VisibilityTimeout)
			busy[e.group], taken[e.group] = true, true
			out = append(out, e.message())
			kept = append(kept, e)
		}
	}
	clear(q.main[len(kept):])
	q.main = kept
	return out
}

func (e *entry) message() events.SQSMessage {
	m := events.SQSMessage{
		MessageId:     e.id,
		ReceiptHandle: e.receipt,
		Body:          e.body,
		EventSource:   "aws:sqs",
		Attributes: map[string]string{
			"ApproximateReceiveCount":          strconv.Itoa(e.receives),
			"SentTimestamp":                    strconv.FormatInt(e.sentAt.UnixMilli(), 10),
			"ApproximateFirstReceiveTimestamp": strconv.FormatInt(e.firstReceive.UnixMilli(), 10),
			"MessageGroupId":                   e.group,
			"MessageDeduplicationId":           e.dedupID,
		},
		MessageAttributes: map[string]events.SQSMessageAttribute{},
	}
	for k, v := range e.attrs {
		m.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: &v, DataType: "String"}
	}
	return m
}

func (q *Queue) find(receipt string) (int, *entry) {
	for i, e := range q.main {
		if receipt != "" && e.receipt == receipt {
			return i, e
		}
	}
	return -1, nil
}

// Ack implements delivery.Queue and delivery.Source: it deletes received messages.
// A receipt that no longer names one (deleted, or received again since) is skipped,
// as SQS does.
func (q *Queue) Ack(ctx context.Context, receipts []string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range receipts {
		if i, _ := q.find(r); i >= 0 {
			q.main = append(q.main[:i], q.main[i+1:]...)
		}
	}
	q.signal()
	return nil
}

// Delay implements delivery.Queue: received messages become visible again after d.
// A receipt that no longer names one is reported, and the others are delayed all the
// same, as ChangeMessageVisibilityBatch does.
func (q *Queue) Delay(ctx context.Context, receipts []string, d time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	bad := 0
	for _, r := range receipts {
		_, e := q.find(r)
		if e == nil {
			bad++
			continue
		}
		e.invisibleUntil = q.now().Add(d)
	}
	if d <= 0 {
		q.signal()
	}
	if bad > 0 {
		return fmt.Errorf("delay %d of %d messages: %w", bad, len(receipts), ErrReceipt)
	}
	return nil
}

// DeadLetter implements delivery.Queue: a copy of a received message goes to the
// dead-letter queue with attrs beside its own; the caller then deletes the original.
func (q *Queue) DeadLetter(ctx context.Context, m events.SQSMessage, attrs map[string]string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.dead {
		if e.id == m.MessageId {
			return nil // already there: a retried call
		}
	}
	e := &entry{id: m.MessageId, group: m.Attributes["MessageGroupId"], dedupID: m.Attributes["MessageDeduplicationId"], body: m.Body, sentAt: q.now(), attrs: map[string]string{}}
	if _, src := q.find(m.ReceiptHandle); src != nil {
		e.attrs = maps.Clone(src.attrs)
	} else {
		for k, v := range m.MessageAttributes {
			if v.StringValue != nil {
				e.attrs[k] = *v.StringValue
			}
		}
	}
	maps.Copy(e.attrs, attrs)
	q.dead = append(q.dead, e)
	return nil
}

// DeadLetters lists up to max messages of the dead-letter queue, oldest first.
func (q *Queue) DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []events.SQSMessage
	for _, e := range q.dead {
		if len(out) == limit {
			break
		}
		m := e.message()
		m.ReceiptHandle = ""
		out = append(out, m)
	}
	return out, nil
}

// deadLetterAttrs are the attributes a dead letter has and a redriven job has not.
var deadLetterAttrs = []string{message.AttrFailureReason, message.AttrAttempts, message.AttrFailedAt, message.AttrOvertakenBy, message.AttrResend}

// Redrive moves up to limit dead letters back to the queue, in order, with a fresh
// receive count and marked redriven, and returns how many it moved.
func (q *Queue) Redrive(ctx context.Context, limit int) (int, error) {
	return q.RedriveMatching(ctx, limit, nil)
}

// Stats counts the messages in the queue, in flight and dead, for tests and the dev
// server's status line.
func (q *Queue) Stats() (queued, inFlight, dead int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, e := range q.main {
		if e.invisibleUntil.After(now) {
			inFlight++
		} else {
			queued++
		}
	}
	return queued, inFlight, len(q.dead)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
