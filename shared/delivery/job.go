package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// job is one job being run, with what its log lines say.
type job struct {
	m   events.SQSMessage
	j   message.Job
	ch  *Channel
	rec message.Record
	log *slog.Logger
}

// runJob runs one job: the bot (once: its answer is stored before the first POST),
// then each bot message not yet delivered. For a retry it returns the delay the rest
// of the conversation waits too.
func (h *Handler) runJob(ctx context.Context, m events.SQSMessage, rest []events.SQSMessage) (outcome, time.Duration, error) {
	jb := &job{m: m, log: h.log.With(slog.String("sqsMessageId", m.MessageId))}
	var err error
	if jb.j, err = message.DecodeJob([]byte(m.Body)); err != nil {
		return h.deadLetter(ctx, jb, -1, err.Error(), 0, nil), 0, nil
	}
	jb.log = jb.log.With(slog.String("channel", jb.j.Channel), slog.String("ref", jb.j.Ref))
	if jb.ch, err = h.channels.Channel(ctx, jb.j.Channel); err != nil {
		if errors.Is(err, ErrNoChannel) {
			return h.deadLetter(ctx, jb, -1, "channel "+jb.j.Channel+" does not exist", 0, nil), 0, nil
		}
		return h.unavailable(ctx, jb, "channel", err)
	}
	if !h.timeFor(ctx, jb.ch.BotTimeout+jb.ch.SendTimeout) {
		return handBack, 0, nil
	}
	if hl := h.healthOf(ctx, jb.ch.ID); hl.Disabled {
		// Nothing is attempted and nothing is counted: the job waits, in order.
		o, d := h.hold(ctx, jb, hl)
		jb.log.InfoContext(ctx, "held: the endpoint is disabled", slog.Float64("retryInSeconds", d.Seconds()))
		return o, d, nil
	}
	if jb.j.Kind == message.KindReplay {
		return h.replay(ctx, jb, rest)
	}

	// A job received for the first time, sent once and not redriven, has never run:
	// nothing to read. Any other may have, and is checked first, so a bot never runs
	// twice for one job and a second copy of a job stands down.
	redriven := attr(m, message.AttrRedriven) == "true"
	var x message.Exchange
	stored := false
	if receives(m) > 1 || redriven || attr(m, message.AttrResend) == "true" {
		var recFound bool
		err := h.call(ctx, func(ctx context.Context) (err error) {
			jb.rec, recFound, x, stored, err = h.store.Load(ctx, jb.j.Key, jb.j.CreatedAt)
			return err
		})
		if err != nil {
			return h.unavailable(ctx, jb, "load", err)
		}
		if stored && x.Tombstone {
			h.dropTombstone(ctx, jb, x)
		}
		if !recFound || x.Tombstone {
			jb.log.InfoContext(ctx, "dropped", slog.String("why", "erased"))
			return done, 0, nil
		}
		if redriven {
			// Back from the dead-letter queue: a fresh budget, from where it stopped;
			// a turn the bot gave up on asks the bot again.
			if err := h.call(ctx, func(ctx context.Context) error { return h.store.TakeOver(ctx, jb.j.Key, jb.j.CreatedAt, m.MessageId) }); err != nil {
				return h.unavailable(ctx, jb, "take over", err)
			}
			jb.rec.Attempts, jb.rec.Step, jb.rec.FailingSince = 0, 0, time.Time{}
			x.Owner = m.MessageId
			stored = stored && x.Failure == ""
		}
		if stored && x.Owner != m.MessageId {
			jb.log.InfoContext(ctx, "dropped", slog.String("why", "a copy of a job another queue message runs"))
			return done, 0, nil
		}
	}
	if !stored {
		var o outcome
		var delay time.Duration
		if x, o, delay, err = h.answer(ctx, jb, rest); err != nil || o != done {
			return o, delay, err
		}
	}
	return h.deliver(ctx, jb, x, jb.rec.Delivered, len(x.Outgoing()), rest)
}

// replay sends one bot message of a stored exchange again: the same webhook-id, a
// fresh signature. It always reads, since a replay is never the happy path.
func (h *Handler) replay(ctx context.Context, jb *job, rest []events.SQSMessage) (outcome, time.Duration, error) {
	t := jb.j.Target
	var recFound, xFound bool
	var x message.Exchange
	err := h.call(ctx, func(ctx context.Context) (err error) {
		jb.rec, recFound, _, _, err = h.store.Load(ctx, jb.j.Key, jb.j.CreatedAt)
		if err == nil && recFound {
			target := message.Key{Channel: jb.j.Channel, ConversationRef: jb.j.ConversationRef, Ref: t.Ref}
			_, _, x, xFound, err = h.store.Load(ctx, target, t.CreatedAt)
		}
		return err
	})
	if err != nil {
		return h.unavailable(ctx, jb, "load", err)
	}
	i := -1
	if recFound && xFound && !x.Tombstone {
		for n, e := range x.Outgoing() {
			if e.ID == t.WebhookID {
				i = n
			}
		}
	}
	if i < 0 {
		jb.log.InfoContext(ctx, "dropped", slog.String("why", "the message to replay is gone"), slog.String("webhookId", t.WebhookID))
		return done, 0, nil
	}
	return h.deliver(ctx, jb, x, i, i+1, rest)
}

// answer runs the bot for a turn (a push is its own answer) and stores the exchange.
func (h *Handler) answer(ctx context.Context, jb *job, rest []events.SQSMessage) (message.Exchange, outcome, time.Duration, error) {
	var x message.Exchange
	if jb.j.Kind == message.KindPush {
		x = message.Exchange{Key: jb.j.Key, CreatedAt: jb.j.CreatedAt, ConversationID: jb.j.ConversationID, UserID: jb.j.UserID,
			Entries: []message.Entry{{ID: jb.j.Ref, Direction: message.Outgoing, Type: jb.j.Push.Type, Payload: jb.j.Push.Payload,
				UserID: jb.j.UserID, CreatedAt: jb.j.CreatedAt}}}
	} else {
		turn := jb.j.Turn()
		start := time.Now()
		replies, err := h.runBot(ctx, jb, turn)
		took := time.Since(start)
		jb.log = jb.log.With(slog.Float64("botMs", float64(took.Microseconds())/1000))
		if err != nil {
			var busy *message.BotBusyError
			retryAfter := time.Duration(0)
			if errors.As(err, &busy) {
				retryAfter = busy.RetryAfter
			}
			o, d := h.failed(ctx, jb, -1, 0, "bot: "+botReason(err), retryAfter, rest, nil)
			return x, o, d, nil
		}
		x = message.Answer(turn, jb.j.CreatedAt, replies, h.now().UTC())
		jb.log.InfoContext(ctx, "answered", append([]any{slog.Int("replies", len(replies))},
			h.metricArgs(metricOne("Turns"), metricMillis("BotLatency", took))...)...)
	}
	if err := h.step("answered"); err != nil {
		return x, done, 0, err
	}
	x.Owner, x.ExpiresAt = jb.m.MessageId, jb.j.CreatedAt.Add(h.cfg.HistoryTTL)
	var existing message.Exchange
	var stored bool
	err := h.call(ctx, func(ctx context.Context) (err error) {
		existing, stored, err = h.store.PutExchange(ctx, x)
		return err
	})
	if err != nil {
		// The answer is lost with this attempt; the retry asks the bot again. Nothing
		// was delivered, so nothing can differ.
		o, d := h.failed(ctx, jb, -1, 0, "store the answer: "+err.Error(), 0, rest, nil)
		return x, o, d, nil
	}
	if !stored {
		// Another copy stored it first, or the conversation was erased meanwhile.
		if existing.Tombstone {
			h.dropTombstone(ctx, jb, existing)
		}
		if existing.Tombstone || existing.Owner != jb.m.MessageId {
			jb.log.InfoContext(ctx, "dropped", slog.String("why", "stored by another queue message, or erased"))
			return x, done, 0, nil
		}
		x = existing
	}
	return x, done, 0, h.step("stored")
}

func (h *Handler) runBot(ctx context.Context, jb *job, turn message.Turn) ([]message.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, jb.ch.BotTimeout)
	defer cancel()
	replies, err := jb.ch.Bot.Reply(ctx, turn)
	if err != nil {
		return nil, err
	}
	for i, r := range replies {
		if err := r.Check(); err != nil {
			return nil, fmt.Errorf("answer %d cannot be sent: %w", i+1, err)
		}
	}
	return replies, nil
}

// botReason is a bot failure as the log and the dead letter say it.
func botReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "did not answer in time"
	}
	return err.Error()
}
