package delivery

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/webhook"
)

// healthOf is a channel endpoint's health, from the cache or the store. When the store
// cannot tell, the endpoint counts as healthy: a failed read must not stop deliveries.
func (h *Handler) healthOf(ctx context.Context, channel string) message.Health {
	now := h.now()
	if last, fresh, _ := h.health.Get(channel, now); fresh {
		return last
	}
	h.healthRead.Lock()
	defer h.healthRead.Unlock()
	last, fresh, _ := h.health.Get(channel, now)
	if fresh {
		return last
	}
	var hl message.Health
	if err := h.call(ctx, func(ctx context.Context) (err error) { hl, err = h.store.Health(ctx, channel); return err }); err != nil {
		h.log.WarnContext(ctx, "read endpoint health", slog.String("channel", channel), slog.String("error", err.Error()))
		hl = last
	}
	h.health.Put(channel, hl, now)
	return hl
}

// endpointFailed counts a failed attempt in the channel endpoint's streak, which may
// disable it (at once for a 410).
func (h *Handler) endpointFailed(ctx context.Context, jb *job, a message.Attempt, gone bool) message.Health {
	var hl message.Health
	err := h.call(ctx, func(ctx context.Context) (err error) {
		hl, err = h.store.EndpointFailed(ctx, jb.ch.ID, a, gone, h.cfg.Disable, a.At)
		return err
	})
	if err != nil {
		jb.log.WarnContext(ctx, "count endpoint failure", slog.String("error", err.Error()))
		return h.healthOf(ctx, jb.ch.ID)
	}
	h.health.Put(jb.ch.ID, hl, a.At)
	if hl.Disabled && hl.DisabledAt.Equal(a.At) {
		jb.log.ErrorContext(ctx, "endpoint disabled", append([]any{slog.String("reason", hl.Reason)}, h.metricArgs(metricOne("EndpointDisabled"))...)...)
	}
	return hl
}

// endpointRecovered ends a channel endpoint's failure streak after a success, when
// this function knows of one. It costs a write only then.
func (h *Handler) endpointRecovered(ctx context.Context, channel string) {
	if hl := h.healthOf(ctx, channel); hl.Failures == 0 || hl.Disabled {
		return
	}
	if err := h.call(ctx, func(ctx context.Context) error { return h.store.EndpointRecovered(ctx, channel) }); err != nil {
		h.log.WarnContext(ctx, "end endpoint failure streak", slog.String("channel", channel), slog.String("error", err.Error()))
		return
	}
	h.health.Put(channel, message.Health{Channel: channel}, h.now())
}

// pauseFor is how long a disabled endpoint's jobs wait before they look again: a
// minute at first, so `parley endpoint enable` takes effect soon, then a quarter of an
// hour, so a long outage does not spend the queue's receive budget (1,000 receives).
func (h *Handler) pauseFor(hl message.Health) time.Duration {
	if h.now().Sub(hl.DisabledAt) < time.Hour {
		return h.cfg.DisabledPause
	}
	return 15 * h.cfg.DisabledPause
}

// attemptOf is an attempt's outcome as the attempt log keeps it.
func attemptOf(o webhook.Outcome, at time.Time) message.Attempt {
	return message.Attempt{At: at.UTC().Truncate(time.Millisecond), Outcome: o.Class.String(), Status: o.Status, Reason: reasonOf(o),
		LatencyMs: float64(o.Duration.Microseconds()) / 1000, Answer: o.Answer, Location: o.Location}
}

// reasonOf is the reason a failed attempt is logged and dead-lettered with: for a
// redirect, where it pointed.
func reasonOf(o webhook.Outcome) string {
	if o.Location != "" {
		return o.Reason + " (to " + o.Location + ")"
	}
	return o.Reason
}

// logAttempt adds an attempt to a bot message's attempt log. It is written only when
// something failed: the failed attempts, the success that follows them, the dead letter.
func (h *Handler) logAttempt(ctx context.Context, jb *job, x message.Exchange, webhookID string, a message.Attempt, status string) {
	l := message.DeliveryLog{WebhookID: webhookID, ConversationID: x.ConversationID, Status: status, Key: x.Key, CreatedAt: x.CreatedAt}
	if err := h.call(ctx, func(ctx context.Context) error {
		return h.store.LogAttempt(ctx, l, a, x.CreatedAt.Add(h.cfg.HistoryTTL))
	}); err != nil {
		jb.log.WarnContext(ctx, "attempt log", slog.String("error", err.Error()))
	}
}

// Limiter spaces a channel's POSTs to at most Rate a second in one function — a
// protection for small receivers. With several functions running, the receiver sees
// up to that many times the rate.
type Limiter struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

// NewLimiter returns a Limiter for rate POSTs a second; nil for rate ≤ 0 (no limit).
func NewLimiter(rate float64) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{every: time.Duration(float64(time.Second) / rate)}
}

// Wait takes a turn, waiting for it if needed; false when ctx ends first.
func (l *Limiter) Wait(ctx context.Context) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.every)
	l.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// Observation is one POST attempt, as Config.Observe hears it.
type Observation struct {
	Channel        string
	ConversationID string
	Delivery       message.Delivery
	Attempt        message.Attempt
	// Attempts counts this message's failed attempts before this one, as far as
	// this run knows them.
	Attempts int
}

func (h *Handler) observe(jb *job, x message.Exchange, d message.Delivery, a message.Attempt, step int) {
	if h.cfg.Observe == nil {
		return
	}
	n := 0
	if jb.rec.Step == step {
		n = jb.rec.Attempts
	}
	h.cfg.Observe(Observation{Channel: x.Channel, ConversationID: x.ConversationID, Delivery: d, Attempt: a, Attempts: n})
}

// overtaken lists the jobs a dead-lettered head lets through: its followers in the
// batch, by ref.
func overtaken(rest []string) string { return strings.Join(rest, " ") }
