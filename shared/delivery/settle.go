package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/webhook"
)

// deliver POSTs the exchange's bot messages start to end (exclusive).
func (h *Handler) deliver(ctx context.Context, jb *job, x message.Exchange, start, end int, rest []events.SQSMessage) (outcome, time.Duration, error) {
	for i := start; i < end; i++ {
		if !h.timeFor(ctx, jb.ch.SendTimeout) {
			h.progress(ctx, jb, start, i)
			return handBack, 0, nil
		}
		d, err := x.Delivery(i)
		if err != nil {
			return h.deadLetter(ctx, jb, i, err.Error(), 0, nil), 0, nil
		}
		if !jb.ch.Limiter.Wait(ctx) {
			return handBack, 0, nil
		}
		o := jb.ch.Sender.Send(ctx, webhook.Request(d))
		a := attemptOf(o, h.now())
		h.observe(jb, x, d, a, i)
		log := jb.log.With(slog.String("webhookId", d.ID), slog.Int("status", o.Status), slog.Float64("latencyMs", a.LatencyMs))
		switch o.Class {
		case webhook.Delivered:
			log.InfoContext(ctx, "delivered", h.metricArgs(metricOne("Delivered"), metricMillis("DeliveryLatency", o.Duration))...)
			if jb.rec.Attempts > 0 && jb.rec.Step == i {
				h.logAttempt(ctx, jb, x, d.ID, a, message.StatusDelivered)
			}
			h.endpointRecovered(ctx, jb.ch.ID)
			if err := h.step("delivered"); err != nil {
				return done, 0, err
			}
			continue
		case webhook.Permanent:
			jb.log = log
			rec, _ := h.count(ctx, jb, i, i)
			a.Outcome = "dead"
			h.logAttempt(ctx, jb, x, d.ID, a, message.StatusDead)
			return h.deadLetter(ctx, jb, i, "cannot be sent: "+o.Reason, max(rec.Attempts, 1), nil), 0, nil
		case webhook.Gone:
			// The receiver says the endpoint is gone: disable it, and keep the job, in
			// order, uncounted, until an operator enables the endpoint again.
			jb.log = log
			hl := h.endpointFailed(ctx, jb, a, true)
			h.logAttempt(ctx, jb, x, d.ID, a, message.StatusRetrying)
			h.progress(ctx, jb, start, i)
			o, pause := h.hold(ctx, jb, hl)
			return o, pause, nil
		}
		jb.log = log
		h.endpointFailed(ctx, jb, a, false)
		oc, delay := h.failed(ctx, jb, i, i, reasonOf(o), o.RetryAfter, rest, &logged{x, d.ID, a})
		return oc, delay, nil
	}
	return done, 0, nil
}

// logged is a failed POST's attempt, to be logged with the status its settling gives.
type logged struct {
	x         message.Exchange
	webhookID string
	a         message.Attempt
}

// count records a failed attempt; when the record cannot be written, SQS's receive
// count stands in: it only ever overcounts, so the budget still ends.
func (h *Handler) count(ctx context.Context, jb *job, step, delivered int) (message.Record, error) {
	var rec message.Record
	err := h.call(ctx, func(ctx context.Context) (err error) {
		rec, err = h.store.Failed(ctx, jb.j.Key, step, delivered, h.now())
		return err
	})
	if errors.Is(err, message.ErrGone) {
		return rec, err
	}
	if err != nil {
		jb.log.WarnContext(ctx, "count attempt", slog.String("error", err.Error()))
		rec = jb.rec
		rec.Attempts, rec.Delivered = receives(jb.m), delivered
	}
	return rec, nil
}

// failed settles a failed attempt: a retry after the backoff, or the dead-letter
// queue when the budget is spent or the job has held its conversation too long.
func (h *Handler) failed(ctx context.Context, jb *job, step, delivered int, reason string, retryAfter time.Duration, rest []events.SQSMessage, l *logged) (outcome, time.Duration) {
	rec, err := h.count(ctx, jb, step, delivered)
	if errors.Is(err, message.ErrGone) {
		jb.log.InfoContext(ctx, "dropped", slog.String("why", "erased"))
		return done, 0
	}
	jb.rec = rec
	p := jb.ch.Policy
	dead := func(reason string, extra map[string]string) (outcome, time.Duration) {
		if l != nil {
			l.a.Outcome = "dead"
			h.logAttempt(ctx, jb, l.x, l.webhookID, l.a, message.StatusDead)
		}
		return h.deadLetter(ctx, jb, step, reason, rec.Attempts, extra), 0
	}
	if rec.Attempts >= p.MaxAttempts {
		return dead(fmt.Sprintf("gave up after %d attempts: %s", rec.Attempts, reason), nil)
	}
	if len(rest) > 0 && p.HoldLimit > 0 && !rec.FailingSince.IsZero() && h.now().Sub(rec.FailingSince) >= p.HoldLimit {
		// Strict order for ever would hold every later message of the conversation as
		// long as this one keeps failing: past the limit it steps aside.
		var refs []string
		for _, m := range rest {
			if j, err := message.DecodeJob([]byte(m.Body)); err == nil {
				refs = append(refs, j.Ref)
			}
		}
		return dead(fmt.Sprintf("held its conversation for more than %s after %d attempts: %s", p.HoldLimit, rec.Attempts, reason),
			map[string]string{message.AttrOvertakenBy: overtaken(refs)})
	}
	if l != nil {
		h.logAttempt(ctx, jb, l.x, l.webhookID, l.a, message.StatusRetrying)
	}
	delay := p.RetryDelay(rec.Attempts, 1+p.Jitter*h.spread(), retryAfter)
	if err := h.call(ctx, func(ctx context.Context) error { return h.queue.Delay(ctx, []string{jb.m.ReceiptHandle}, delay) }); err != nil {
		// The job comes back after the queue's own visibility timeout instead.
		jb.log.WarnContext(ctx, "set retry delay", slog.String("error", err.Error()))
	}
	jb.log.WarnContext(ctx, "retry", append([]any{slog.Int("attempt", rec.Attempts), slog.Int("step", step), slog.String("reason", reason),
		slog.Float64("retryInSeconds", delay.Seconds())}, h.metricArgs(metricOne("FailedAttempts"))...)...)
	return retry, delay
}

// deadLetter moves a job to the dead-letter queue with the reason. A turn the bot gave
// up on is written to the history first, so the user message is not missing there.
func (h *Handler) deadLetter(ctx context.Context, jb *job, step int, reason string, attempts int, extra map[string]string) outcome {
	if step == -1 && jb.ch != nil && jb.j.Kind == message.KindTurn {
		turn := jb.j.Turn()
		x := message.Answer(turn, jb.j.CreatedAt, nil, h.now().UTC())
		x.Owner, x.Failure, x.ExpiresAt = jb.m.MessageId, reason, jb.j.CreatedAt.Add(h.cfg.HistoryTTL)
		if err := h.call(ctx, func(ctx context.Context) error { _, _, err := h.store.PutExchange(ctx, x); return err }); err != nil {
			jb.log.WarnContext(ctx, "history of a failed turn", slog.String("error", err.Error()))
		}
	}
	attrs := map[string]string{
		message.AttrFailureReason: reason,
		message.AttrAttempts:      strconv.Itoa(attempts),
		message.AttrFailedAt:      h.now().UTC().Format(time.RFC3339),
	}
	for k, v := range extra {
		attrs[k] = v
	}
	if err := h.call(ctx, func(ctx context.Context) error { return h.queue.DeadLetter(ctx, jb.m, attrs) }); err != nil {
		jb.log.ErrorContext(ctx, "dead-letter", slog.String("reason", reason), slog.String("error", err.Error()))
		return retry // keep it on the queue: never drop a job
	}
	jb.log.ErrorContext(ctx, "dead-lettered", append([]any{slog.String("reason", reason), slog.Int("attempts", attempts)},
		h.metricArgs(metricOne("DeadLettered"))...)...)
	return done
}

// unavailable hands a job back after the minimum delay when Parley's own store or
// queue failed: not the bot's or the receiver's fault, so no attempt is counted (the
// redrive policy is the backstop).
func (h *Handler) unavailable(ctx context.Context, jb *job, what string, err error) (outcome, time.Duration, error) {
	jb.log.WarnContext(ctx, "unavailable", slog.String("what", what), slog.String("error", err.Error()))
	d := DefaultPolicy.MinDelay
	if jb.ch != nil {
		d = jb.ch.Policy.MinDelay
	}
	h.delay(ctx, []events.SQSMessage{jb.m}, d)
	return retry, d, nil
}

// progress records that the bot messages before i were delivered, when this run
// delivered any (it began at start), so the next run resumes at i.
func (h *Handler) progress(ctx context.Context, jb *job, start, i int) {
	if i > start {
		_ = h.call(ctx, func(ctx context.Context) error { return h.store.Progress(ctx, jb.j.Key, i) })
	}
}

// hold keeps a job back, in order and uncounted, while its channel's endpoint is
// disabled.
func (h *Handler) hold(ctx context.Context, jb *job, hl message.Health) (outcome, time.Duration) {
	d := h.pauseFor(hl)
	h.delay(ctx, []events.SQSMessage{jb.m}, d)
	return retry, d
}

func (h *Handler) dropTombstone(ctx context.Context, jb *job, x message.Exchange) {
	if err := h.call(ctx, func(ctx context.Context) error { return h.store.DropTombstone(ctx, x) }); err != nil {
		jb.log.WarnContext(ctx, "drop tombstone", slog.String("error", err.Error()))
	}
}
