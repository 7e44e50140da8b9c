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
	"github.com/parley-chat/parley/shared/ttlmap"
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
	// health keeps each channel endpoint's health for HealthTTL, as channels and
	// tokens are kept: checking it costs a read a minute, not one a job.
	health *ttlmap.Map[message.Health]
	// healthRead is held while reading the store, so the conversations of a batch
	// that ask at once make one read.
	healthRead sync.Mutex
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
		health: ttlmap.New[message.Health](cfg.HealthTTL)}
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
