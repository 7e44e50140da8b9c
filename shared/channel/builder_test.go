package channel_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/channel"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/webhook"
)

var settings = delivery.Settings{Policy: delivery.DefaultPolicy, SendTimeout: 7 * time.Second, BotTimeout: 20 * time.Second}

func secret(s string) (string, []byte) {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(s)), []byte(s)
}

func echoChannel(url string) message.Channel {
	return message.Channel{ID: "ch_test", Name: "test", ResponseURL: url, Bot: message.BotSpec{Kind: "echo"}}
}

func build(t *testing.T, b channel.Builder, c message.Channel) *delivery.Channel {
	t.Helper()
	ch, err := b.Build(context.Background(), c)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return ch
}

type request struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a Response Endpoint that keeps what it gets.
func receiver(t *testing.T) (*httptest.Server, func() []request) {
	var mu sync.Mutex
	var got []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, request{r.URL.Path, r.Header.Clone(), body})
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), got...)
	}
}

// The built sender POSTs to the channel's endpoint, signed with each of its secrets,
// so a receiver knowing either of them during a rotation accepts it.
func TestBuiltSenderSignsWithTheChannelsSecrets(t *testing.T) {
	srv, received := receiver(t)
	newest, newestKey := secret("the newest secret of the channel")
	older, olderKey := secret("the older secret of the channel")
	_, otherKey := secret("another channel's secret")
	c := echoChannel(srv.URL + "/hooks/acme")
	c.SigningSecrets = newest + " " + older
	ch := build(t, channel.Builder{Settings: settings}, c)

	body := []byte(`{"type":"text","payload":{"text":"hi"}}`)
	out := ch.Sender.Send(context.Background(), webhook.Request{ID: "msg_1", Body: body})
	if out.Class != webhook.Delivered {
		t.Fatalf("Send: got %s (%s), want delivered", out.Class, out.Reason)
	}
	reqs := received()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.path != "/hooks/acme" || string(r.body) != string(body) {
		t.Errorf("got %s %s, want /hooks/acme and the body sent", r.path, r.body)
	}
	if n := len(strings.Fields(r.header.Get(webhook.HeaderSignature))); n != 2 {
		t.Errorf("got %d signatures, want one per secret: 2", n)
	}
	for name, key := range map[string][]byte{"newest": newestKey, "older": olderKey} {
		if err := webhook.Verify([][]byte{key}, r.header, r.body, 0, time.Now()); err != nil {
			t.Errorf("verify with the %s secret: %v", name, err)
		}
	}
	if err := webhook.Verify([][]byte{otherKey}, r.header, r.body, 0, time.Now()); !errors.Is(err, webhook.ErrSignature) {
		t.Errorf("verify with another channel's secret: got %v, want ErrSignature", err)
	}
}

func TestRetrySpecOverridesThePolicy(t *testing.T) {
	b := channel.Builder{Settings: settings}
	c := echoChannel("https://acme.example/hook")
	ch := build(t, b, c)
	if ch.Policy != settings.Policy || ch.BotTimeout != settings.BotTimeout || ch.SendTimeout != settings.SendTimeout || ch.ID != c.ID {
		t.Errorf("without a retry spec: got policy %+v, timeouts %s %s; want the deployment's", ch.Policy, ch.BotTimeout, ch.SendTimeout)
	}
	c.Retry = &message.RetrySpec{MinDelay: message.Duration(2 * time.Second), MaxDelay: message.Duration(10 * time.Minute), MaxAttempts: 4}
	ch = build(t, b, c)
	want := settings.Policy // the rest of the deployment's policy, its jitter among it, stays
	want.MinDelay, want.MaxDelay, want.MaxAttempts = 2*time.Second, 10*time.Minute, 4
	if ch.Policy != want {
		t.Errorf("with a retry spec: got %+v, want %+v", ch.Policy, want)
	}
	if settings.Policy != delivery.DefaultPolicy {
		t.Errorf("building changed the deployment's policy")
	}
	for name, r := range map[string]message.RetrySpec{
		"delay over 12h":       {MinDelay: message.Duration(time.Hour), MaxDelay: message.Duration(13 * time.Hour), MaxAttempts: 3},
		"over 100 attempts":    {MinDelay: message.Duration(time.Second), MaxDelay: message.Duration(time.Second), MaxAttempts: 101},
		"beyond the retention": {MinDelay: message.Duration(time.Hour), MaxDelay: message.Duration(12 * time.Hour), MaxAttempts: 40},
		"no attempts":          {MinDelay: message.Duration(time.Second), MaxDelay: message.Duration(time.Second)},
	} {
		c.Retry = &r
		if _, err := b.Build(context.Background(), c); err == nil || !strings.Contains(err.Error(), "retry") {
			t.Errorf("%s: got %v, want the retry spec refused", name, err)
		}
	}
}

type secrets map[string]string

func (s secrets) Secret(ctx context.Context, name string) (string, error) {
	v, ok := s[name]
	if !ok {
		return "", errors.New("ResourceNotFoundException: no such secret")
	}
	return v, nil
}

// The bots are the channel's: its rules, its llm settings with the key read from the
// secret it names, its bot service.
func TestBuiltBot(t *testing.T) {
	ctx := context.Background()
	turn := message.NewTurn("ch_test", message.Inbound{UserID: "u", MessageID: "m", ConversationID: "c", Type: "text",
		Text: "when are you open?", Payload: json.RawMessage(`{"text":"when are you open?"}`)})
	reply := func(t *testing.T, ch *delivery.Channel) string {
		t.Helper()
		rs, err := ch.Bot.Reply(ctx, turn)
		if err != nil || len(rs) != 1 {
			t.Fatalf("Reply: got %d replies, %v; want 1", len(rs), err)
		}
		return string(rs[0].Payload)
	}
	t.Run("rules", func(t *testing.T) {
		c := echoChannel("https://acme.example/hook")
		c.Bot = message.BotSpec{Kind: "rules", Rules: json.RawMessage(`{"intents": [{"name": "hours", "keywords": ["open"],
			"replies": [{"type": "text", "payload": {"text": "9 to 5"}}]}]}`)}
		if got := reply(t, build(t, channel.Builder{Settings: settings}, c)); got != `{"text": "9 to 5"}` && got != `{"text":"9 to 5"}` {
			t.Errorf("got %s, want the channel's rule", got)
		}
	})
	t.Run("llm key from its secret", func(t *testing.T) {
		auth := make(chan string, 1)
		llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth <- r.Header.Get("Authorization")
			io.WriteString(w, `{"choices":[{"message":{"content":"from the model"}}]}`)
		}))
		defer llm.Close()
		c := echoChannel("https://acme.example/hook")
		c.Bot = message.BotSpec{Kind: "llm", LLM: &message.LLMSpec{BaseURL: llm.URL, Model: "m", APIKeySecret: "acme-llm-key"}}
		b := channel.Builder{Settings: settings, Secrets: secrets{"acme-llm-key": "sk-from-secrets-manager"}}
		if got := reply(t, build(t, b, c)); got != `{"text":"from the model"}` {
			t.Errorf("got %s, want the model's answer", got)
		}
		if got := <-auth; got != "Bearer sk-from-secrets-manager" {
			t.Errorf("Authorization: got %q, want the secret's key", got)
		}
		c.Bot.LLM.APIKeySecret = "missing-secret"
		if _, err := b.Build(ctx, c); err == nil || !strings.Contains(err.Error(), "bot.llm.apiKeySecret:") {
			t.Errorf("a missing secret: got %v, want an error naming bot.llm.apiKeySecret", err)
		}
	})
	t.Run("http", func(t *testing.T) {
		c := echoChannel("https://acme.example/hook")
		c.Bot = message.BotSpec{Kind: "http", HTTPURL: "http://rasa.example/webhooks/rest/webhook"}
		build(t, channel.Builder{Settings: settings}, c)
	})
}
