package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// Every command and every group answers --help with exit 0 and its flags.
func TestEveryCommandHelps(t *testing.T) {
	for _, c := range commands {
		for _, h := range []string{"--help", "-h"} {
			var out bytes.Buffer
			args := append(strings.Fields(c.path), h)
			if err := run(context.Background(), args, env(nil), &out, io.Discard); err != nil {
				t.Errorf("parley %s: %v, want exit 0", strings.Join(args, " "), err)
			}
			if !strings.Contains(out.String(), "usage: parley "+c.path) {
				t.Errorf("parley %s printed %q", strings.Join(args, " "), out.String())
			}
		}
	}
	for _, group := range []string{"channel", "token", "dlq", "endpoint"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{group, "--help"}, env(nil), &out, io.Discard); err != nil || !strings.Contains(out.String(), group+" ") {
			t.Errorf("parley %s --help = %v, %q", group, err, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"channel", "create", "--help"}, env(nil), &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), "--url") || !strings.Contains(out.String(), "--llm-api-key-secret") || !strings.Contains(out.String(), "--local") {
		t.Errorf("channel create --help lists no flags: %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, env(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "parley "+webhook.Version) {
		t.Errorf("version = %v, %q", err, out.String())
	}
	for _, bad := range [][]string{{"channel"}, {"channel", "frobnicate"}, {"nope"}, {"token", "revoke"}, {"channel", "show", "a", "b"}, {"token", "list", "--nope"}} {
		if err := run(context.Background(), bad, env(nil), io.Discard, io.Discard); err == nil {
			t.Errorf("parley %v succeeded", bad)
		}
	}
}

// channel and token commands against the table (DynamoDB Local), as against AWS.
func TestChannelCommandsAgainstDynamoDBLocal(t *testing.T) {
	store, e := tableOnDynamoDBLocal(t, "channels")
	ctx := context.Background()
	var out bytes.Buffer
	// Flags before and after the positional argument alike.
	if err := run(ctx, []string{"channel", "create", "--json", "--name", "support desk", "--url", "https://desk.example/bot", "--bot", "rules"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var created struct{ ID, Name, Token, SigningSecret string }
	if err := json.Unmarshal(out.Bytes(), &created); err != nil || !strings.HasPrefix(created.ID, "ch_") || created.Name != "support desk" ||
		!strings.HasPrefix(created.Token, token.Prefix) || !strings.HasPrefix(created.SigningSecret, "whsec_") {
		t.Fatalf("channel create --json printed %s (%v)", out.String(), err)
	}
	tok, err := token.NewTable(store, time.Millisecond).Authenticate(ctx, created.Token)
	if err != nil || tok.Channel != created.ID || tok.Scope != message.ScopeBackend {
		t.Errorf("the channel's token = %+v, %v", tok, err)
	}
	out.Reset()
	if err := run(ctx, []string{"token", "create", "--channel", created.ID, "--scope", "bot", "--name", "agent", "--json"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var bot struct{ ID, Token, Scope string }
	if json.Unmarshal(out.Bytes(), &bot) != nil || bot.Scope != "bot" || bot.ID == "" {
		t.Errorf("token create --json printed %s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"channel", "update", created.ID, "--rotate-secret", "--url", "https://desk.example/v2"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "whsec_") {
		t.Errorf("update --rotate-secret printed %q, want the new secret", out.String())
	}
	ch, _, _ := store.GetChannel(ctx, created.ID)
	if ch.ResponseURL != "https://desk.example/v2" || len(strings.Fields(ch.SigningSecrets)) != 2 || !strings.HasSuffix(ch.SigningSecrets, created.SigningSecret) {
		t.Errorf("stored after update: url %s, %d secrets", ch.ResponseURL, len(strings.Fields(ch.SigningSecrets)))
	}
	out.Reset()
	if err := run(ctx, []string{"channel", "show", created.ID}, e, &out, io.Discard); err != nil || strings.Contains(out.String(), created.SigningSecret) || !strings.Contains(out.String(), "(2 set)") {
		t.Errorf("channel show = %v, %s; want the secrets hidden", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"token", "list", "--channel", created.ID}, e, &out, io.Discard); err != nil || strings.Count(out.String(), created.ID) != 2 || strings.Contains(out.String(), created.Token) {
		t.Errorf("token list = %v\n%s", err, out.String())
	}
	if err := run(ctx, []string{"channel", "update", "default", "--name", "x"}, e, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "deployment's settings") {
		t.Errorf("updating the default channel = %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"channel", "delete", created.ID}, e, &out, io.Discard); err != nil || !strings.Contains(out.String(), "2 token(s) revoked") {
		t.Errorf("channel delete = %v %q", err, out.String())
	}
	if _, err := token.NewTable(store, time.Millisecond).Authenticate(ctx, created.Token); message.KindOf(err) != message.Unauthorized {
		t.Errorf("the deleted channel's token still authenticates: %v", err)
	}
}

// receiver collects what one Response Endpoint gets and verifies each signature with
// the secrets it is given later.
type receiver struct {
	mu   sync.Mutex
	hits []hit
	srv  *httptest.Server
}

type hit struct {
	body    string
	headers http.Header
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.hits = append(r.hits, hit{string(b), req.Header.Clone()})
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) wait(t *testing.T, n int) []hit {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]hit(nil), r.hits...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func postAs(t *testing.T, url, tok, path, body string, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", strings.TrimSuffix(url, "/")+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("POST %s = %d %s", path, res.StatusCode, b)
	}
	return res
}

// Two channels on one local stack, each with its own endpoint, bot and secret: each
// receives only its own replies, signed with its own secret. A bot token pushes a
// message into a conversation between two turns, and it arrives in order.
func TestTwoChannelsOnTheLocalStack(t *testing.T) {
	defaultRx, deskRx := newReceiver(t), newReceiver(t)
	defSecret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s, local := startLocalStack(t, map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": defaultRx.srv.URL,
		"PARLEY_SIGNING_SECRET": defSecret, "PARLEY_ADMIN_TOKEN": "adm_test"})
	e := env(map[string]string{"PARLEY_ADMIN_TOKEN": "adm_test"})
	ctx := context.Background()

	var out bytes.Buffer
	if err := run(ctx, []string{"channel", "create", "--name", "desk", "--url", deskRx.srv.URL, "--bot", "rules", "--local", local, "--json"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var desk struct{ ID, Token, SigningSecret string }
	if err := json.Unmarshal(out.Bytes(), &desk); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"token", "create", "--local", local, "--channel", desk.ID, "--scope", "bot", "--name", "agent", "--json"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var agent struct{ Token string }
	_ = json.Unmarshal(out.Bytes(), &agent)

	// The same conversationId and messageId in both channels.
	msg := `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"help"}`
	postAs(t, s.URL, "dev-token", "/", msg)
	postAs(t, s.URL, desk.Token, "/", msg)
	if res := postAs(t, s.URL, desk.Token, "/", msg); res.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("the desk's repeat was not a replay")
	}
	defHits, deskHits := defaultRx.wait(t, 1), deskRx.wait(t, 1)
	defKeys, _ := webhook.ParseSecrets(defSecret)
	deskKeys, _ := webhook.ParseSecrets(desk.SigningSecret)
	if err := webhook.Verify(defKeys, defHits[0].headers, []byte(defHits[0].body), time.Minute, time.Now()); err != nil {
		t.Errorf("the default channel's delivery: %v", err)
	}
	if err := webhook.Verify(deskKeys, deskHits[0].headers, []byte(deskHits[0].body), time.Minute, time.Now()); err != nil {
		t.Errorf("the desk's delivery: %v", err)
	}
	if webhook.Verify(defKeys, deskHits[0].headers, []byte(deskHits[0].body), time.Minute, time.Now()) == nil {
		t.Error("the desk's delivery verifies with the default channel's secret")
	}
	if !strings.Contains(defHits[0].body, `"text":"help"`) || strings.Contains(deskHits[0].body, `"text":"help"`) {
		t.Errorf("default (echo) got %s; desk (rules) got %s", defHits[0].body, deskHits[0].body)
	}
	if !strings.Contains(deskHits[0].body, message.ConversationRef(desk.ID, "c1")) {
		t.Errorf("the desk's delivery does not carry the desk's conversation id: %s", deskHits[0].body)
	}

	// A turn, a push from the bot side, a turn: delivered in that order.
	postAs(t, s.URL, agent.Token, "/v1/conversations/c1/messages", `{"type":"text","payload":{"text":"An agent joins."}}`, "Idempotency-Key", "join-1")
	postAs(t, s.URL, desk.Token, "/", `{"userId":"u1","messageId":"m2","conversationId":"c1","type":"text","text":"hello"}`)
	hits := deskRx.wait(t, 3)
	if !strings.Contains(hits[1].body, "An agent joins.") || hits[1].headers.Get("Parley-In-Reply-To") != "" {
		t.Errorf("second delivery %s, want the pushed message", hits[1].body)
	}
	if hits[2].headers.Get("Parley-In-Reply-To") != "m2" {
		t.Errorf("third delivery answers %q, want m2", hits[2].headers.Get("Parley-In-Reply-To"))
	}
	if got := defaultRx.wait(t, 1); len(got) != 1 {
		t.Errorf("the default channel received %d, want only its own one", len(got))
	}
	// The push is in the desk's history; the desk's backend cannot see the default
	// channel's conversation list beyond its own.
	req, _ := http.NewRequest("GET", local+"/v1/conversations/c1/messages", nil)
	req.Header.Set("Authorization", "Bearer "+desk.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Messages []message.Entry }
	_ = json.NewDecoder(res.Body).Decode(&page)
	res.Body.Close()
	if len(page.Messages) != 5 {
		t.Errorf("the desk's history has %d entries, want 5 (two turns and their answers, the push)", len(page.Messages))
	}
	// The agent's token may not post user messages.
	req, _ = http.NewRequest("POST", s.URL, strings.NewReader(msg))
	req.Header.Set("Authorization", "Bearer "+agent.Token)
	if res, _ := http.DefaultClient.Do(req); res == nil || res.StatusCode != 403 {
		t.Errorf("a bot token on POST / = %v, want 403", res)
	}
	out.Reset()
	if err := run(ctx, []string{"channel", "list", "--local", local}, e, &out, io.Discard); err != nil || !strings.Contains(out.String(), desk.ID) || !strings.Contains(out.String(), "default") {
		t.Errorf("channel list --local = %v\n%s", err, out.String())
	}
}

// The operator's view of deliveries on the local stack: delivery show and replay, and
// an endpoint's status, disabled by a 410, and enabled again.
func TestDeliveryAndEndpointCommandsOnTheLocalStack(t *testing.T) {
	var mu sync.Mutex
	answer := 500
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		hits = append(hits, hit{string(b), r.Header.Clone()})
		w.WriteHeader(answer)
		if answer != 200 {
			io.WriteString(w, "receiver says no")
		}
		if answer == 500 {
			answer = 200
		}
	}))
	defer srv.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(hits) }
	s, local := startLocalStack(t, map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": srv.URL, "PARLEY_ADMIN_TOKEN": "adm",
		"PARLEY_RETRY_MIN_DELAY": "100ms", "PARLEY_RETRY_MAX_DELAY": "200ms"})
	e := env(map[string]string{"PARLEY_ADMIN_TOKEN": "adm"})
	ctx := context.Background()
	postAs(t, s.URL, "dev-token", "/", `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`)
	waitUntil(t, func() bool { return count() == 2 })
	id := message.ReplyRef(message.DefaultChannel, "c1", "m1", 0)

	var out bytes.Buffer
	if err := run(ctx, []string{"delivery", "show", id, "--local", local}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "delivered") || !strings.Contains(out.String(), "http 500") || !strings.Contains(out.String(), "receiver says no") {
		t.Errorf("delivery show printed:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"delivery", "replay", "--local", local, id}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return count() == 3 })
	mu.Lock()
	if hits[2].headers.Get("webhook-id") != id || hits[2].body != hits[1].body {
		t.Errorf("the replay: id %s, the same body %v", hits[2].headers.Get("webhook-id"), hits[2].body == hits[1].body)
	}
	answer = 410
	mu.Unlock()

	postAs(t, s.URL, "dev-token", "/", `{"userId":"u1","messageId":"m2","conversationId":"c1","type":"text","text":"again"}`)
	waitUntil(t, func() bool {
		out.Reset()
		return run(ctx, []string{"endpoint", "status", "--local", local}, e, &out, io.Discard) == nil && strings.Contains(out.String(), "DISABLED")
	})
	if !strings.Contains(out.String(), "410 Gone") {
		t.Errorf("endpoint status printed:\n%s", out.String())
	}
	mu.Lock()
	answer = 200
	mu.Unlock()
	out.Reset()
	if err := run(ctx, []string{"endpoint", "enable", "--local", local}, e, &out, io.Discard); err != nil || !strings.Contains(out.String(), "enabled") {
		t.Fatalf("endpoint enable = %v %q", err, out.String())
	}
}
