package bot

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// fakeHistory is what the store returns: the conversation so far, oldest first.
type fakeHistory []message.Entry

func (h fakeHistory) RecentHistory(ctx context.Context, channel, conv string, limit int) ([]message.Entry, error) {
	return h[max(len(h)-limit, 0):], nil
}

func entry(dir, text string) message.Entry {
	p, _ := json.Marshal(map[string]string{"text": text})
	return message.Entry{Direction: dir, Type: "text", Payload: p}
}

var history = fakeHistory{
	entry(message.Outgoing, "orphan bot message"), // a history cut mid-conversation starts with the bot
	entry(message.Incoming, "my name is Ada"),
	entry(message.Outgoing, "Hello Ada!"),
	entry(message.Outgoing, "How can I help?"),
	entry(message.Incoming, "what is 2+2"),
	entry(message.Outgoing, "4"),
}

func turn(text string) message.Turn {
	return message.Turn{Message: message.Inbound{Text: text, ConversationID: "c1", UserID: "u1", MessageID: "m9"}, ConversationRef: "conv_x"}
}

type provider struct {
	t       *testing.T
	path    string
	status  int
	headers map[string]string
	answer  string
	delay   time.Duration
	got     map[string]any
	gotHdr  http.Header
}

func (p *provider) server() *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != p.path || r.Method != "POST" {
			p.t.Errorf("request to %s %s, want POST %s", r.Method, r.URL.Path, p.path)
		}
		body, _ := io.ReadAll(r.Body)
		p.got, p.gotHdr = nil, r.Header.Clone()
		if err := json.Unmarshal(body, &p.got); err != nil {
			p.t.Errorf("request body is not JSON: %s", body)
		}
		if p.delay > 0 {
			select {
			case <-time.After(p.delay):
			case <-r.Context().Done():
			}
		}
		for k, v := range p.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(p.status)
		io.WriteString(w, p.answer)
	}))
	p.t.Cleanup(srv.Close)
	return srv
}

func messages(v any) string {
	var parts []string
	for _, m := range v.([]any) {
		mm := m.(map[string]any)
		parts = append(parts, mm["role"].(string)+": "+strings.ReplaceAll(mm["content"].(string), "\n\n", " / "))
	}
	return strings.Join(parts, " | ")
}

func TestOpenAICompatible(t *testing.T) {
	p := &provider{t: t, path: "/v1/chat/completions", status: 200,
		answer: `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"  Your name is Ada.  "},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":5}}`}
	srv := p.server()
	temp := 0.2
	b, err := NewLLM(LLMConfig{BaseURL: srv.URL + "/v1/", Model: "gpt-test", APIKey: "sk-secret", SystemPrompt: "Be brief.", Temperature: &temp, MaxTokens: 64, History: 5}, history, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := b.Reply(context.Background(), turn("what is my name?"))
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 || replies[0].Type != "text" || string(replies[0].Payload) != `{"text":"Your name is Ada."}` {
		t.Errorf("replies = %+v", replies)
	}
	if got := p.gotHdr.Get("Authorization"); got != "Bearer sk-secret" {
		t.Errorf("Authorization = %q", got)
	}
	if p.got["model"] != "gpt-test" || p.got["temperature"] != 0.2 || p.got["max_tokens"] != float64(64) {
		t.Errorf("request = %v", p.got)
	}
	want := "system: Be brief. | user: my name is Ada | assistant: Hello Ada! / How can I help? | user: what is 2+2 | assistant: 4 | user: what is my name?"
	if got := messages(p.got["messages"]); got != want {
		t.Errorf("messages\n got %s\nwant %s", got, want)
	}
}

func TestAnthropicMessages(t *testing.T) {
	p := &provider{t: t, path: "/v1/messages", status: 200,
		answer: `{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Ada, "},{"type":"text","text":"of course."}],"stop_reason":"end_turn"}`}
	srv := p.server()
	b, err := NewLLM(LLMConfig{Provider: "anthropic", BaseURL: srv.URL, Model: "claude-test", APIKey: "ak-secret", SystemPrompt: "Be kind.", History: 3}, history, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := b.Reply(context.Background(), turn("who am I?"))
	if err != nil {
		t.Fatal(err)
	}
	if string(replies[0].Payload) != `{"text":"Ada, of course."}` {
		t.Errorf("replies = %s", replies[0].Payload)
	}
	if p.gotHdr.Get("x-api-key") != "ak-secret" || p.gotHdr.Get("anthropic-version") != "2023-06-01" || p.gotHdr.Get("Authorization") != "" {
		t.Errorf("headers = %v", p.gotHdr)
	}
	if p.got["system"] != "Be kind." || p.got["model"] != "claude-test" || p.got["max_tokens"] != float64(512) {
		t.Errorf("request = %v", p.got)
	}
	// The last 3 entries start with the bot's "How can I help?": dropped, as Anthropic wants the user first.
	if got, want := messages(p.got["messages"]), "user: what is 2+2 | assistant: 4 | user: who am I?"; got != want {
		t.Errorf("messages\n got %s\nwant %s", got, want)
	}
}

func TestLLMErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       provider
		busy    bool
		retry   time.Duration
		message string
	}{
		{"rate limited", provider{status: 429, headers: map[string]string{"Retry-After": "7"}, answer: `{"error":{"message":"Rate limit for user Ada","type":"rate_limit_error"}}`}, true, 7 * time.Second, "HTTP 429 (rate_limit_error)"},
		{"overloaded", provider{status: 529, answer: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}, true, 0, "HTTP 529 (overloaded_error)"},
		{"unavailable", provider{status: 503}, true, 0, "HTTP 503"},
		{"server error", provider{status: 500, answer: `{"error":{"code":"internal"}}`}, false, 0, "HTTP 500 (internal)"},
		{"bad key", provider{status: 401, answer: `{"error":{"type":"invalid_request_error"}}`}, false, 0, "HTTP 401"},
		{"not JSON", provider{status: 200, answer: `<html>`}, false, 0, "not the expected JSON"},
		{"no choices", provider{status: 200, answer: `{"choices":[]}`}, false, 0, "no choices"},
		{"empty answer", provider{status: 200, answer: `{"choices":[{"message":{"content":"  "}}]}`}, false, 0, "no text"},
		{"timeout", provider{status: 200, delay: time.Second, answer: `{}`}, false, 0, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.t, tc.p.path = t, "/chat/completions"
			srv := tc.p.server()
			b, _ := NewLLM(LLMConfig{BaseURL: srv.URL, Model: "m", APIKey: "sk-secret"}, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := b.Reply(ctx, turn("hi"))
			if err == nil {
				t.Fatal("no error")
			}
			var busy *message.BotBusyError
			if errors.As(err, &busy) != tc.busy || (tc.busy && busy.RetryAfter != tc.retry) {
				t.Errorf("error %v: busy %v, want busy %v with Retry-After %s", err, errors.As(err, &busy), tc.busy, tc.retry)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
			if strings.Contains(err.Error(), "sk-secret") || strings.Contains(err.Error(), "Ada") {
				t.Errorf("error %q leaks the key or the provider's message", err)
			}
			if tc.name == "timeout" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout error %v is not DeadlineExceeded", err)
			}
		})
	}
}

func TestLLMConfigErrors(t *testing.T) {
	_, err := NewLLM(LLMConfig{Provider: "bard", BaseURL: "ftp://x"}, nil, nil)
	for _, want := range []string{"provider", "base URL", "model"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
