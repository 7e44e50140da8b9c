package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/metrics"
	"github.com/parley-chat/parley/shared/webhook"
)

// Bot answers a turn with zero or more messages before ctx's deadline.
type Bot interface {
	Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error)
}

// Sender POSTs one webhook and classifies the answer.
type Sender interface {
	Send(ctx context.Context, r webhook.Request) webhook.Outcome
}

// Channel is what running and delivering one channel's jobs takes.
type Channel struct {
	ID         string
	Bot        Bot
	BotTimeout time.Duration
	Sender     Sender
	// SendTimeout bounds one POST: no attempt is started with less time left.
	SendTimeout time.Duration
	Policy      Policy
	Limiter     *Limiter // nil: no rate limit
}

// Channels finds a channel by id.
type Channels interface {
	Channel(ctx context.Context, id string) (*Channel, error)
}

// ErrNoChannel is returned by Channels for a channel that does not exist.
var ErrNoChannel = errors.New("no such channel")

// Store keeps the delivery side's state: the exchange it writes once per job, and the
// progress it writes only when an attempt fails.
type Store interface {
	// Load reads a job's record and exchange, strongly consistent.
	Load(ctx context.Context, key message.Key, createdAt time.Time) (rec message.Record, recFound bool, x message.Exchange, xFound bool, err error)
	// PutExchange stores x unless an exchange other than a failed one exists under its
	// key; then it returns that one with stored false.
	PutExchange(ctx context.Context, x message.Exchange) (existing message.Exchange, stored bool, err error)
	// TakeOver gives a redriven job's record a fresh attempt budget and makes owner
	// its exchange's owner, if it has one: the job carries on where it stopped.
	TakeOver(ctx context.Context, key message.Key, createdAt time.Time, owner string) error
	// Failed counts a failed attempt at step (-1: the bot; i: the i-th bot message),
	// notes that delivered bot messages went through, and returns the record after.
	// It returns message.ErrGone when the record is no longer there.
	Failed(ctx context.Context, key message.Key, step, delivered int, now time.Time) (message.Record, error)
	// Progress notes that delivered bot messages went through, without an attempt.
	Progress(ctx context.Context, key message.Key, delivered int) error
	// DropTombstone deletes the tombstone an erasure left for a waiting job.
	DropTombstone(ctx context.Context, x message.Exchange) error

	// LogAttempt adds a to a bot message's attempt log and sets its status.
	LogAttempt(ctx context.Context, l message.DeliveryLog, a message.Attempt, expiresAt time.Time) error
	// Health reads a channel endpoint's health.
	Health(ctx context.Context, channel string) (message.Health, error)
	// EndpointFailed counts a failed attempt in the endpoint's streak and disables the
	// endpoint when gone (a 410) or when the rule says so; it returns the health after.
	EndpointFailed(ctx context.Context, channel string, a message.Attempt, gone bool, rule message.DisableRule, now time.Time) (message.Health, error)
	// EndpointRecovered ends a streak of failures after a success.
	EndpointRecovered(ctx context.Context, channel string) error
}

// Queue is what the handler does to the queue it consumes.
type Queue interface {
	// Delay makes received messages visible again after d (0: at once).
	Delay(ctx context.Context, receipts []string, d time.Duration) error
	// DeadLetter sends a copy of m to the dead-letter queue with attrs beside its own.
	DeadLetter(ctx context.Context, m events.SQSMessage, attrs map[string]string) error
	// Ack deletes received messages: a conversation's jobs are acknowledged as soon as
	// it is done, not when the whole batch is.
	Ack(ctx context.Context, receipts []string) error
}

// Config tunes the handler; zero values take the defaults.
type Config struct {
	// HistoryTTL is how long an exchange is kept; default and minimum 15 days, the
	// queue's retention and a day, so a job being retried always finds its exchange.
	HistoryTTL time.Duration
	// EarlyAck is how long a finished conversation may wait for the rest of its batch
	// before its jobs are acknowledged on their own (one extra call). Default 250ms.
	EarlyAck time.Duration
	// CallTimeout bounds each store and queue call. Default 5s.
	CallTimeout time.Duration
	// Disable says when a failing endpoint is disabled; zero: never by count (a 410
	// still disables).
	Disable message.DisableRule
	// HealthTTL is how long a function keeps an endpoint's health before it reads it
	// again. Default a minute.
	HealthTTL time.Duration
	// DisabledPause is how long a disabled endpoint's jobs wait before they look
	// again, in the first hour; fifteen times that after. Default a minute.
	DisabledPause time.Duration
	// Metrics adds CloudWatch metrics (Embedded Metric Format) to the log lines.
	Metrics metrics.Recorder
	// Observe, when set, hears every POST attempt as it happens: the local stack's
	// console shows what it delivered, wherever the endpoint is.
	Observe func(Observation)
	// Fault, for fault-injection tests, is called after each step of a job
	// ("answered": the bot answered; "stored": the exchange is written; "delivered":
	// one bot message was POSTed); an error it returns abandons the batch there, as a
	// crash would.
	Fault func(step string) error
}

// MinHistoryTTL is the shortest history TTL: see Config.HistoryTTL.
const MinHistoryTTL = 15 * 24 * time.Hour

// Handler runs a batch of queue jobs.
type Handler struct {
	store    Store
	queue    Queue
	channels Channels
	cfg      Config
	now      func() time.Time
	log      *slog.Logger
	spread   func() float64 // the jitter factor's random part, in [-1, 1)
	health   healthCache
}

// New returns a Handler.
func New(store Store, queue Queue, channels Channels, cfg Config, log *slog.Logger) *Handler {
	cfg.HistoryTTL = max(cfg.HistoryTTL, MinHistoryTTL)
	if cfg.EarlyAck <= 0 {
		cfg.EarlyAck = 250 * time.Millisecond
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.DisabledPause <= 0 {
		cfg.DisabledPause = time.Minute
	}
	if cfg.HealthTTL <= 0 {
		cfg.HealthTTL = time.Minute
	}
	return &Handler{store: store, queue: queue, channels: channels, cfg: cfg, log: log, now: time.Now,
		spread: func() float64 { return 2*rand.Float64() - 1 },
		health: healthCache{ttl: cfg.HealthTTL, items: map[string]cachedHealth{}}}
}

// errCrash is what Config.Fault makes a job return: the batch is abandoned.
var errCrash = errors.New("crashed")

// Handle runs the batch and reports the jobs to retry. Conversations (FIFO groups)
// run concurrently, each one's jobs in order; a conversation done while others still
// run is acknowledged on its own, so it does not wait for them. It returns an error
// only when the batch is abandoned (a test's crash), so Lambda retries all of it.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	failed, _, err := h.Run(ctx, ev.Records)
	if err != nil {
		return events.SQSEventResponse{}, err
	}
	res := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, m := range ev.Records {
		if failed[m.MessageId] {
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return res, nil
}

// Run is Handle for a poller: it returns the jobs to retry and those it has already
// acknowledged itself; the poller deletes the rest.
func (h *Handler) Run(ctx context.Context, msgs []events.SQSMessage) (failed, acked map[string]bool, err error) {
	groups := groupsOf(msgs)
	type result struct {
		group  []events.SQSMessage
		failed []string
		err    error
	}
	results := make(chan result, len(groups))
	for _, g := range groups {
		go func() {
			f, err := h.runGroup(ctx, g)
			results <- result{g, f, err}
		}()
	}
	failed, acked = map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	var pending sync.WaitGroup
	var timers []*time.Timer
	for left := len(groups); left > 0; left-- {
		r := <-results
		if r.err != nil {
			err = r.err
		}
		for _, id := range r.failed {
			failed[id] = true
		}
		if left == 1 || r.err != nil {
			continue
		}
		var done []events.SQSMessage
		for _, m := range r.group {
			if !failed[m.MessageId] {
				done = append(done, m)
			}
		}
		if len(done) == 0 {
			continue
		}
		pending.Add(1)
		timers = append(timers, time.AfterFunc(h.cfg.EarlyAck, func() {
			defer pending.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.CallTimeout)
			defer cancel()
			if err := h.queue.Ack(ctx, receipts(done)); err != nil {
				h.log.WarnContext(ctx, "acknowledge", slog.String("error", err.Error()))
				return // the poller or the event source mapping deletes them at the end
			}
			mu.Lock()
			for _, m := range done {
				acked[m.MessageId] = true
			}
			mu.Unlock()
		}))
	}
	for _, t := range timers {
		if t.Stop() {
			pending.Done()
		}
	}
	pending.Wait()
	return failed, acked, err
}

// groupsOf splits a batch by FIFO group, keeping the order within each.
func groupsOf(msgs []events.SQSMessage) [][]events.SQSMessage {
	var order []string
	groups := map[string][]events.SQSMessage{}
	for _, m := range msgs {
		g := m.Attributes["MessageGroupId"]
		if g == "" {
			g = "id:" + m.MessageId // not FIFO: no order to keep
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], m)
	}
	out := make([][]events.SQSMessage, len(order))
	for i, g := range order {
		out[i] = groups[g]
	}
	return out
}

// outcome of one job.
type outcome int

const (
	done     outcome = iota // delivered, dead-lettered or dropped: delete it
	retry                   // it and the rest of its conversation come back later
	handBack                // not started or stopped for lack of time: back at once
)

// runGroup runs one conversation's jobs in order and returns the ids of those to
// retry: the first that did not finish and everything after it.
func (h *Handler) runGroup(ctx context.Context, msgs []events.SQSMessage) ([]string, error) {
	for i, m := range msgs {
		o, delay, err := h.runJob(ctx, m, msgs[i+1:])
		if err != nil {
			return ids(msgs[i:]), err
		}
		switch o {
		case retry:
			h.delay(ctx, msgs[i+1:], delay)
			return ids(msgs[i:]), nil
		case handBack:
			h.delay(ctx, msgs[i:], 0)
			return ids(msgs[i:]), nil
		}
	}
	return nil, nil
}

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
		d := h.pauseFor(hl)
		_ = h.call(ctx, func(ctx context.Context) error { return h.queue.Delay(ctx, []string{m.ReceiptHandle}, d) })
		jb.log.InfoContext(ctx, "held: the endpoint is disabled", slog.Float64("retryInSeconds", d.Seconds()))
		return retry, d, nil
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
		jb.log = jb.log.With(slog.Float64("botMs", float64(time.Since(start).Microseconds())/1000))
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
			h.metricArgs(metricOne("Turns"), metricMillis("BotLatency", time.Since(start)))...)...)
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
	if err := h.step("stored"); err != nil {
		return x, done, 0, err
	}
	return x, done, 0, nil
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

// deliver POSTs the exchange's bot messages start to end (exclusive).
func (h *Handler) deliver(ctx context.Context, jb *job, x message.Exchange, start, end int, rest []events.SQSMessage) (outcome, time.Duration, error) {
	for i := start; i < end; i++ {
		if !h.timeFor(ctx, jb.ch.SendTimeout) {
			if i > start {
				_ = h.call(ctx, func(ctx context.Context) error { return h.store.Progress(ctx, jb.j.Key, i) })
			}
			return handBack, 0, nil
		}
		d, err := x.Delivery(i)
		if err != nil {
			return h.deadLetter(ctx, jb, i, err.Error(), 0, nil), 0, nil
		}
		if !jb.ch.Limiter.Wait(ctx) {
			return handBack, 0, nil
		}
		o := jb.ch.Sender.Send(ctx, webhook.Request{ID: d.ID, Body: d.Body, InReplyTo: d.InReplyTo, Index: d.Index, Count: d.Count})
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
			if i > start {
				_ = h.call(ctx, func(ctx context.Context) error { return h.store.Progress(ctx, jb.j.Key, i) })
			}
			pause := h.pauseFor(hl)
			_ = h.call(ctx, func(ctx context.Context) error { return h.queue.Delay(ctx, []string{jb.m.ReceiptHandle}, pause) })
			return retry, pause, nil
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
	_ = h.call(ctx, func(ctx context.Context) error { return h.queue.Delay(ctx, []string{jb.m.ReceiptHandle}, d) })
	return retry, d, nil
}

func (h *Handler) dropTombstone(ctx context.Context, jb *job, x message.Exchange) {
	if err := h.call(ctx, func(ctx context.Context) error { return h.store.DropTombstone(ctx, x) }); err != nil {
		jb.log.WarnContext(ctx, "drop tombstone", slog.String("error", err.Error()))
	}
}

// delay holds messages back for d, so a conversation resumes in order when its failed
// job comes back rather than after the full visibility timeout.
func (h *Handler) delay(ctx context.Context, msgs []events.SQSMessage, d time.Duration) {
	if len(msgs) == 0 {
		return
	}
	if err := h.call(ctx, func(ctx context.Context) error { return h.queue.Delay(ctx, receipts(msgs), d) }); err != nil {
		h.log.WarnContext(ctx, "hold back", slog.Int("messages", len(msgs)), slog.String("error", err.Error()))
	}
}

// timeFor reports whether need fits before ctx's deadline with a margin for the
// writes that settle a job.
func (h *Handler) timeFor(ctx context.Context, need time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) >= need+h.cfg.CallTimeout
}

// call runs one store or queue call under the call timeout; it outlives a cancelled
// ctx, so a job being settled is settled.
func (h *Handler) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.CallTimeout)
	defer cancel()
	return f(ctx)
}

func (h *Handler) step(name string) error {
	if h.cfg.Fault == nil {
		return nil
	}
	if err := h.cfg.Fault(name); err != nil {
		return fmt.Errorf("%w at %s: %v", errCrash, name, err)
	}
	return nil
}

func receives(m events.SQSMessage) int {
	n, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
	return max(n, 1)
}

func attr(m events.SQSMessage, name string) string {
	if a, ok := m.MessageAttributes[name]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

func ids(msgs []events.SQSMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.MessageId
	}
	return out
}

func receipts(msgs []events.SQSMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ReceiptHandle
	}
	return out
}

// Single is Channels for a deployment with one channel: the default.
func Single(ch *Channel) Channels { return single{ch} }

type single struct{ ch *Channel }

func (s single) Channel(ctx context.Context, id string) (*Channel, error) {
	if id != s.ch.ID {
		return nil, fmt.Errorf("%w: %q", ErrNoChannel, id)
	}
	return s.ch, nil
}

func metricOne(name string) metrics.Value { return metrics.One(name) }

func metricMillis(name string, d time.Duration) metrics.Value { return metrics.Millis(name, d) }

// metricArgs are the log attributes that carry values as CloudWatch metrics.
func (h *Handler) metricArgs(values ...metrics.Value) []any {
	attrs := h.cfg.Metrics.Attrs(h.now(), values...)
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}
