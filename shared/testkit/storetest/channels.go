package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

func testTokens(t *testing.T, s Store) {
	ctx := context.Background()
	base := fmt.Sprintf("%016x", seq.Add(1)<<20)
	hash := func(tag string) string { return base + tag + strings.Repeat("0", 64-len(base)-len(tag)) }
	tokens := []message.Token{
		{Hash: hash("aaaa1"), Name: "ci", Channel: "", Scope: "", CreatedAt: now.Add(-3 * time.Hour)},
		{Hash: hash("aaaa2"), Name: "acme bot", Channel: "acme", Scope: message.ScopeBot, CreatedAt: now.Add(-2 * time.Hour)},
		{Hash: hash("bbbb"), Name: "acme backend", Channel: "acme", Scope: message.ScopeBackend, CreatedAt: now.Add(-time.Hour)},
	}
	for _, i := range []int{2, 0, 1} {
		if err := s.PutToken(ctx, tokens[i]); err != nil {
			t.Fatalf("PutToken %s: %v", tokens[i].Name, err)
		}
	}
	for _, want := range tokens {
		got, found, err := s.LookupToken(ctx, want.Hash)
		if err != nil || !found {
			t.Fatalf("LookupToken %s: got found %v, err %v; want found", want.Name, found, err)
		}
		if got.Hash != want.Hash || got.Name != want.Name || got.Channel != want.Channel || got.Scope != want.Scope || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("LookupToken %s: got %+v, want %+v", want.Name, got, want)
		}
	}
	if _, found, err := s.LookupToken(ctx, hash("cccc")); err != nil || found {
		t.Errorf("LookupToken of an unknown hash: got found %v, err %v; want not found", found, err)
	}
	list, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), tokenNames(tokens); got != want {
		t.Errorf("ListTokens: got %s, want %s (oldest first)", got, want)
	}
	if _, err := s.DeleteTokens(ctx, base[:7]); err == nil {
		t.Errorf("DeleteTokens with 7 characters: got no error, want one")
	}
	n, err := s.DeleteTokens(ctx, base+"aaaa")
	if err != nil || n != 2 {
		t.Fatalf("DeleteTokens(%s…aaaa): got %d, %v; want 2", base[:8], n, err)
	}
	list, err = s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), tokenNames(tokens[2:]); got != want {
		t.Errorf("ListTokens after DeleteTokens: got %s, want %s", got, want)
	}
	if n, err := s.DeleteTokens(ctx, base+"aaaa"); err != nil || n != 0 {
		t.Errorf("DeleteTokens again: got %d, %v; want 0", n, err)
	}
}

func tokenNames(toks []message.Token) string {
	var names []string
	for _, t := range toks {
		names = append(names, t.Name)
	}
	return fmt.Sprintf("%q", names)
}

// rulesFile is an intents file as an operator writes it: indented, with characters a
// JSON encoder likes to escape. A channel keeps it byte for byte, so what `channel
// show` prints is what was given.
const rulesFile = `{
  "intents": [
    {
      "name": "hours",
      "keywords": ["open", "hours"],
      "replies": [{"type": "text", "payload": {"text": "Mon–Fri, 9 <am> & 5 pm \u2713"}}]
    }
  ],
  "fallback": [{"type": "text", "payload": {"text": "Sorry?"}}]
}
`

// fullChannel is a channel that sets every field.
func fullChannel(id string, created time.Time) message.Channel {
	temperature, history := 0.25, 7
	return message.Channel{
		ID: id, Name: "Acme support ✓", ResponseURL: "https://acme.example/parley/hook?tenant=1&x=<y>",
		SigningSecrets: "whsec_bmV3ZXN0IHNlY3JldCBieXRlcw== whsec_b2xkZXIgc2VjcmV0IGJ5dGVz",
		Bot: message.BotSpec{
			Kind:  "llm",
			Rules: json.RawMessage(rulesFile),
			LLM: &message.LLMSpec{Provider: "anthropic", BaseURL: "https://llm.example/v1", Model: "model-x",
				APIKeySecret: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acme-llm", APIKey: "sk-local-only",
				SystemPrompt: "Be <brief> & \"kind\".\nAlways.", Temperature: &temperature, MaxTokens: 300, History: &history},
			HTTPURL: "https://rasa.example/webhooks/rest/webhook",
		},
		Retry:     &message.RetrySpec{MinDelay: message.Duration(1500 * time.Millisecond), MaxDelay: message.Duration(2 * time.Hour), MaxAttempts: 7},
		CreatedAt: created.Add(123 * time.Millisecond),
		UpdatedAt: created.Add(time.Hour + 456*time.Millisecond),
	}
}

// plainChannel is a channel with only what a channel needs.
func plainChannel(id string, created time.Time) message.Channel {
	return message.Channel{ID: id, Name: id, ResponseURL: "http://localhost:9000/" + id, Bot: message.BotSpec{Kind: "echo"},
		CreatedAt: created, UpdatedAt: created}
}

func checkChannel(t *testing.T, what string, got, want message.Channel) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: createdAt, updatedAt: got %s, %s; want %s, %s", what, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	if !bytes.Equal(got.Bot.Rules, want.Bot.Rules) {
		t.Errorf("%s: bot.rules:\ngot  %q\nwant %q", what, got.Bot.Rules, want.Bot.Rules)
	}
	g, w := got, want
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	g.Bot.Rules, w.Bot.Rules = nil, nil
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		t.Errorf("%s:\ngot  %s\nwant %s", what, gj, wj)
	}
}

func channelIDs(list []message.Channel) string {
	var out []string
	for _, c := range list {
		out = append(out, c.ID)
	}
	return fmt.Sprintf("%q", out)
}

func testChannels(t *testing.T, s Store) {
	ctx := context.Background()
	get := func(t *testing.T, id string) (message.Channel, bool) {
		t.Helper()
		c, found, err := s.GetChannel(ctx, id)
		if err != nil {
			t.Fatalf("GetChannel %s: %v", id, err)
		}
		return c, found
	}
	t.Run("round trip", func(t *testing.T) {
		for _, want := range []message.Channel{fullChannel("ch_full", now), plainChannel("ch_plain", now)} {
			if err := s.PutChannel(ctx, want, true); err != nil {
				t.Fatalf("PutChannel %s: %v", want.ID, err)
			}
			got, found := get(t, want.ID)
			if !found {
				t.Fatalf("GetChannel %s: not found", want.ID)
			}
			checkChannel(t, "GetChannel "+want.ID, got, want)
		}
	})
	t.Run("create twice", func(t *testing.T) {
		first := plainChannel("ch_twice", now)
		if err := s.PutChannel(ctx, first, true); err != nil {
			t.Fatal(err)
		}
		second := fullChannel("ch_twice", now.Add(time.Hour))
		if err := s.PutChannel(ctx, second, true); !errors.Is(err, message.ErrExists) {
			t.Fatalf("second create: got %v, want ErrExists", err)
		}
		got, _ := get(t, first.ID)
		checkChannel(t, "after the refused create", got, first)
	})
	t.Run("update", func(t *testing.T) {
		if err := s.PutChannel(ctx, plainChannel("ch_missing", now), false); !errors.Is(err, message.ErrNotFound) {
			t.Errorf("update of a missing channel: got %v, want ErrNotFound", err)
		}
		if _, found := get(t, "ch_missing"); found {
			t.Errorf("the refused update made the channel")
		}
		c := plainChannel("ch_updated", now)
		if err := s.PutChannel(ctx, c, true); err != nil {
			t.Fatal(err)
		}
		want := fullChannel(c.ID, now)
		if err := s.PutChannel(ctx, want, false); err != nil {
			t.Fatalf("update: %v", err)
		}
		got, _ := get(t, c.ID)
		checkChannel(t, "after the update", got, want)
		// And back: fields the update leaves out are gone, not merged.
		if err := s.PutChannel(ctx, c, false); err != nil {
			t.Fatalf("second update: %v", err)
		}
		got, _ = get(t, c.ID)
		checkChannel(t, "after the second update", got, c)
	})
	t.Run("unknown", func(t *testing.T) {
		if c, found := get(t, "ch_never"); found {
			t.Errorf("GetChannel of an unknown id: got %+v, want not found", c)
		}
	})
}

// testChannelList runs on a store of its own: it lists every channel.
func testChannelList(t *testing.T, s Store) {
	ctx := context.Background()
	if list, err := s.ListChannels(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListChannels of an empty store: got %s, %v; want none", channelIDs(list), err)
	}
	// Created out of order: the list is by creation time, not by id or by write.
	chans := []message.Channel{
		plainChannel("ch_c", now.Add(-3*time.Hour)),
		fullChannel("ch_a", now.Add(-2*time.Hour)),
		plainChannel("ch_b", now.Add(-time.Hour)),
	}
	for _, i := range []int{1, 2, 0} {
		if err := s.PutChannel(ctx, chans[i], true); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := channelIDs(list), channelIDs(chans); got != want {
		t.Fatalf("ListChannels: got %s, want %s (oldest first)", got, want)
	}
	for i := range chans {
		checkChannel(t, "listed "+chans[i].ID, list[i], chans[i])
	}
	if err := s.DeleteChannel(ctx, "ch_a"); err != nil {
		t.Fatalf("DeleteChannel: %v", err)
	}
	if _, found, err := s.GetChannel(ctx, "ch_a"); err != nil || found {
		t.Errorf("GetChannel after DeleteChannel: got found %v, err %v; want not found", found, err)
	}
	list, err = s.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := channelIDs(list), channelIDs([]message.Channel{chans[0], chans[2]}); got != want {
		t.Errorf("ListChannels after DeleteChannel: got %s, want %s", got, want)
	}
	if err := s.DeleteChannel(ctx, "ch_a"); err != nil {
		t.Errorf("DeleteChannel again: got %v, want nil", err)
	}
	// A deleted channel's id can be used again.
	again := plainChannel("ch_a", now)
	if err := s.PutChannel(ctx, again, true); err != nil {
		t.Errorf("create after delete: %v", err)
	}
	// Tokens share the table: they are not channels.
	if err := s.PutToken(ctx, message.Token{Hash: strings.Repeat("ab", 32), Name: "t", Channel: "ch_b", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	list, err = s.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := channelIDs(list), channelIDs([]message.Channel{chans[0], chans[2], again}); got != want {
		t.Errorf("ListChannels at the end: got %s, want %s", got, want)
	}
}
