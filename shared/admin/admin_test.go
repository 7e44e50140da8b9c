package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/fakeclock"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

func newService(t *testing.T, def *message.Channel) (*admin.Service, *inmem.Store, *fakeclock.Clock) {
	t.Helper()
	store := inmem.NewStore()
	c := fakeclock.New(time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.UTC))
	s := admin.New(store, def)
	s.SetClock(c.Now)
	return s, store, c
}

// authenticate checks a token as the inbound function does, through a fresh cache.
func authenticate(t *testing.T, store *inmem.Store, plain string) (message.Token, error) {
	t.Helper()
	return token.NewTable(store, time.Minute).Authenticate(context.Background(), plain)
}

func stored(t *testing.T, store *inmem.Store, id string) message.Channel {
	t.Helper()
	c, found, err := store.GetChannel(context.Background(), id)
	if err != nil || !found {
		t.Fatalf("GetChannel %s: got found %v, err %v", id, found, err)
	}
	return c
}

func field(err error) string {
	var e *message.Error
	if errors.As(err, &e) && e.Kind == message.Invalid {
		return e.Field
	}
	return ""
}

var channelID = regexp.MustCompile(`^ch_[0-9a-z]{16}$`)

func TestCreateChannel(t *testing.T) {
	ctx := context.Background()
	s, store, clk := newService(t, nil)
	created, err := s.CreateChannel(ctx, message.Channel{Name: "web chat", ResponseURL: "https://web.example/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if !channelID.MatchString(created.ID) {
		t.Errorf("id: got %q, want ch_ and 16 base32 characters", created.ID)
	}
	if created.Name != "web chat" || created.Channel.ID != created.ID || created.Channel.Bot.Kind != "echo" {
		t.Errorf("created: got name %q, channel id %q, bot %q; want web chat, %s, echo", created.Name, created.Channel.ID, created.Channel.Bot.Kind, created.ID)
	}
	keys, err := webhook.ParseSecrets(created.SigningSecret)
	if err != nil || !strings.HasPrefix(created.SigningSecret, "whsec_") || len(keys) != 1 || len(keys[0]) != 32 {
		t.Errorf("signing secret: got %d keys (%v), want one whsec_ secret of 32 bytes", len(keys), err)
	}
	if created.Channel.SigningSecrets != "(1 set)" {
		t.Errorf("created channel: signingSecrets: got %q, want it redacted", created.Channel.SigningSecrets)
	}
	b, _ := json.Marshal(created.Channel)
	if strings.Contains(string(b), strings.TrimPrefix(created.SigningSecret, "whsec_")) {
		t.Errorf("the created channel shows its secret: %s", b)
	}

	c := stored(t, store, created.ID)
	want := clk.Now().Truncate(time.Millisecond)
	if c.SigningSecrets != created.SigningSecret || c.Bot.Kind != "echo" || c.ResponseURL != "https://web.example/hook" ||
		!c.CreatedAt.Equal(want) || !c.UpdatedAt.Equal(want) || c.Retry != nil {
		t.Errorf("stored channel: got %+v; want the secret shown, echo, created and updated at %s", c, want)
	}

	tok, err := authenticate(t, store, created.Token)
	if err != nil {
		t.Fatalf("the channel's token: %v", err)
	}
	if tok.Channel != created.ID || tok.Scope != message.ScopeBackend || tok.Name != "web chat backend" {
		t.Errorf("the channel's token: got channel %q, scope %q, name %q; want %s, backend, \"web chat backend\"", tok.Channel, tok.Scope, tok.Name, created.ID)
	}

	again, err := s.CreateChannel(ctx, message.Channel{Name: "web chat", ResponseURL: "https://web.example/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == created.ID || again.SigningSecret == created.SigningSecret || again.Token == created.Token {
		t.Errorf("a second channel shares the first's id, secret or token")
	}
}

func TestCreateChannelAsGiven(t *testing.T) {
	ctx := context.Background()
	s, store, _ := newService(t, nil)
	retry := &message.RetrySpec{MinDelay: message.Duration(time.Second), MaxDelay: message.Duration(time.Minute), MaxAttempts: 3}
	rules := json.RawMessage(`{"fallback": [{"type": "text", "payload": {"text": "?"}}]}`)
	c := message.Channel{ID: "support", Name: "support desk", ResponseURL: "http://localhost:9000/x",
		SigningSecrets: "whsec_bmV3 whsec_b2xk", Bot: message.BotSpec{Kind: "rules", Rules: rules}, Retry: retry}
	created, err := s.CreateChannel(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != "support" || created.SigningSecret != "whsec_bmV3" {
		t.Errorf("got id %q, secret %q; want support and the first secret given", created.ID, created.SigningSecret)
	}
	got := stored(t, store, "support")
	if got.SigningSecrets != c.SigningSecrets || got.Bot.Kind != "rules" || string(got.Bot.Rules) != string(rules) || *got.Retry != *retry {
		t.Errorf("stored: got %+v, want the settings given", got)
	}
	if _, err := s.CreateChannel(ctx, c); !errors.Is(err, message.ErrExists) {
		t.Errorf("create with a taken id: got %v, want ErrExists", err)
	}
	if toks, _ := s.Tokens(ctx, "support"); len(toks) != 1 {
		t.Errorf("after the refused create: got %d tokens, want the first create's 1", len(toks))
	}
	if _, err := s.CreateChannel(ctx, message.Channel{ID: message.DefaultChannel, Name: "x", ResponseURL: "http://x.example"}); !errors.Is(err, admin.ErrDefault) {
		t.Errorf("create the default channel: got %v, want ErrDefault", err)
	}
}

func TestCreateChannelInvalid(t *testing.T) {
	ctx := context.Background()
	good := func() message.Channel { return message.Channel{Name: "web", ResponseURL: "https://web.example/hook"} }
	for _, c := range []struct {
		field  string
		change func(c *message.Channel)
	}{
		{"id", func(c *message.Channel) { c.ID = "Not An Id" }},
		{"name", func(c *message.Channel) { c.Name = "  " }},
		{"name", func(c *message.Channel) { c.Name = strings.Repeat("n", 201) }},
		{"responseUrl", func(c *message.Channel) { c.ResponseURL = "ftp://web.example/hook" }},
		{"responseUrl", func(c *message.Channel) { c.ResponseURL = "/hook" }},
		{"signingSecrets", func(c *message.Channel) { c.SigningSecrets = "whsec_bmV3 plain-secret" }},
		{"signingSecrets", func(c *message.Channel) { c.SigningSecrets = "whsec_bmV3 whsec_not*base64" }},
		{"bot.kind", func(c *message.Channel) { c.Bot.Kind = "gpt" }},
		{"bot.rules", func(c *message.Channel) {
			c.Bot = message.BotSpec{Kind: "rules", Rules: json.RawMessage(`{"intents": [`)}
		}},
		{"bot.llm.model", func(c *message.Channel) { c.Bot = message.BotSpec{Kind: "llm"} }},
		{"bot.llm.model", func(c *message.Channel) {
			c.Bot = message.BotSpec{Kind: "llm", LLM: &message.LLMSpec{Provider: "openai"}}
		}},
		{"bot.httpUrl", func(c *message.Channel) { c.Bot = message.BotSpec{Kind: "http", HTTPURL: "rasa:5005"} }},
		{"retry", func(c *message.Channel) {
			c.Retry = &message.RetrySpec{MaxDelay: message.Duration(time.Second), MaxAttempts: 3}
		}},
		{"retry", func(c *message.Channel) {
			c.Retry = &message.RetrySpec{MinDelay: message.Duration(time.Minute), MaxDelay: message.Duration(time.Second), MaxAttempts: 3}
		}},
		{"retry", func(c *message.Channel) {
			c.Retry = &message.RetrySpec{MinDelay: message.Duration(time.Second), MaxDelay: message.Duration(time.Second)}
		}},
	} {
		t.Run(c.field, func(t *testing.T) {
			s, store, _ := newService(t, nil)
			ch := good()
			c.change(&ch)
			_, err := s.CreateChannel(ctx, ch)
			if got := field(err); got != c.field {
				t.Errorf("got %v (field %q), want an invalid %s", err, got, c.field)
			}
			if list, _ := store.ListChannels(ctx); len(list) != 0 {
				t.Errorf("the refused channel was stored")
			}
			if toks, _ := store.ListTokens(ctx); len(toks) != 0 {
				t.Errorf("the refused channel got a token")
			}
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		s, _, _ := newService(t, nil)
		_, err := s.CreateChannel(ctx, message.Channel{Name: "", ResponseURL: "nope", Bot: message.BotSpec{Kind: "gpt"}})
		for _, f := range []string{"name", "responseUrl", "bot.kind"} {
			if err == nil || !strings.Contains(err.Error(), f+":") {
				t.Errorf("got %v, want it to name %s", err, f)
			}
		}
	})
}

func TestUpdateChannel(t *testing.T) {
	ctx := context.Background()
	s, store, clk := newService(t, nil)
	created, err := s.CreateChannel(ctx, message.Channel{Name: "web", ResponseURL: "https://web.example/hook"})
	if err != nil {
		t.Fatal(err)
	}
	id, first := created.ID, created.SigningSecret
	createdAt := stored(t, store, id).CreatedAt
	update := func(t *testing.T, p admin.Patch) admin.Updated {
		t.Helper()
		clk.Advance(time.Minute)
		u, err := s.UpdateChannel(ctx, id, p)
		if err != nil {
			t.Fatalf("UpdateChannel: %v", err)
		}
		c := stored(t, store, id)
		if want := clk.Now().Truncate(time.Millisecond); !c.UpdatedAt.Equal(want) || !c.CreatedAt.Equal(createdAt) {
			t.Errorf("created, updated: got %s, %s; want %s, %s", c.CreatedAt, c.UpdatedAt, createdAt, want)
		}
		if u.Channel.SigningSecrets != "" && !strings.HasPrefix(u.Channel.SigningSecrets, "(") {
			t.Errorf("the updated channel shows its secrets")
		}
		return u
	}
	secrets := func() []string { return strings.Fields(stored(t, store, id).SigningSecrets) }

	t.Run("fields", func(t *testing.T) {
		name := "web chat"
		u := update(t, admin.Patch{Name: &name})
		c := stored(t, store, id)
		if c.Name != name || c.ResponseURL != "https://web.example/hook" || c.Bot.Kind != "echo" || c.SigningSecrets != first {
			t.Errorf("after a name patch: got %+v; want only the name changed", c)
		}
		if u.SigningSecret != "" || u.Channel.Name != name {
			t.Errorf("Updated: got secret %q, name %q; want no secret, %q", u.SigningSecret, u.Channel.Name, name)
		}
		url := "https://web.example/v2"
		bot := message.BotSpec{Kind: "http", HTTPURL: "http://rasa:5005/webhooks/rest/webhook"}
		retry := message.RetrySpec{MinDelay: message.Duration(2 * time.Second), MaxDelay: message.Duration(time.Hour), MaxAttempts: 5}
		update(t, admin.Patch{ResponseURL: &url, Bot: &bot, Retry: &retry})
		c = stored(t, store, id)
		if c.Name != name || c.ResponseURL != url || c.Bot.Kind != "http" || c.Bot.HTTPURL != bot.HTTPURL || c.Retry == nil || *c.Retry != retry {
			t.Errorf("after a patch of url, bot and retry: got %+v", c)
		}
		update(t, admin.Patch{Retry: &message.RetrySpec{}})
		if c := stored(t, store, id); c.Retry != nil {
			t.Errorf("retry with maxAttempts 0: got %+v, want the deployment's (nil)", c.Retry)
		}
	})
	t.Run("rotation", func(t *testing.T) {
		u := update(t, admin.Patch{RotateSecret: true})
		if !strings.HasPrefix(u.SigningSecret, "whsec_") || u.SigningSecret == first {
			t.Fatalf("rotation: got new secret %q, want a fresh whsec_ one", u.SigningSecret)
		}
		if got := secrets(); len(got) != 2 || got[0] != u.SigningSecret || got[1] != first {
			t.Errorf("after rotation: got %d secrets, want the new one then the old one", len(got))
		}
		if u.Channel.SigningSecrets != "(2 set)" {
			t.Errorf("Updated channel: got signingSecrets %q, want (2 set)", u.Channel.SigningSecrets)
		}
		second := update(t, admin.Patch{RotateSecret: true}).SigningSecret
		if got := secrets(); len(got) != 3 || got[0] != second || got[1] != u.SigningSecret || got[2] != first {
			t.Errorf("after a second rotation: got %d secrets, want newest first", len(got))
		}
		if d := update(t, admin.Patch{DropOldSecrets: true}); d.SigningSecret != "" {
			t.Errorf("dropping the old secrets made one: %q", d.SigningSecret)
		}
		if got := secrets(); len(got) != 1 || got[0] != second {
			t.Errorf("after dropping the old secrets: got %d, want only the newest", len(got))
		}
		both := update(t, admin.Patch{RotateSecret: true, DropOldSecrets: true})
		if got := secrets(); len(got) != 1 || got[0] != both.SigningSecret || both.SigningSecret == second {
			t.Errorf("rotate and drop at once: got %d secrets, want only the fresh one", len(got))
		}
	})
	t.Run("invalid", func(t *testing.T) {
		before := stored(t, store, id)
		bad := "not a url"
		clk.Advance(time.Minute)
		if _, err := s.UpdateChannel(ctx, id, admin.Patch{ResponseURL: &bad}); field(err) != "responseUrl" {
			t.Errorf("bad url: got %v, want an invalid responseUrl", err)
		}
		if _, err := s.UpdateChannel(ctx, id, admin.Patch{Bot: &message.BotSpec{Kind: "llm"}}); field(err) != "bot.llm.model" {
			t.Errorf("llm without a model: got %v, want an invalid bot.llm.model", err)
		}
		if after := stored(t, store, id); !after.UpdatedAt.Equal(before.UpdatedAt) || after.ResponseURL != before.ResponseURL {
			t.Errorf("a refused update changed the channel")
		}
	})
	t.Run("missing and default", func(t *testing.T) {
		name := "x"
		if _, err := s.UpdateChannel(ctx, "ch_missing", admin.Patch{Name: &name}); !errors.Is(err, message.ErrNotFound) {
			t.Errorf("missing channel: got %v, want ErrNotFound", err)
		}
		if _, found, err := store.GetChannel(ctx, "ch_missing"); err != nil || found {
			t.Errorf("the refused update made the channel (err %v)", err)
		}
		if _, err := s.UpdateChannel(ctx, message.DefaultChannel, admin.Patch{Name: &name}); !errors.Is(err, admin.ErrDefault) {
			t.Errorf("default channel: got %v, want ErrDefault", err)
		}
	})
}

func TestDeleteChannel(t *testing.T) {
	ctx := context.Background()
	s, store, _ := newService(t, nil)
	a, err := s.CreateChannel(ctx, message.Channel{Name: "a", ResponseURL: "https://a.example"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateChannel(ctx, message.Channel{Name: "b", ResponseURL: "https://b.example"})
	if err != nil {
		t.Fatal(err)
	}
	aBot, _, err := s.CreateToken(ctx, a.ID, "a bot", message.ScopeBot)
	if err != nil {
		t.Fatal(err)
	}
	def, _, err := s.CreateToken(ctx, "", "ci", "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteChannel(ctx, a.ID)
	if err != nil || n != 2 {
		t.Fatalf("DeleteChannel: got %d tokens revoked, err %v; want 2", n, err)
	}
	for _, plain := range []string{a.Token, aBot} {
		if _, err := authenticate(t, store, plain); message.KindOf(err) != message.Unauthorized {
			t.Errorf("a token of the deleted channel: got %v, want it refused", err)
		}
	}
	for _, plain := range []string{b.Token, def} {
		if _, err := authenticate(t, store, plain); err != nil {
			t.Errorf("a token of another channel: got %v, want it accepted", err)
		}
	}
	if _, err := s.Channel(ctx, a.ID); !errors.Is(err, message.ErrNotFound) {
		t.Errorf("Channel of the deleted channel: got %v, want ErrNotFound", err)
	}
	if list, _ := s.Channels(ctx); len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("Channels: got %d, want only %s", len(list), b.ID)
	}
	if _, err := s.DeleteChannel(ctx, a.ID); !errors.Is(err, message.ErrNotFound) {
		t.Errorf("delete again: got %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteChannel(ctx, message.DefaultChannel); !errors.Is(err, admin.ErrDefault) {
		t.Errorf("delete the default channel: got %v, want ErrDefault", err)
	}
	if _, err := authenticate(t, store, def); err != nil {
		t.Errorf("the default channel's token after refusing its deletion: %v", err)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s, store, clk := newService(t, nil)
	ch, err := s.CreateChannel(ctx, message.Channel{Name: "web", ResponseURL: "https://web.example"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			what, channel, name, scope string
			notFound                   bool
		}{
			{"unknown channel", "ch_unknown", "x", "", true},
			{"unknown scope", ch.ID, "x", "admin", false},
			{"no name", ch.ID, " ", "", false},
		} {
			if _, _, err := s.CreateToken(ctx, c.channel, c.name, c.scope); err == nil || errors.Is(err, message.ErrNotFound) != c.notFound {
				t.Errorf("%s: got %v, want refused (not found: %v)", c.what, err, c.notFound)
			}
		}
		if toks, _ := store.ListTokens(ctx); len(toks) != 1 {
			t.Errorf("after refused tokens: got %d stored, want the channel's 1", len(toks))
		}
	})
	clk.Advance(time.Second)
	bot, botTok, err := s.CreateToken(ctx, ch.ID, "agent desk", message.ScopeBot)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	ci, _, err := s.CreateToken(ctx, "", "ci", "")
	if err != nil {
		t.Fatal(err)
	}
	// A token made before channels: no channel, no scope.
	clk.Advance(time.Second)
	legacy := message.Token{Hash: token.Hash("prly_legacy"), Name: "legacy", CreatedAt: clk.Now()}
	if err := store.PutToken(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		plain, channel, scope string
	}{
		{bot, ch.ID, message.ScopeBot},
		{ci, message.DefaultChannel, message.ScopeBackend},
	} {
		got, err := authenticate(t, store, c.plain)
		if err != nil || got.Channel != c.channel || got.Scope != c.scope {
			t.Errorf("authenticate: got channel %q scope %q, err %v; want %s, %s", got.Channel, got.Scope, err, c.channel, c.scope)
		}
	}
	names := func(channel string) string {
		toks, err := s.Tokens(ctx, channel)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, t := range toks {
			out = append(out, t.Name)
		}
		return strings.Join(out, ", ")
	}
	for _, c := range []struct{ channel, want string }{
		{ch.ID, "web backend, agent desk"},
		{message.DefaultChannel, "ci, legacy"},
		{"", "web backend, agent desk, ci, legacy"},
		{"ch_unknown", ""},
	} {
		if got := names(c.channel); got != c.want {
			t.Errorf("Tokens(%q): got %q, want %q", c.channel, got, c.want)
		}
	}

	if _, err := s.RevokeToken(ctx, "0123456789ab"); !errors.Is(err, message.ErrNotFound) {
		t.Errorf("revoke an unknown id: got %v, want ErrNotFound", err)
	}
	if _, err := s.RevokeToken(ctx, botTok.ID()[:4]); err == nil {
		t.Errorf("revoke with 4 characters: got no error, want one")
	}
	if n, err := s.RevokeToken(ctx, botTok.ID()); err != nil || n != 1 {
		t.Fatalf("revoke: got %d, %v; want 1", n, err)
	}
	if _, err := authenticate(t, store, bot); message.KindOf(err) != message.Unauthorized {
		t.Errorf("a revoked token: got %v, want it refused", err)
	}
	if _, err := authenticate(t, store, ci); err != nil {
		t.Errorf("another token after a revocation: %v", err)
	}
	if got := names(""); got != "web backend, ci, legacy" {
		t.Errorf("Tokens after the revocation: got %q", got)
	}
}

// Channels and Channel never show a signing secret or an llm key: not of the default
// channel, not of the stored ones.
func TestChannelsAreRedacted(t *testing.T) {
	ctx := context.Background()
	def := &message.Channel{ID: message.DefaultChannel, Name: "default", ResponseURL: "http://localhost:9000",
		SigningSecrets: "whsec_ZGVmYXVsdC1zZWNyZXQ=", Bot: message.BotSpec{Kind: "llm", LLM: &message.LLMSpec{Model: "m", APIKey: "sk-default-key"}}}
	s, store, _ := newService(t, def)
	llm := message.BotSpec{Kind: "llm", LLM: &message.LLMSpec{Model: "m", APIKey: "sk-stored-key", APIKeySecret: "arn:secret"}}
	created, err := s.CreateChannel(ctx, message.Channel{Name: "llm", ResponseURL: "https://llm.example", Bot: llm})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := s.UpdateChannel(ctx, created.ID, admin.Patch{RotateSecret: true})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"ZGVmYXVsdC1zZWNyZXQ", "sk-default-key", "sk-stored-key",
		strings.TrimPrefix(created.SigningSecret, "whsec_"), strings.TrimPrefix(rotated.SigningSecret, "whsec_")}
	check := func(what string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		for _, secret := range secrets {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s shows a secret: %s", what, b)
			}
		}
		if !strings.Contains(string(b), `"apiKey":"(set)"`) || !strings.Contains(string(b), `set)"`) {
			t.Errorf("%s: got %s, want the secrets marked as set", what, b)
		}
	}
	list, err := s.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != message.DefaultChannel || list[1].ID != created.ID {
		t.Fatalf("Channels: got %d, want the default then %s", len(list), created.ID)
	}
	check("Channels", list)
	if list[1].SigningSecrets != "(2 set)" || list[1].Bot.LLM.APIKeySecret != "arn:secret" {
		t.Errorf("Channels: got signingSecrets %q, apiKeySecret %q; want (2 set) and the secret's name", list[1].SigningSecrets, list[1].Bot.LLM.APIKeySecret)
	}
	for _, id := range []string{message.DefaultChannel, created.ID} {
		c, err := s.Channel(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		check("Channel "+id, c)
	}
	check("Created", created.Channel)
	check("Updated", rotated.Channel)
	// Redacting a copy leaves what is stored and what the default is.
	if c := stored(t, store, created.ID); c.Bot.LLM.APIKey != "sk-stored-key" || len(strings.Fields(c.SigningSecrets)) != 2 {
		t.Errorf("the stored channel lost its secrets: %+v", c)
	}
	if def.Bot.LLM.APIKey != "sk-default-key" || def.SigningSecrets != "whsec_ZGVmYXVsdC1zZWNyZXQ=" {
		t.Errorf("the default channel lost its secrets")
	}

	// Without the default channel's settings (the CLI against AWS), it is not listed.
	s2 := admin.New(store, nil)
	if list, err := s2.Channels(ctx); err != nil || len(list) != 1 || list[0].ID != created.ID {
		t.Errorf("Channels without a default: got %d, %v; want only %s", len(list), err, created.ID)
	}
	if _, err := s2.Channel(ctx, message.DefaultChannel); !errors.Is(err, admin.ErrDefault) {
		t.Errorf("Channel(default) without a default: got %v, want ErrDefault", err)
	}
	if _, err := s2.Channel(ctx, "ch_missing"); !errors.Is(err, message.ErrNotFound) {
		t.Errorf("Channel of a missing one: got %v, want ErrNotFound", err)
	}
}
