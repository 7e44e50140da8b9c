package inbound

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/fakeclock"
	"github.com/parley-chat/parley/shared/token"
)

const testToken = "test-token"

type fixture struct {
	h     *Handler
	store *inmem.Store
	queue *inmem.Queue
	clock *fakeclock.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	f := &fixture{store: inmem.NewStore(), queue: inmem.NewQueue(inmem.QueueConfig{}), clock: clock}
	f.queue.SetClock(clock.Now)
	f.h = New(f.store, f.queue, token.NewStatic(testToken), Config{}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
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

// queued is a job as it sits in the queue.
type queued struct {
	job    message.Job
	resend bool
}

// queued drains the queue and returns the jobs in order.
func (f *fixture) queued(t *testing.T) []queued {
	t.Helper()
	var out []queued
	for {
		msgs, err := f.queue.Receive(context.Background(), 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			j, err := message.DecodeJob([]byte(m.Body))
			if err != nil {
				t.Fatal(err)
			}
			resend := m.MessageAttributes[message.AttrResend].StringValue
			out = append(out, queued{j, resend != nil && *resend == "true"})
			if err := f.queue.Ack(context.Background(), []string{m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

const hello = `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`

func TestAcceptAnswersAndHandsOffOneJob(t *testing.T) {
	f := newFixture(t)
	res := f.do(t, post(hello))
	if res.StatusCode != 200 {
		t.Fatalf("status %d, body %s; want 200", res.StatusCode, res.Body)
	}
	var body struct {
		Message, User, Conversation map[string]any
	}
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		t.Fatal(err)
	}
	ch := message.DefaultChannel
	if body.Message["id"] != message.MessageRef(ch, "c1", "m1") || body.User["id"] != message.UserRef(ch, "u1") || body.Conversation["id"] != message.ConversationRef(ch, "c1") {
		t.Errorf("ids = %v %v %v, want the derived ids", body.Message["id"], body.User["id"], body.Conversation["id"])
	}
	// The original's objects each carry createdAt and updatedAt.
	for name, obj := range map[string]map[string]any{"message": body.Message, "user": body.User, "conversation": body.Conversation} {
		if obj["createdAt"] != "2026-11-23T10:00:00Z" || obj["updatedAt"] != obj["createdAt"] {
			t.Errorf("%s createdAt %v updatedAt %v, want the acceptance time in both", name, obj["createdAt"], obj["updatedAt"])
		}
	}
	q := f.queued(t)
	if len(q) != 1 {
		t.Fatalf("%d jobs queued, want 1", len(q))
	}
	j := q[0].job
	if j.Kind != message.KindTurn || j.Ref != message.MessageRef(ch, "c1", "m1") || j.ConversationRef != message.ConversationRef(ch, "c1") ||
		j.Message.Text != "hi" || string(j.Message.Payload) != `{"text":"hi"}` || !j.CreatedAt.Equal(f.clock.Now()) || q[0].resend {
		t.Errorf("job = %+v resend %v", j, q[0].resend)
	}
}

// The POST is answered before the bot runs: no bot is wired into the handler at all,
// and nothing but the record and the job is written.
func TestAcceptWritesOneRecordAndNoExchange(t *testing.T) {
	f := newFixture(t)
	f.do(t, post(hello))
	if records, exchanges := f.store.Records(); records != 1 || exchanges != 0 {
		t.Errorf("store holds %d records, %d exchanges; want 1, 0", records, exchanges)
	}
}

func TestReplays(t *testing.T) {
	f := newFixture(t)
	first := f.do(t, post(hello))
	if first.StatusCode != 200 {
		t.Fatalf("first: %d %s", first.StatusCode, first.Body)
	}
	if _, ok := first.Headers["Idempotent-Replayed"]; ok {
		t.Error("the first answer carries Idempotent-Replayed")
	}
	f.clock.Advance(time.Minute)
	again := f.do(t, post(hello))
	if again.StatusCode != 200 || again.Body != first.Body || again.Headers["Idempotent-Replayed"] != "true" {
		t.Errorf("replay = %d %q replayed=%q, want 200, the same body, Idempotent-Replayed: true", again.StatusCode, again.Body, again.Headers["Idempotent-Replayed"])
	}
	// Byte-different but equal JSON is the same message.
	reordered := `{"text":"hi","type":"text","conversationId":"c1","messageId":"m1", "userId":"u1"}`
	if res := f.do(t, post(reordered)); res.Headers["Idempotent-Replayed"] != "true" {
		t.Errorf("reordered body = %d, not a replay", res.StatusCode)
	}
	// Within the queue's five-minute window the resent job is a copy the queue drops.
	if q := f.queued(t); len(q) != 1 {
		t.Errorf("%d jobs queued after two replays within a minute, want 1", len(q))
	}
	other := f.do(t, post(strings.Replace(hello, `"c1"`, `"c2"`, 1)))
	if other.StatusCode != 200 || other.Headers["Idempotent-Replayed"] != "" {
		t.Errorf("the same messageId in another conversation = %d replayed=%q, want a fresh 200", other.StatusCode, other.Headers["Idempotent-Replayed"])
	}
	reused := f.do(t, post(strings.Replace(hello, `"hi"`, `"hello"`, 1)))
	assertError(t, reused, 409, "message_id_reused", "messageId")
	if reused.Headers["Retry-After"] != "" {
		t.Error("a reused messageId carries Retry-After")
	}
}

// Past the deduplication window a replay sends the job again only if it never ran.
func TestLateReplaySendsTheJobOnlyIfItNeverRan(t *testing.T) {
	f := newFixture(t)
	f.do(t, post(hello))
	f.queued(t) // the job is taken, and never runs
	f.clock.Advance(10 * time.Minute)
	if res := f.do(t, post(hello)); res.Headers["Idempotent-Replayed"] != "true" {
		t.Fatalf("late replay = %d %s", res.StatusCode, res.Body)
	}
	q := f.queued(t)
	if len(q) != 1 || !q[0].resend {
		t.Fatalf("late replay of a job that never ran queued %+v, want one copy marked resend", q)
	}
	// Once the job has run, a late replay sends nothing.
	turn := message.NewTurn(message.DefaultChannel, q[0].job.Message)
	x := message.Answer(turn, q[0].job.CreatedAt, nil, f.clock.Now())
	x.ExpiresAt = f.clock.Now().Add(time.Hour)
	if _, stored, err := f.store.PutExchange(context.Background(), x); err != nil || !stored {
		t.Fatal(stored, err)
	}
	f.clock.Advance(10 * time.Minute)
	f.do(t, post(hello))
	if q := f.queued(t); len(q) != 0 {
		t.Errorf("late replay of a job that ran queued %d, want 0", len(q))
	}
}

// A crash after the record is written and before the job is sent, then the caller's
// retry: the job is sent then, once.
func TestCrashThenRetrySendsTheJobOnce(t *testing.T) {
	for _, step := range []string{"accepted", "sent"} {
		t.Run("after "+step, func(t *testing.T) {
			f := newFixture(t)
			f.h.cfg.Fault = func(s string) error {
				if s == step {
					return errors.New("crash " + s)
				}
				return nil
			}
			if res := f.do(t, post(hello)); res.StatusCode != 503 {
				t.Fatalf("crashed request answered %d, want 503", res.StatusCode)
			}
			f.h.cfg.Fault = nil
			f.clock.Advance(2 * time.Second)
			res := f.do(t, post(hello))
			if res.StatusCode != 200 || res.Headers["Idempotent-Replayed"] != "true" {
				t.Fatalf("retry = %d %s, want a 200 replay", res.StatusCode, res.Body)
			}
			if q := f.queued(t); len(q) != 1 {
				t.Fatalf("%d jobs queued, want exactly 1", len(q))
			}
		})
	}
}

type failingQueue struct{ err error }

func (q failingQueue) Send(context.Context, message.Job, bool) error { return q.err }

type failingStore struct {
	*inmem.Store
	err   error
	block bool
}

func (s failingStore) Accept(ctx context.Context, rec message.Record, now time.Time) (message.Record, bool, error) {
	if s.block {
		<-ctx.Done()
		return message.Record{}, false, ctx.Err()
	}
	return message.Record{}, false, s.err
}

func TestDependencyFailuresAnswer503(t *testing.T) {
	t.Run("queue down, then back", func(t *testing.T) {
		f := newFixture(t)
		f.h.queue = failingQueue{errors.New("sqs: throttled")}
		res := f.do(t, post(hello))
		assertError(t, res, 503, "queue_unavailable", "")
		f.h.queue = f.queue
		if res := f.do(t, post(hello)); res.StatusCode != 200 {
			t.Fatalf("retry = %d %s", res.StatusCode, res.Body)
		}
		if q := f.queued(t); len(q) != 1 {
			t.Errorf("%d jobs queued after the retry, want 1", len(q))
		}
	})
	t.Run("store down", func(t *testing.T) {
		f := newFixture(t)
		f.h.store = failingStore{Store: f.store, err: errors.New("dynamodb: 500")}
		assertError(t, f.do(t, post(hello)), 503, "store_unavailable", "")
		if q := f.queued(t); len(q) != 0 {
			t.Errorf("%d jobs queued while the store was down, want 0", len(q))
		}
	})
	t.Run("store hangs", func(t *testing.T) {
		f := newFixture(t)
		f.h.cfg.CallTimeout = 50 * time.Millisecond
		f.h.store = failingStore{Store: f.store, block: true}
		start := time.Now()
		assertError(t, f.do(t, post(hello)), 503, "store_unavailable", "")
		if took := time.Since(start); took > time.Second {
			t.Errorf("a hung store answered after %s, want about the call timeout (50ms)", took)
		}
	})
}

// scoped authenticates one token with the given channel and scope.
type scoped struct{ channel, scope string }

func (s scoped) Authenticate(ctx context.Context, plain string) (message.Token, error) {
	if plain != testToken {
		return message.Token{}, &message.Error{Kind: message.Unauthorized}
	}
	return message.Token{Channel: s.channel, Scope: s.scope}, nil
}

func TestTokensActForTheirChannelAndScope(t *testing.T) {
	f := newFixture(t)
	f.h.auth = scoped{"ch_a", message.ScopeBot}
	assertError(t, f.do(t, post(hello)), 403, "wrong_scope", "")

	f.h.auth = scoped{"ch_a", ""}
	res := f.do(t, post(hello))
	if res.StatusCode != 200 || !strings.Contains(res.Body, message.ConversationRef("ch_a", "c1")) {
		t.Fatalf("channel token = %d %s, want 200 with the channel's ids", res.StatusCode, res.Body)
	}
	if message.ConversationRef("ch_a", "c1") == message.ConversationRef(message.DefaultChannel, "c1") {
		t.Fatal("channels derive the same ids")
	}
	// The same ids in the default channel are another message.
	f.h.auth = token.NewStatic(testToken)
	if res := f.do(t, post(hello)); res.Headers["Idempotent-Replayed"] != "" {
		t.Error("the same messageId in another channel was a replay")
	}
	if q := f.queued(t); len(q) != 2 || q[0].job.Channel != "ch_a" || q[1].job.Channel != message.DefaultChannel {
		t.Errorf("queued %+v, want one job per channel", q)
	}
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/v1/messages", "//", "/./", "/../", "/v1/conversations//messages", "/v1/conversations/%2E%2E/messages"} {
		req := post(hello)
		req.RawPath = p
		assertError(t, f.do(t, req), 404, "not_found", "")
	}
	req := post(hello)
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
		// The original replaces any falsy payload.text: a Next.js client sends "".
		{"empty text replaced", `{"userId":"u","messageId":"p6","conversationId":"c","type":"text","text":"hi","payload":{"text":"","attachments":[1]}}`, `{"attachments":[1],"text":"hi"}`},
		{"null text replaced", `{"userId":"u","messageId":"p7","conversationId":"c","type":"file","text":"a file","payload":{"text":null,"fileUrl":"https://x/f"}}`, `{"fileUrl":"https://x/f","text":"a file"}`},
		{"false text replaced", `{"userId":"u","messageId":"p8","conversationId":"c","type":"text","text":"hi","payload":{"text":false}}`, `{"text":"hi"}`},
		{"zero text replaced", `{"userId":"u","messageId":"p9","conversationId":"c","type":"text","text":"hi","payload":{"text":0}}`, `{"text":"hi"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if res := f.do(t, post(tc.body)); res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, res.Body)
			}
			q := f.queued(t)
			if len(q) != 1 || string(q[0].job.Message.Payload) != tc.want {
				t.Errorf("queued %+v, want one job with payload %s", q, tc.want)
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
