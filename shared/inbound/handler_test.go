package inbound

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/token"
)

const testToken = "test-token"

// countingBot answers like a real bot would and counts its turns.
type countingBot struct {
	turns   atomic.Int32
	replies int           // messages per turn; 0 means 1
	fail    error         // returned instead of replies
	delay   time.Duration // before answering, honouring ctx
	release chan struct{} // when set, each turn waits for it
}

func (b *countingBot) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	b.turns.Add(1)
	if b.release != nil {
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if b.fail != nil {
		return nil, b.fail
	}
	n := max(b.replies, 1)
	out := make([]message.Reply, n)
	for i := range out {
		out[i] = message.Reply{Type: "text", Payload: json.RawMessage(`{"text":"answer ` + string(rune('a'+i)) + `"}`)}
	}
	return out, nil
}

type fixture struct {
	h     *Handler
	store *inmem.Store
	queue *inmem.Queue
	bot   *countingBot
	clock *fakeClock
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newFixture(t *testing.T, b *countingBot) *fixture {
	t.Helper()
	if b == nil {
		b = &countingBot{}
	}
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	f := &fixture{store: inmem.NewStore(), queue: inmem.NewQueue(inmem.QueueConfig{}), bot: b, clock: clock}
	f.queue.SetClock(clock.Now)
	f.h = New(f.store, f.queue, b, token.NewStatic(testToken), Config{BotTimeout: 200 * time.Millisecond, Lease: 5 * time.Second},
		slog.New(slog.NewJSONHandler(io.Discard, nil)))
	f.h.now = clock.Now
	return f
}

func post(body string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		RawPath: "/",
		Headers: map[string]string{"authorization": "Bearer " + testToken, "content-type": "application/json"},
		Body:    body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "req-1", Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/"},
		},
	}
}

func (f *fixture) do(t *testing.T, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	res, err := f.h.Handle(context.Background(), req)
	if err != nil {
		t.Fatalf("Handle returned error %v; it must answer every request", err)
	}
	if ct := res.Headers["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !json.Valid([]byte(res.Body)) {
		t.Errorf("body is not JSON: %s", res.Body)
	}
	return res
}

// queued drains the queue and returns the deliveries in order.
func (f *fixture) queued(t *testing.T) []message.Delivery {
	t.Helper()
	var out []message.Delivery
	for {
		msgs, err := f.queue.Receive(context.Background(), 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			d, err := delivery.Decode(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
			if err := f.queue.Delete(context.Background(), m.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
		}
	}
}

const hello = `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`

func TestAcceptEchoesThroughTheQueue(t *testing.T) {
	f := newFixture(t, nil)
	f.h.bot = bot.Echo{}
	res := f.do(t, post(hello))
	if res.StatusCode != 200 {
		t.Fatalf("status %d, body %s; want 200", res.StatusCode, res.Body)
	}
	var body struct {
		Message      map[string]any `json:"message"`
		User         map[string]any `json:"user"`
		Conversation map[string]any `json:"conversation"`
	}
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		t.Fatal(err)
	}
	if body.Message["id"] != message.MessageRef("c1", "m1") || body.User["id"] != message.UserRef("u1") || body.Conversation["id"] != message.ConversationRef("c1") {
		t.Errorf("ids = %v %v %v, want the derived ids", body.Message["id"], body.User["id"], body.Conversation["id"])
	}
	if got, _ := json.Marshal(body.Message["payload"]); string(got) != `{"text":"hi"}` {
		t.Errorf("payload = %s, want the default {\"text\":\"hi\"}", got)
	}
	q := f.queued(t)
	if len(q) != 1 {
		t.Fatalf("%d queued, want 1", len(q))
	}
	want := `{"type":"text","payload":{"text":"hi"},"conversationId":"c1","botpressUserId":"` + message.UserRef("u1") +
		`","botpressMessageId":"` + message.ReplyRef("c1", "m1", 0) + `","botpressConversationId":"` + message.ConversationRef("c1") + `"}`
	if string(q[0].Body) != want {
		t.Errorf("webhook body\n got %s\nwant %s", q[0].Body, want)
	}
	if q[0].GroupID != message.ConversationRef("c1") || q[0].InReplyTo != "m1" || q[0].Index != 1 || q[0].Count != 1 {
		t.Errorf("delivery = %+v", q[0])
	}
}

func TestDuplicates(t *testing.T) {
	f := newFixture(t, &countingBot{replies: 2})
	first := f.do(t, post(hello))
	if first.StatusCode != 200 {
		t.Fatalf("first: %d %s", first.StatusCode, first.Body)
	}
	f.clock.Advance(time.Hour)

	again := f.do(t, post(hello))
	if again.StatusCode != 200 || again.Body != first.Body || again.Headers["Idempotent-Replayed"] != "true" {
		t.Errorf("replay = %d %q replayed=%q, want 200, the same body, Idempotent-Replayed: true", again.StatusCode, again.Body, again.Headers["Idempotent-Replayed"])
	}
	if _, ok := first.Headers["Idempotent-Replayed"]; ok {
		t.Error("first answer carries Idempotent-Replayed")
	}
	// Same messageId in another conversation is another message.
	other := f.do(t, post(strings.Replace(hello, `"c1"`, `"c2"`, 1)))
	if other.StatusCode != 200 || other.Headers["Idempotent-Replayed"] != "" {
		t.Errorf("other conversation = %d replayed=%q, want a fresh 200", other.StatusCode, other.Headers["Idempotent-Replayed"])
	}
	reused := f.do(t, post(strings.Replace(hello, `"hi"`, `"hello"`, 1)))
	assertError(t, reused, 409, "message_id_reused", "messageId")

	if got := f.bot.turns.Load(); got != 2 {
		t.Errorf("bot ran %d times, want 2 (c1/m1 once, c2/m1 once)", got)
	}
	if got := len(f.queued(t)); got != 4 {
		t.Errorf("%d queued, want 4 (2 replies × 2 messages)", got)
	}
}

func TestInProgressAnswers409WithRetryAfter(t *testing.T) {
	b := &countingBot{release: make(chan struct{})}
	f := newFixture(t, b)
	f.h.cfg.BotTimeout = 5 * time.Second
	done := make(chan events.APIGatewayV2HTTPResponse)
	go func() { res, _ := f.h.Handle(context.Background(), post(hello)); done <- res }()
	for b.turns.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.clock.Advance(2 * time.Second)
	res := f.do(t, post(hello))
	assertError(t, res, 409, "in_progress", "messageId")
	if ra := res.Headers["Retry-After"]; ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (the cap; the lease has 3s left)", ra)
	}
	f.clock.Advance(2500 * time.Millisecond)
	if ra := f.do(t, post(hello)).Headers["Retry-After"]; ra != "1" {
		t.Errorf("Retry-After near the lease's end = %q, want 1", ra)
	}
	close(b.release)
	if first := <-done; first.StatusCode != 200 {
		t.Errorf("first = %d %s", first.StatusCode, first.Body)
	}
	if b.turns.Load() != 1 {
		t.Errorf("bot ran %d times, want 1", b.turns.Load())
	}
}

func TestBotFailureReleasesTheLease(t *testing.T) {
	for _, tc := range []struct {
		name string
		bot  *countingBot
		msg  string
	}{
		{"error", &countingBot{fail: errors.New("model overloaded")}, "failed"},
		{"timeout", &countingBot{delay: time.Second}, "in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.bot)
			res := f.do(t, post(hello))
			assertError(t, res, 502, "bot_failed", "")
			if !strings.Contains(res.Body, tc.msg) {
				t.Errorf("body %s does not say %q", res.Body, tc.msg)
			}
			if n := f.store.Len(); n != 0 {
				t.Errorf("%d records left after a bot failure, want 0", n)
			}
			tc.bot.fail, tc.bot.delay = nil, 0
			if res := f.do(t, post(hello)); res.StatusCode != 200 {
				t.Errorf("retry = %d %s, want 200", res.StatusCode, res.Body)
			}
			if got := len(f.queued(t)); got != 1 {
				t.Errorf("%d queued, want 1", got)
			}
		})
	}
}

func TestCrashThenRetryEnqueuesOneSet(t *testing.T) {
	for _, step := range []string{"leased", "enqueued"} {
		t.Run("after "+step, func(t *testing.T) {
			b := &countingBot{replies: 3}
			f := newFixture(t, b)
			f.h.crash = func(s string) error {
				if s == step {
					return errors.New("crash " + s)
				}
				return nil
			}
			if res := f.do(t, post(hello)); res.StatusCode < 500 {
				t.Fatalf("crashed request answered %d", res.StatusCode)
			}
			f.h.crash = nil
			// Before the lease runs out, a retry is told to wait.
			assertError(t, f.do(t, post(hello)), 409, "in_progress", "messageId")
			f.clock.Advance(6 * time.Second)
			res := f.do(t, post(hello))
			if res.StatusCode != 200 {
				t.Fatalf("retry after the lease = %d %s, want 200", res.StatusCode, res.Body)
			}
			q := f.queued(t)
			if len(q) != 3 {
				t.Fatalf("%d queued, want exactly one set of 3", len(q))
			}
			for i, d := range q {
				if d.ID != message.ReplyRef("c1", "m1", i) {
					t.Errorf("queued[%d] = %s, want reply %d", i, d.ID, i)
				}
			}
			if replay := f.do(t, post(hello)); replay.Headers["Idempotent-Replayed"] != "true" || replay.Body != res.Body {
				t.Errorf("replay after recovery = %d %q", replay.StatusCode, replay.Body)
			}
		})
	}
	t.Run("before completion", func(t *testing.T) {
		// The completion write fails: the messages are queued, the caller gets a 5xx,
		// and its retry after the lease finishes without queueing them twice.
		f := newFixture(t, &countingBot{replies: 3})
		failing := &failingComplete{Store: f.store}
		f.h.records = failing
		if res := f.do(t, post(hello)); res.StatusCode != 503 {
			t.Fatalf("status %d, want 503", res.StatusCode)
		}
		f.h.records = f.store
		f.clock.Advance(6 * time.Second)
		if res := f.do(t, post(hello)); res.StatusCode != 200 {
			t.Fatalf("retry = %d %s", res.StatusCode, res.Body)
		}
		if got := len(f.queued(t)); got != 3 {
			t.Errorf("%d queued, want exactly one set of 3", got)
		}
	})
}

type failingComplete struct{ *inmem.Store }

func (failingComplete) Complete(context.Context, string, string, []byte, time.Time) error {
	return errors.New("dynamodb: throttled")
}

func TestRoutingAndEncoding(t *testing.T) {
	f := newFixture(t, nil)
	req := post(hello)
	req.RawPath = "/v1/messages"
	assertError(t, f.do(t, req), 404, "not_found", "")

	req = post(hello)
	req.RequestContext.HTTP.Method = "GET"
	res := f.do(t, req)
	assertError(t, res, 405, "method_not_allowed", "")
	if res.Headers["Allow"] != "POST" {
		t.Errorf("Allow = %q, want POST", res.Headers["Allow"])
	}

	req = post(hello)
	req.RawPath, req.RequestContext.Stage = "/prod/", "prod"
	if res := f.do(t, req); res.StatusCode != 200 {
		t.Errorf("named stage path: %d %s", res.StatusCode, res.Body)
	}

	req = post(strings.Replace(hello, "m1", "m2", 1))
	req.Body, req.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(req.Body)), true
	if res := f.do(t, req); res.StatusCode != 200 {
		t.Errorf("base64 body: %d %s", res.StatusCode, res.Body)
	}

	req = post(strings.Replace(hello, "m1", "m3", 1))
	req.Headers = map[string]string{"Authorization": "BEARER " + testToken}
	if res := f.do(t, req); res.StatusCode != 200 {
		t.Errorf("scheme in capitals, header not lowercased: %d %s", res.StatusCode, res.Body)
	}
}

func TestPayloadDefaults(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"absent", `{"userId":"u","messageId":"p1","conversationId":"c","type":"text","text":"hi"}`, `{"text":"hi"}`},
		{"null", `{"userId":"u","messageId":"p2","conversationId":"c","type":"text","text":"hi","payload":null}`, `{"text":"hi"}`},
		{"no text", `{"userId":"u","messageId":"p3","conversationId":"c","type":"image","text":"a cat","payload":{"imageUrl":"https://x/cat.png"}}`, `{"imageUrl":"https://x/cat.png","text":"a cat"}`},
		{"own text kept", `{"userId":"u","messageId":"p4","conversationId":"c","type":"text","text":"hi","payload":{"text":"other","extra":{"a":1.50}}}`, `{"extra":{"a":1.50},"text":"other"}`},
		{"html kept", `{"userId":"u","messageId":"p5","conversationId":"c","type":"text","text":"<b>&</b>"}`, `{"text":"<b>&</b>"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.h.bot = bot.Echo{}
			if res := f.do(t, post(tc.body)); res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, res.Body)
			}
			q := f.queued(t)
			var w message.Webhook
			if err := json.Unmarshal(q[0].Body, &w); err != nil {
				t.Fatal(err)
			}
			if string(w.Payload) != tc.want {
				t.Errorf("payload = %s, want %s", w.Payload, tc.want)
			}
		})
	}
}

func assertError(t *testing.T, res events.APIGatewayV2HTTPResponse, status int, code, field string) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		t.Fatalf("error body %q: %v", res.Body, err)
	}
	if res.StatusCode != status || body.Error.Code != code || body.Error.Field != field || body.Error.Message == "" {
		t.Errorf("got %d %s; want %d code %q field %q and a message", res.StatusCode, res.Body, status, code, field)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func TestBotBusyAnswers503AndReleasesTheLease(t *testing.T) {
	f := newFixture(t, &countingBot{fail: &message.BotBusyError{RetryAfter: 7 * time.Second, Err: errors.New("openai: HTTP 429")}})
	res := f.do(t, post(hello))
	assertError(t, res, 503, "bot_unavailable", "")
	if res.Headers["Retry-After"] != "7" {
		t.Errorf("Retry-After = %q, want 7", res.Headers["Retry-After"])
	}
	if f.store.Len() != 0 {
		t.Error("the lease was not released")
	}
	f.bot.fail = nil
	if res := f.do(t, post(hello)); res.StatusCode != 200 {
		t.Errorf("retry = %d", res.StatusCode)
	}
}
