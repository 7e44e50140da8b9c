package delivery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/metrics"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// receiver records what reaches a Response Endpoint and answers with respond.
type receiver struct {
	mu       sync.Mutex
	attempts []attempt
	respond  func(n int, r *http.Request) int // n counts requests from 1
	srv      *httptest.Server
}

type attempt struct {
	at      time.Time
	id      string
	body    string
	headers http.Header
	status  int
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request) int) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.attempts) + 1
		rc.attempts = append(rc.attempts, attempt{at: time.Now(), id: r.Header.Get("webhook-id"), body: string(body), headers: r.Header.Clone()})
		respond := rc.respond
		rc.mu.Unlock()
		status := respond(n, r)
		rc.mu.Lock()
		rc.attempts[n-1].status = status
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func ok200(int, *http.Request) int { return 200 }

func (rc *receiver) got() []attempt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]attempt(nil), rc.attempts...)
}

// delivered lists the webhook ids answered 2xx, in order.
func (rc *receiver) delivered() []string {
	var out []string
	for _, a := range rc.got() {
		if a.status/100 == 2 {
			out = append(out, a.id)
		}
	}
	return out
}

// scriptBot answers each user message with replies messages after delay, failing the
// first fails runs of each message; it records every run.
type scriptBot struct {
	replies int
	delay   time.Duration
	fails   int
	mu      sync.Mutex
	runs    map[string]int
	spans   []span
}

type span struct {
	messageID  string
	start, end time.Time
}

func (b *scriptBot) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	start := time.Now()
	b.mu.Lock()
	if b.runs == nil {
		b.runs = map[string]int{}
	}
	b.runs[turn.Message.MessageID]++
	n := b.runs[turn.Message.MessageID]
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.spans = append(b.spans, span{turn.Message.MessageID, start, time.Now()})
		b.mu.Unlock()
	}()
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if n <= b.fails {
		return nil, fmt.Errorf("model error %d", n)
	}
	out := make([]message.Reply, max(b.replies, 1))
	for i := range out {
		out[i] = message.Reply{Type: "text", Payload: json.RawMessage(fmt.Sprintf(`{"text":"%s answer %d"}`, turn.Message.MessageID, i+1))}
	}
	return out, nil
}

func (b *scriptBot) ran(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs[id]
}

type stack struct {
	queue *inmem.Queue
	store *inmem.Store
	in    *inbound.Handler
	h     *delivery.Handler
	ch    *delivery.Channel
	stop  func()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var fast = delivery.Policy{MinDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxAttempts: 4}

type options struct {
	policy      delivery.Policy
	sendTimeout time.Duration
	botTimeout  time.Duration
	visibility  time.Duration
	budget      time.Duration
	crash       func(step string) error
	noPoll      bool // the test runs batches itself
	disable     message.DisableRule
	pause       time.Duration
	log         *slog.Logger
	metrics     bool
	healthTTL   time.Duration
}

// start runs the inbound handler, an embedded queue and store, and a poller that runs
// jobs with bot and delivers to url: the local stack, piece by piece.
func start(t *testing.T, url string, bot delivery.Bot, o options) *stack {
	t.Helper()
	if o.policy.MaxAttempts == 0 {
		o.policy = fast
	}
	o.sendTimeout = cmpOr(o.sendTimeout, time.Second)
	o.botTimeout = cmpOr(o.botTimeout, 2*time.Second)
	o.visibility = cmpOr(o.visibility, 10*time.Second)
	o.budget = cmpOr(o.budget, 8*time.Second)
	sender, err := webhook.NewSender(webhook.Config{URL: url, Timeout: o.sendTimeout})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{queue: inmem.NewQueue(inmem.QueueConfig{VisibilityTimeout: o.visibility, MaxReceives: 1000}), store: inmem.NewStore()}
	s.ch = &delivery.Channel{ID: message.DefaultChannel, Bot: bot, BotTimeout: o.botTimeout, Sender: sender, SendTimeout: o.sendTimeout, Policy: o.policy}
	s.in = inbound.New(s.store, s.queue, token.NewStatic("t"), inbound.Config{}, quiet)
	if o.log == nil {
		o.log = quiet
	}
	s.h = delivery.New(s.store, s.queue, delivery.Single(s.ch), delivery.Config{CallTimeout: 500 * time.Millisecond, Fault: o.crash,
		Disable: o.disable, DisabledPause: o.pause, HealthTTL: o.healthTTL, Metrics: metrics.Recorder{On: o.metrics}}, o.log)
	if o.noPoll {
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { delivery.Poll(ctx, s.queue, s.h, delivery.PollConfig{Budget: o.budget}, quiet); close(done) }()
	s.stop = func() { cancel(); <-done }
	t.Cleanup(s.stop)
	return s
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// post sends one user message through the inbound handler and returns how long the
// answer took.
func (s *stack) post(t *testing.T, conversation, messageID string) time.Duration {
	t.Helper()
	body := fmt.Sprintf(`{"userId":"u1","messageId":%q,"conversationId":%q,"type":"text","text":"hello %s"}`, messageID, conversation, messageID)
	start := time.Now()
	res, _ := s.in.Handle(context.Background(), events.APIGatewayV2HTTPRequest{
		RawPath: "/", Body: body, Headers: map[string]string{"authorization": "bearer t"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST"}},
	})
	took := time.Since(start)
	if res.StatusCode != 200 {
		t.Fatalf("POST %s/%s = %d %s", conversation, messageID, res.StatusCode, res.Body)
	}
	return took
}

func replyID(conversation, messageID string, i int) string {
	return message.ReplyRef(message.DefaultChannel, conversation, messageID, i)
}

func (s *stack) settled() bool {
	q, f, _ := s.queue.Stats()
	return q+f == 0
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The POST answers at once; the bot runs behind the queue and its answers come after.
func TestTheBotRunsAfterThePOST(t *testing.T) {
	rc := newReceiver(t, ok200)
	bot := &scriptBot{replies: 2, delay: 500 * time.Millisecond}
	s := start(t, rc.srv.URL, bot, options{})
	if took := s.post(t, "c1", "m1"); took > 50*time.Millisecond {
		t.Errorf("the POST took %s with a 500ms bot, want it answered at once", took)
	}
	if n := len(rc.got()); n != 0 {
		t.Errorf("%d deliveries before the bot answered", n)
	}
	waitFor(t, "two replies", 5*time.Second, func() bool { return len(rc.delivered()) == 2 })
	got := rc.got()
	want := []string{replyID("c1", "m1", 0), replyID("c1", "m1", 1)}
	for i, a := range got {
		if a.id != want[i] || a.headers.Get("Parley-In-Reply-To") != "m1" || a.headers.Get("Parley-Reply-Index") != fmt.Sprint(i+1) || a.headers.Get("Parley-Reply-Count") != "2" {
			t.Errorf("delivery %d: id %s headers %v", i, a.id, a.headers)
		}
		var w map[string]any
		if err := json.Unmarshal([]byte(a.body), &w); err != nil || len(w) != 6 || w["conversationId"] != "c1" || w["botpressMessageId"] != want[i] {
			t.Errorf("delivery %d body = %s, want the six fields", i, a.body)
		}
	}
}

// Two messages sent back to back in one conversation: the second turn starts after
// the first ends and the replies arrive in message order. Another conversation runs
// alongside.
func TestTurnsOfAConversationRunOneAtATime(t *testing.T) {
	rc := newReceiver(t, ok200)
	bot := &scriptBot{replies: 2, delay: 300 * time.Millisecond}
	s := start(t, rc.srv.URL, bot, options{})
	s.post(t, "c1", "m1")
	s.post(t, "c1", "m2")
	s.post(t, "c2", "x1")
	waitFor(t, "six replies", 5*time.Second, func() bool { return len(rc.delivered()) == 6 })
	var c1 []string
	for _, id := range rc.delivered() {
		if id != replyID("c2", "x1", 0) && id != replyID("c2", "x1", 1) {
			c1 = append(c1, id)
		}
	}
	want := []string{replyID("c1", "m1", 0), replyID("c1", "m1", 1), replyID("c1", "m2", 0), replyID("c1", "m2", 1)}
	if fmt.Sprint(c1) != fmt.Sprint(want) {
		t.Errorf("c1 replies in the order %v, want %v", c1, want)
	}
	bot.mu.Lock()
	defer bot.mu.Unlock()
	spans := map[string]span{}
	for _, sp := range bot.spans {
		spans[sp.messageID] = sp
	}
	if m1, m2 := spans["m1"], spans["m2"]; !m2.start.After(m1.end) {
		t.Errorf("m2's turn started %s before m1's ended", m1.end.Sub(m2.start))
	}
	if m1, x1 := spans["m1"], spans["x1"]; x1.start.After(m1.end) {
		t.Errorf("c2's turn waited for c1's: conversations must not hold each other up")
	}
}

// A bot that fails twice then answers: its answer is delivered once.
func TestBotFailuresAreRetriedWithBackoff(t *testing.T) {
	rc := newReceiver(t, ok200)
	bot := &scriptBot{fails: 2}
	s := start(t, rc.srv.URL, bot, options{})
	s.post(t, "c1", "m1")
	waitFor(t, "the answer", 5*time.Second, func() bool { return len(rc.delivered()) == 1 })
	time.Sleep(300 * time.Millisecond)
	if got := rc.got(); len(got) != 1 {
		t.Errorf("%d deliveries, want exactly 1", len(got))
	}
	if n := bot.ran("m1"); n != 3 {
		t.Errorf("the bot ran %d times, want 3", n)
	}
}

// A bot that never answers: dead-lettered with the reason when the budget ends, the
// user message kept in the history, and a redrive asks the bot again.
func TestABotThatKeepsFailingIsDeadLetteredAndRedriveRunsItAgain(t *testing.T) {
	rc := newReceiver(t, ok200)
	bot := &scriptBot{fails: 1000}
	s := start(t, rc.srv.URL, bot, options{})
	s.post(t, "c1", "m1")
	waitFor(t, "the dead letter", 5*time.Second, func() bool { _, _, d := s.queue.Stats(); return d == 1 })
	dead, _ := s.queue.DeadLetters(context.Background(), 10)
	if r := attr(dead[0], message.AttrFailureReason); r != "gave up after 4 attempts: bot: model error 4" {
		t.Errorf("dead letter reason %q", r)
	}
	history, _, _ := s.store.HistoryPage(context.Background(), message.DefaultChannel, message.ConversationRef(message.DefaultChannel, "c1"), 10, "")
	if len(history) != 1 || history[0].Direction != message.Incoming || history[0].MessageID != "m1" {
		t.Errorf("history = %+v, want the user message", history)
	}
	bot.mu.Lock()
	bot.fails = 0
	bot.mu.Unlock()
	if n, err := s.queue.Redrive(context.Background(), 10); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	waitFor(t, "the redriven turn's answer", 5*time.Second, func() bool { return len(rc.delivered()) == 1 })
	if n := bot.ran("m1"); n != 5 {
		t.Errorf("the bot ran %d times, want 5 (4 failures, then the redrive)", n)
	}
	history, _, _ = s.store.HistoryPage(context.Background(), message.DefaultChannel, message.ConversationRef(message.DefaultChannel, "c1"), 10, "")
	if len(history) != 2 {
		t.Errorf("history after the redrive = %+v, want the message and its answer", history)
	}
}

// A crash at any step of a job, then the redelivery: the bot never runs again once its
// answer is stored, and every reply is delivered under its one webhook-id.
func TestCrashesNeverRunTheBotTwiceOrChangeAReply(t *testing.T) {
	for _, step := range []string{"answered", "stored", "delivered"} {
		t.Run("after "+step, func(t *testing.T) {
			rc := newReceiver(t, ok200)
			bot := &scriptBot{replies: 3}
			var crashed atomic.Bool
			s := start(t, rc.srv.URL, bot, options{visibility: 1500 * time.Millisecond, budget: time.Second, botTimeout: 10 * time.Millisecond,
				sendTimeout: 20 * time.Millisecond, crash: func(s string) error {
					if s == step && crashed.CompareAndSwap(false, true) {
						return errors.New("killed")
					}
					return nil
				}})
			s.post(t, "c1", "m1")
			waitFor(t, "all three replies", 5*time.Second, func() bool { return len(dedupe(rc.delivered())) == 3 && s.settled() })
			want := step != "answered"
			if got := bot.ran("m1"); (got == 1) != want {
				t.Errorf("the bot ran %d times; want 1 when the answer was stored before the crash (%v)", got, want)
			}
			ids := dedupe(rc.delivered())
			for i, id := range ids {
				if id != replyID("c1", "m1", i) {
					t.Errorf("reply %d delivered as %s", i, id)
				}
			}
			bodies := map[string]string{}
			for _, a := range rc.got() {
				if b, seen := bodies[a.id]; seen && b != a.body {
					t.Errorf("webhook-id %s delivered with two bodies", a.id)
				}
				bodies[a.id] = a.body
			}
		})
	}
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// A failing reply resumes from that reply: the ones before it are not sent again.
func TestAFailingReplyResumesFromThatReply(t *testing.T) {
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 2 {
			return 503
		}
		return 200
	})
	s := start(t, rc.srv.URL, &scriptBot{replies: 3}, options{})
	s.post(t, "c1", "m1")
	waitFor(t, "three replies", 5*time.Second, func() bool { return len(rc.delivered()) == 3 })
	var ids []string
	for _, a := range rc.got() {
		ids = append(ids, fmt.Sprintf("%d:%d", indexOf(a.id), a.status))
	}
	if want := "[0:200 1:503 1:200 2:200]"; fmt.Sprint(ids) != want {
		t.Errorf("attempts %v, want %s", ids, want)
	}
}

func indexOf(id string) int {
	for i := range 10 {
		if id == replyID("c1", "m1", i) {
			return i
		}
	}
	return -1
}

// A second copy of a job — sent again by a late replay while the first waited — stands
// down: one bot run, one set of replies.
func TestACopyOfAJobStandsDown(t *testing.T) {
	rc := newReceiver(t, ok200)
	bot := &scriptBot{}
	s := start(t, rc.srv.URL, bot, options{})
	in := message.Inbound{UserID: "u1", MessageID: "m1", ConversationID: "c1", Type: "text", Text: "hi", Payload: json.RawMessage(`{"text":"hi"}`)}
	turn := message.NewTurn(message.DefaultChannel, in)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, accepted, err := s.store.Accept(context.Background(), message.Record{Key: turn.Key(), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now); !accepted || err != nil {
		t.Fatal(accepted, err)
	}
	j := message.TurnJob(turn, now)
	clock := now
	s.queue.SetClock(func() time.Time { return clock })
	if err := s.queue.Send(context.Background(), j, false); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(10 * time.Minute) // past the deduplication window
	if err := s.queue.Send(context.Background(), j, true); err != nil {
		t.Fatal(err)
	}
	s.queue.SetClock(time.Now)
	waitFor(t, "both copies settled", 5*time.Second, s.settled)
	time.Sleep(100 * time.Millisecond)
	if n := bot.ran("m1"); n != 1 {
		t.Errorf("the bot ran %d times, want 1", n)
	}
	if got := rc.delivered(); len(got) != 1 {
		t.Errorf("delivered %v, want one reply", got)
	}
}

func TestReceiverOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		respond    func(n int, r *http.Request) int
		retryAfter string
		attempts   int
		dead       string // reason in the dead-letter queue, "" when delivered
		gaps       []time.Duration
	}{
		{"200", ok200, "", 1, "", nil},
		{"500 then 200", func(n int, _ *http.Request) int { return map[bool]int{true: 500, false: 200}[n == 1] }, "", 2, "", []time.Duration{100 * time.Millisecond}},
		{"429 with Retry-After then 200", func(n int, _ *http.Request) int { return map[bool]int{true: 429, false: 200}[n == 1] }, "1", 2, "", []time.Duration{time.Second}},
		// A receiver's Retry-After is honoured up to the configured maximum delay.
		{"Retry-After beyond the maximum delay", func(n int, _ *http.Request) int { return map[bool]int{true: 429, false: 200}[n == 1] }, "999999", 2, "", []time.Duration{time.Second}},
		// Every non-2xx is retried: a receiver answering 404 during its own deploy loses nothing.
		{"404 then 200", func(n int, _ *http.Request) int { return map[bool]int{true: 404, false: 200}[n == 1] }, "", 2, "", []time.Duration{100 * time.Millisecond}},
		{"401 and 301 then 200", func(n int, _ *http.Request) int {
			return map[int]int{1: 401, 2: 301}[n] + map[bool]int{true: 200}[n > 2]
		}, "", 3, "",
			[]time.Duration{100 * time.Millisecond, 300 * time.Millisecond}},
		{"always 503: budget", func(int, *http.Request) int { return 503 }, "", 4, "gave up after 4 attempts: http 503",
			[]time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.respond)
			if tc.retryAfter != "" {
				h := rc.srv.Config.Handler
				rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Retry-After", tc.retryAfter)
					h.ServeHTTP(w, r)
				})
			}
			s := start(t, rc.srv.URL, &scriptBot{}, options{})
			s.post(t, "c1", "m1")
			waitFor(t, "the job to settle", 10*time.Second, func() bool {
				_, _, dead := s.queue.Stats()
				return s.settled() && (dead == 1 || tc.dead == "")
			})
			got := rc.got()
			if len(got) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(got), tc.attempts)
			}
			for i, a := range got {
				if a.id != got[0].id || a.body != got[0].body {
					t.Errorf("attempt %d: id %q; want the same id and body every time", i+1, a.id)
				}
			}
			for i, want := range tc.gaps {
				gap := got[i+1].at.Sub(got[i].at)
				if gap < want || gap > want+400*time.Millisecond {
					t.Errorf("gap before attempt %d = %s, want %s (+ at most 400ms of polling)", i+2, gap, want)
				}
			}
			dead, _ := s.queue.DeadLetters(context.Background(), 10)
			if tc.dead == "" {
				if len(dead) != 0 {
					t.Errorf("%d dead letters, want 0", len(dead))
				}
				return
			}
			if len(dead) != 1 || attr(dead[0], message.AttrFailureReason) != tc.dead {
				t.Fatalf("dead letters = %v, want one with reason %q", reasons(dead), tc.dead)
			}
			if got := attr(dead[0], message.AttrAttempts); got != fmt.Sprint(tc.attempts) {
				t.Errorf("dead letter attempts = %s, want %d", got, tc.attempts)
			}
			if _, err := message.DecodeJob([]byte(dead[0].Body)); err != nil {
				t.Errorf("the dead letter is not the job: %v", err)
			}
		})
	}
}

// One conversation whose receiver hangs must not hold up a healthy one co-batched
// with it: the healthy one is acknowledged on its own, so its next job can be received
// while the batch still runs.
func TestAHangingConversationDoesNotHoldUpItsBatch(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, ok200)
	inner := rc.srv.Config.Handler
	rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Parley-In-Reply-To") == "slow-1" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		inner.ServeHTTP(w, r)
	})
	s := start(t, rc.srv.URL, &scriptBot{}, options{sendTimeout: 5 * time.Second, noPoll: true})
	s.post(t, "slow", "slow-1")
	s.post(t, "healthy", "h1")
	batch, err := s.queue.Receive(context.Background(), 10, 0)
	if err != nil || len(batch) != 2 {
		t.Fatalf("received %d, %v; want both jobs in one batch", len(batch), err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.h.Run(context.Background(), batch)
	}()
	s.post(t, "healthy", "h2")
	start := time.Now()
	var next []events.SQSMessage
	waitFor(t, "the healthy conversation's next job", 3*time.Second, func() bool {
		next, _ = s.queue.Receive(context.Background(), 10, 0)
		return len(next) > 0
	})
	if wait := time.Since(start); wait > time.Second {
		t.Errorf("the healthy conversation's next job waited %s behind a hanging receiver, want under 1s", wait)
	}
	if j, _ := message.DecodeJob([]byte(next[0].Body)); j.Message.MessageID != "h2" {
		t.Errorf("received %s, want h2", j.Message.MessageID)
	}
	close(release)
	<-done
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

func reasons(msgs []events.SQSMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, attr(m, message.AttrFailureReason))
	}
	return out
}
