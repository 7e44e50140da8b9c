package devstack_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/devstack"
)

// receiverOf collects the webhook bodies a stack delivers.
func receiverOf(t *testing.T) (string, func(n int) []string) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			got := append([]string(nil), bodies...)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d deliveries, want %d", len(got), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func startWith(t *testing.T, env map[string]string) *devstack.Stack {
	t.Helper()
	s, err := devstack.Start(config(t, env), io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func payloadOf(t *testing.T, body string) (string, string) {
	var w struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatal(err)
	}
	return w.Type, string(w.Payload)
}

func TestRulesBotEndToEnd(t *testing.T) {
	url, wait := receiverOf(t)
	s := startWith(t, map[string]string{"PARLEY_BOT": "rules", "PARLEY_RESPONSE_ENDPOINT_URL": url})
	send(t, s.URL, "dev-token", `{"userId":"u","messageId":"r1","conversationId":"c","type":"text","text":"show me a picture"}`)
	typ, payload := payloadOf(t, wait(1)[0])
	if typ != "image" || !strings.Contains(payload, `"imageUrl"`) {
		t.Errorf("delivered %s %s, want the example's image", typ, payload)
	}
}

func TestLLMBotEndToEndWithHistory(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Role, Content string }
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		var parts []string
		for _, m := range req.Messages {
			parts = append(parts, m.Role+": "+m.Content)
		}
		mu.Lock()
		calls = append(calls, strings.Join(parts, " | "))
		n := len(calls)
		mu.Unlock()
		answer := map[int]string{1: "Nice to meet you, Ada.", 2: "You are Ada."}[n]
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"role": "assistant", "content": answer}}}})
	}))
	defer llm.Close()
	url, wait := receiverOf(t)
	s := startWith(t, map[string]string{"PARLEY_BOT": "llm", "PARLEY_LLM_BASE_URL": llm.URL, "PARLEY_LLM_MODEL": "local-model",
		"PARLEY_LLM_SYSTEM_PROMPT": "Be brief.", "PARLEY_RESPONSE_ENDPOINT_URL": url})
	send(t, s.URL, "dev-token", `{"userId":"u","messageId":"l1","conversationId":"c","type":"text","text":"I am Ada"}`)
	wait(1)
	second := `{"userId":"u","messageId":"l2","conversationId":"c","type":"text","text":"who am I?"}`
	send(t, s.URL, "dev-token", second)
	got := wait(2)
	if _, p := payloadOf(t, got[1]); p != `{"text":"You are Ada."}` {
		t.Errorf("second answer = %s", p)
	}
	want := "system: Be brief. | user: I am Ada | assistant: Nice to meet you, Ada. | user: who am I?"
	mu.Lock()
	if len(calls) != 2 || calls[1] != want {
		t.Errorf("provider calls = %q\nwant the second to be %q", calls, want)
	}
	mu.Unlock()
	// A replay answers from the record: the provider is not called again.
	if res := send(t, s.URL, "dev-token", second); res.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("not replayed")
	}
	mu.Lock()
	if len(calls) != 2 {
		t.Errorf("%d provider calls after a replay, want 2", len(calls))
	}
	mu.Unlock()
	// The history endpoint lists the whole conversation.
	req, _ := http.NewRequest("GET", s.URL+"v1/conversations/c/messages", nil)
	req.Header.Set("Authorization", "bearer dev-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct{ Messages []struct{ Direction string } }
	_ = json.NewDecoder(res.Body).Decode(&page)
	if len(page.Messages) != 4 {
		t.Errorf("history has %d messages, want 4", len(page.Messages))
	}
}

func TestHTTPBotEndToEnd(t *testing.T) {
	rasa := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Sender, Message string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		io.WriteString(w, `[{"recipient_id":"`+req.Sender+`","text":"You said: `+req.Message+`","buttons":[{"title":"Again","payload":"/again"}]}]`)
	}))
	defer rasa.Close()
	url, wait := receiverOf(t)
	s := startWith(t, map[string]string{"PARLEY_BOT": "http", "PARLEY_HTTP_BOT_URL": rasa.URL + "/webhooks/rest/webhook", "PARLEY_RESPONSE_ENDPOINT_URL": url})
	send(t, s.URL, "dev-token", `{"userId":"u","messageId":"h1","conversationId":"c","type":"text","text":"ping"}`)
	typ, payload := payloadOf(t, wait(1)[0])
	if typ != "choice" || payload != `{"options":[{"label":"Again","value":"/again"}],"text":"You said: ping"}` {
		t.Errorf("delivered %s %s", typ, payload)
	}
}

func TestBotConfigErrorsAtStart(t *testing.T) {
	for env, want := range map[string]map[string]string{
		"PARLEY_LLM_MODEL":    {"PARLEY_BOT": "llm"},
		"PARLEY_HTTP_BOT_URL": {"PARLEY_BOT": "http"},
		"rules file":          {"PARLEY_BOT": "rules", "PARLEY_RULES_FILE": "/no/such/file.json"},
	} {
		_, err := devstack.ConfigFromEnv(func(k string) string { return want[k] })
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("config %v: error %v, want it to mention %s", want, err, env)
		}
	}
}

// A bot that takes 12 s — an LLM agent, a human — works end to end: the POST is
// answered at once, the reply comes when the bot has it.
func TestASlowHTTPBotAnswersAfterThePOST(t *testing.T) {
	t.Parallel()
	rasa := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(12 * time.Second):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `[{"recipient_id":"c","text":"took my time"}]`)
	}))
	defer rasa.Close()
	url, wait := receiverOf(t)
	s := startWith(t, map[string]string{"PARLEY_BOT": "http", "PARLEY_HTTP_BOT_URL": rasa.URL, "PARLEY_BOT_TIMEOUT": "20s", "PARLEY_RESPONSE_ENDPOINT_URL": url})
	start := time.Now()
	res := send(t, s.URL, "dev-token", `{"userId":"u","messageId":"slow1","conversationId":"c","type":"text","text":"think hard"}`)
	if took := time.Since(start); res.StatusCode != 200 || took > time.Second {
		t.Fatalf("POST = %d after %s, want 200 at once", res.StatusCode, took)
	}
	got := wait(1)
	if took := time.Since(start); took < 12*time.Second {
		t.Errorf("the reply came after %s, before the bot answered", took)
	}
	if _, p := payloadOf(t, got[0]); p != `{"text":"took my time"}` {
		t.Errorf("delivered %s", p)
	}
}
