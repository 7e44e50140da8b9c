package devstack_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/webhook"
)

func config(t *testing.T, env map[string]string) devstack.Config {
	t.Helper()
	if env["PORT"] == "" {
		env["PORT"] = "0"
	}
	cfg, err := devstack.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func send(t *testing.T, url, token, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// POST → echo → a real HTTP receiver gets the exact six-field body, signed.
func TestEndToEndEchoReachesTheReceiver(t *testing.T) {
	type hit struct {
		body    string
		headers http.Header
	}
	got := make(chan hit, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- hit{string(b), r.Header.Clone()}
	}))
	defer receiver.Close()

	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	cfg := config(t, map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": receiver.URL + "/bot", "PARLEY_TOKEN": "s3cret", "PARLEY_SIGNING_SECRET": secret})
	logs := &syncWriter{w: &bytes.Buffer{}}
	s, err := devstack.Start(cfg, io.Discard, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	body := `{"userId":"u-42","messageId":"m-1","conversationId":"conv-9","type":"choice","text":"Pick one","payload":{"text":"Pick one","options":[{"label":"A","value":"a"}]}}`
	res := send(t, s.URL, "s3cret", body)
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("POST = %d %s", res.StatusCode, b)
	}
	select {
	case h := <-got:
		want := `{"type":"choice","payload":{"options":[{"label":"A","value":"a"}],"text":"Pick one"},"conversationId":"conv-9","botpressUserId":"` +
			message.UserRef(message.DefaultChannel, "u-42") + `","botpressMessageId":"` + message.ReplyRef(message.DefaultChannel, "conv-9", "m-1", 0) + `","botpressConversationId":"` + message.ConversationRef(message.DefaultChannel, "conv-9") + `"}`
		if h.body != want {
			t.Errorf("receiver got\n%s\nwant\n%s", h.body, want)
		}
		secrets, _ := webhook.ParseSecrets(secret)
		if err := webhook.Verify(secrets, h.headers, []byte(h.body), time.Minute, time.Now()); err != nil {
			t.Errorf("signature: %v", err)
		}
		if h.headers.Get("Parley-In-Reply-To") != "m-1" || h.headers.Get("Content-Type") != "application/json" {
			t.Errorf("headers = %v", h.headers)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered within 10s")
	}
	if wrong := send(t, s.URL, "dev-token", body); wrong.StatusCode != 401 {
		t.Errorf("default token accepted when PARLEY_TOKEN is set: %d", wrong.StatusCode)
	}
	time.Sleep(100 * time.Millisecond) // the delivery's log line follows the POST
	if strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), "Pick one") || !strings.Contains(logs.String(), `"msg":"delivered"`) {
		t.Errorf("the logs hold the token or the message text, or miss the delivery:\n%s", logs.String())
	}
}

func TestBuiltInInboxPrintsDeliveries(t *testing.T) {
	var out syncWriter
	out.w = &bytes.Buffer{}
	s, err := devstack.Start(config(t, map[string]string{}), &out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	res := send(t, s.URL, "dev-token", `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hello inbox"}`)
	if res.StatusCode != 200 {
		t.Fatalf("POST = %d", res.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "hello inbox") {
		if time.Now().After(deadline) {
			t.Fatalf("inbox printed %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "signature ok") || !strings.Contains(out.String(), `in reply to "m1"`) {
		t.Errorf("inbox printed %q, want the signature check and the messageId", out.String())
	}
}

func TestConfigErrorsAreReportedTogether(t *testing.T) {
	env := map[string]string{"PORT": "http", "PARLEY_BOT": "nope", "PARLEY_MAX_ATTEMPTS": "0", "PARLEY_RETRY_MIN_DELAY": "soon", "PARLEY_RESPONSE_ENDPOINT_URL": "ftp://x"}
	_, err := devstack.ConfigFromEnv(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"PORT", "PARLEY_BOT", "PARLEY_MAX_ATTEMPTS", "PARLEY_RETRY_MIN_DELAY", "PARLEY_RESPONSE_ENDPOINT_URL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

// Shutdown waits for a delivery in flight instead of cutting it off.
func TestGracefulShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var delivered sync.WaitGroup
	delivered.Add(1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		delivered.Done()
	}))
	defer receiver.Close()
	s, err := devstack.Start(config(t, map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": receiver.URL}), io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	send(t, s.URL, "dev-token", `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"x"}`)
	<-started
	closed := make(chan error)
	go func() { closed <- s.Close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a delivery was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := http.Get(s.URL); err == nil {
		t.Error("still serving after Close")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
