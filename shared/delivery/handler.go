package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/webhook"
)

// Sender POSTs one webhook and classifies the answer.
type Sender interface {
	Send(ctx context.Context, r webhook.Request) webhook.Outcome
}

// Queue is what the handler does to the queue it consumes: delay a retry, and move a
// message to the dead-letter queue.
type Queue interface {
	ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error
	DeadLetter(ctx context.Context, m events.SQSMessage, reason string, attempts int) error
}

// Attempts counts failed attempts per queue message. SQS's ApproximateReceiveCount
// is not a count of attempts: it also grows for the messages held back behind a
// failing one of their conversation, and for a crashed invocation. The count is
// keyed by the SQS message id, which a redrive renews, so a redriven message gets a
// fresh budget. It is written only when an attempt fails: nothing on the happy path.
type Attempts interface {
	Failed(ctx context.Context, messageID string, now time.Time) (int, error)
}

// MaxReceives is the queue's redrive budget: SQS's maximum. The redrive policy is only
// the backstop for a message that crashes the function every time; the delivery
// function's own attempt count decides when a message is given up. A tighter budget
// would dead-letter messages never attempted: every message held back behind a failing
// one of its conversation is received again with it.
const MaxReceives = 1000

// Retention is how long the queues keep a message (SQS's maximum, as deployed).
const Retention = 14 * 24 * time.Hour

// MaxVisibility is SQS's ceiling for a visibility timeout, so for one retry delay.
const MaxVisibility = 12 * time.Hour

// Policy is the retry budget.
type Policy struct {
	MinDelay    time.Duration // delay after the first failed attempt; default 5s
	MaxDelay    time.Duration // cap on one delay; default 12h, at most MaxVisibility
	MaxAttempts int           // attempts in all, the first included; default 11
	// Jitter spreads each delay by up to ± this fraction, so receivers coming back
	// from an outage are not hit by every message at once.
	Jitter float64
}

// DefaultPolicy spaces 11 attempts over about 26 hours: 5s, 15s, 45s, 2m15s, ~7m,
// ~20m, ~1h, ~3h, ~9h, 12h — seconds first, then hours, like Svix and Standard Webhooks.
var DefaultPolicy = Policy{MinDelay: 5 * time.Second, MaxDelay: MaxVisibility, MaxAttempts: 11, Jitter: 0.2}

// Validate reports a policy SQS cannot carry out.
func (p Policy) Validate() error {
	var errs []error
	if p.MinDelay <= 0 {
		errs = append(errs, fmt.Errorf("minimum retry delay %s must be positive", p.MinDelay))
	}
	if p.MaxDelay < p.MinDelay || p.MaxDelay > MaxVisibility {
		errs = append(errs, fmt.Errorf("maximum retry delay %s must be between the minimum %s and %s", p.MaxDelay, p.MinDelay, MaxVisibility))
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("jitter %g must be at least 0 and below 1", p.Jitter))
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("max attempts %d must be between 1 and 100", p.MaxAttempts))
	}
	if errs == nil {
		// SQS deletes a message after its retention: a schedule longer than that would
		// lose a message between attempts instead of dead-lettering it.
		var span time.Duration
		for n := 1; n < p.MaxAttempts; n++ {
			span += min(time.Duration(float64(p.Delay(n))*(1+p.Jitter)), p.MaxDelay)
		}
		if span > Retention {
			errs = append(errs, fmt.Errorf("%d attempts span up to %s, more than the queue's %s retention", p.MaxAttempts, span.Round(time.Minute), Retention))
		}
	}
	return errors.Join(errs...)
}

// Delay is the wait after failed attempt n (1-based), without jitter: MinDelay·3^(n-1),
// capped at MaxDelay.
func (p Policy) Delay(n int) time.Duration {
	d := float64(p.MinDelay) * math.Pow(3, float64(max(n-1, 0)))
	if d > float64(p.MaxDelay) {
		return p.MaxDelay
	}
	return time.Duration(d)
}

// Handler delivers a batch of queue records.
type Handler struct {
	sender   Sender
	queue    Queue
	attempts Attempts
	policy   Policy
	now      func() time.Time
	log      *slog.Logger
	jitter   func() float64 // in [0.8, 1.2)
	// margin is kept free before the invocation deadline: a delivery is not started
	// unless it can finish.
	margin time.Duration
}

// New returns a Handler. timeout is the sender's per-delivery timeout.
func New(sender Sender, queue Queue, attempts Attempts, policy Policy, timeout time.Duration, log *slog.Logger) *Handler {
	return &Handler{
		sender: sender, queue: queue, attempts: attempts, policy: policy, log: log, now: time.Now,
		margin: timeout + 2*time.Second,
	}
}

// Handle delivers the batch and reports the records to retry. It returns an error
// only when nothing could be decided, so the whole batch is retried.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var order []string
	groups := map[string][]events.SQSMessage{}
	for _, m := range ev.Records {
		g := m.Attributes["MessageGroupId"]
		if g == "" {
			g = "id:" + m.MessageId // not FIFO: no order to keep
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], m)
	}
	failed := make([][]string, len(order))
	var wg sync.WaitGroup
	for i, g := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed[i] = h.deliverGroup(ctx, groups[g])
		}()
	}
	wg.Wait()

	isFailed := map[string]bool{}
	for _, ids := range failed {
		for _, id := range ids {
			isFailed[id] = true
		}
	}
	res := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, m := range ev.Records {
		if isFailed[m.MessageId] {
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return res, nil
}

// deliverGroup delivers one conversation's records in order and returns the ids of
// the records to retry: the first that failed and everything after it.
func (h *Handler) deliverGroup(ctx context.Context, msgs []events.SQSMessage) []string {
	for i, m := range msgs {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < h.margin {
			// Not enough time left to finish a delivery: hand the rest back at once.
			h.holdBack(ctx, msgs[i:], 0)
			return ids(msgs[i:])
		}
		if !h.deliver(ctx, m, msgs[i+1:]) {
			return ids(msgs[i:])
		}
	}
	return nil
}

// deliver makes one attempt and settles the record: true when it is done with
// (delivered or dead-lettered), false when it is to be retried.
func (h *Handler) deliver(ctx context.Context, m events.SQSMessage, rest []events.SQSMessage) bool {
	log := h.log.With(slog.String("sqsMessageId", m.MessageId))
	d, err := Decode(m)
	if err != nil {
		return h.deadLetter(ctx, log, m, err.Error(), h.failed(ctx, log, m))
	}
	log = log.With(slog.String("webhookId", d.ID))
	out := h.sender.Send(ctx, webhook.Request{ID: d.ID, Body: d.Body, InReplyTo: d.InReplyTo, Index: d.Index, Count: d.Count})
	log = log.With(slog.Int("status", out.Status), slog.Float64("latencyMs", float64(out.Duration.Microseconds())/1000))

	if out.Class == webhook.Delivered {
		log.InfoContext(ctx, "delivered")
		return true
	}
	attempt := h.failed(ctx, log, m)
	log = log.With(slog.Int("attempt", attempt))
	if out.Class == webhook.Permanent {
		return h.deadLetter(ctx, log, m, "permanent failure: "+out.Reason, attempt)
	}
	if attempt >= h.policy.MaxAttempts {
		return h.deadLetter(ctx, log, m, fmt.Sprintf("gave up after %d attempts: %s", attempt, out.Reason), attempt)
	}
	delay := h.retryDelay(attempt, out.RetryAfter)
	if err := h.queue.ChangeVisibility(ctx, m.ReceiptHandle, delay); err != nil {
		// The record comes back after the queue's own visibility timeout instead.
		log.WarnContext(ctx, "set retry delay", slog.String("error", err.Error()))
	}
	// Hold the rest of the conversation back for as long, so the group resumes in
	// order when the failed record comes back rather than after the full timeout.
	h.holdBack(ctx, rest, delay)
	log.WarnContext(ctx, "retry", slog.String("reason", out.Reason), slog.Float64("retryInSeconds", delay.Seconds()))
	return false
}

// failed counts a failed attempt and returns the attempt's number. If the count cannot
// be kept, SQS's receive count stands in: it only ever overcounts, so the budget still
// ends.
func (h *Handler) failed(ctx context.Context, log *slog.Logger, m events.SQSMessage) int {
	n, err := h.attempts.Failed(ctx, m.MessageId, h.now())
	if err != nil {
		n, _ = strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
		log.WarnContext(ctx, "count attempt", slog.String("error", err.Error()))
	}
	return max(n, 1)
}

func (h *Handler) retryDelay(attempt int, retryAfter time.Duration) time.Duration {
	spread := 1 + h.policy.Jitter*(2*rand.Float64()-1)
	// Jitter spreads the delays but never takes one outside the configured bounds.
	d := min(max(time.Duration(float64(h.policy.Delay(attempt))*spread), h.policy.MinDelay), h.policy.MaxDelay)
	d = max(d, retryAfter)
	return min(d, MaxVisibility)
}

func (h *Handler) holdBack(ctx context.Context, msgs []events.SQSMessage, d time.Duration) {
	for _, m := range msgs {
		if err := h.queue.ChangeVisibility(ctx, m.ReceiptHandle, d); err != nil {
			h.log.WarnContext(ctx, "hold back", slog.String("sqsMessageId", m.MessageId), slog.String("error", err.Error()))
		}
	}
}

func (h *Handler) deadLetter(ctx context.Context, log *slog.Logger, m events.SQSMessage, reason string, attempt int) bool {
	if err := h.queue.DeadLetter(ctx, m, reason, attempt); err != nil {
		log.ErrorContext(ctx, "dead-letter", slog.String("reason", reason), slog.String("error", err.Error()))
		return false // keep it on the queue: never drop a message
	}
	log.ErrorContext(ctx, "dead-lettered", slog.String("reason", reason))
	return true
}

func ids(msgs []events.SQSMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.MessageId
	}
	return out
}
