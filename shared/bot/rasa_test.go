package bot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/message"
)

func TestRasaREST(t *testing.T) {
	p := &provider{t: t, path: "/webhooks/rest/webhook", status: 200, answer: `[
		{"recipient_id":"c1","text":"Hi! Pick a size."},
		{"recipient_id":"c1","text":"Sizes:","buttons":[{"title":"Small","payload":"/size{\"s\":\"S\"}"},{"title":"Large","payload":"/size{\"s\":\"L\"}"}]},
		{"recipient_id":"c1","image":"https://example.com/chart.png"},
		{"recipient_id":"c1","custom":{"type":"location","payload":{"latitude":1.5,"longitude":2,"title":"Shop"}}},
		{"recipient_id":"c1","buttons":[{"title":"OK","payload":"ok"}]}
	]`}
	srv := p.server()
	b, err := NewRasa(srv.URL+"/webhooks/rest/webhook", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := turn("I want a shirt")
	in.Message.Type, in.Message.Payload = "text", json.RawMessage(`{"text":"I want a shirt"}`)
	replies, err := b.Reply(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if p.got["sender"] != "c1" || p.got["message"] != "I want a shirt" {
		t.Errorf("request = %v", p.got)
	}
	if md, _ := p.got["metadata"].(map[string]any); md["userId"] != "u1" || md["messageId"] != "m9" {
		t.Errorf("metadata = %v", p.got["metadata"])
	}
	var got []string
	for _, r := range replies {
		got = append(got, r.Type+" "+string(r.Payload))
		if err := message.ValidatePayload(r.Type, r.Payload); err != nil {
			t.Errorf("reply %s %s does not validate: %v", r.Type, r.Payload, err)
		}
	}
	want := []string{
		`text {"text":"Hi! Pick a size."}`,
		`choice {"options":[{"label":"Small","value":"/size{\"s\":\"S\"}"},{"label":"Large","value":"/size{\"s\":\"L\"}"}],"text":"Sizes:"}`,
		`image {"imageUrl":"https://example.com/chart.png"}`,
		`location {"latitude":1.5,"longitude":2,"title":"Shop"}`,
		`choice {"options":[{"label":"OK","value":"ok"}],"text":"Choose one:"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("replies\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRasaErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		answer string
		busy   bool
		want   string
	}{
		{"down", 502, ``, false, "HTTP 502"},
		{"busy", 503, ``, true, "HTTP 503"},
		{"not a list", 200, `{"text":"hi"}`, false, "not the expected JSON"},
		{"odd custom", 200, `[{"custom":{"foo":1}}]`, false, "message 1: custom payload is not a message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &provider{t: t, path: "/", status: tc.status, answer: tc.answer}
			b, _ := NewRasa(p.server().URL+"/", nil)
			_, err := b.Reply(context.Background(), turn("x"))
			var busy *message.BotBusyError
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &busy) != tc.busy {
				t.Errorf("error = %v, want %q (busy %v)", err, tc.want, tc.busy)
			}
		})
	}
	if _, err := NewRasa("", nil); err == nil {
		t.Error("empty URL accepted")
	}
	if _, err := New("http", Options{HTTPURL: "localhost:5005"}); err == nil {
		t.Error("URL without scheme accepted")
	}
	_ = http.StatusOK
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"PARLEY_LLM_TEMPERATURE": "3", "PARLEY_LLM_MAX_TOKENS": "0", "PARLEY_LLM_HISTORY": "x"}
	r := envvar.New(func(k string) string { return env[k] })
	ConfigFromEnv(r)
	err := r.Err()
	for _, name := range []string{"PARLEY_LLM_TEMPERATURE", "PARLEY_LLM_MAX_TOKENS", "PARLEY_LLM_HISTORY"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
	r = envvar.New(func(k string) string { return map[string]string{"PARLEY_LLM_MODEL": "m"}[k] })
	o := ConfigFromEnv(r)
	if err := r.Err(); err != nil || o.LLM.History != DefaultHistory || o.LLM.Model != "m" {
		t.Errorf("defaults = %+v, %v", o.LLM, r.Err())
	}
	if _, err := New("llm", o); err != nil {
		t.Errorf("llm with a model: %v", err)
	}
	if _, err := New("nope", o); err == nil {
		t.Error("unknown bot accepted")
	}
}
