package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/shared/message"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The example file answers each of these; the golden file holds the intent and the
// exact replies, so a change to matching or to any reply type shows up as a diff.
func TestRulesGolden(t *testing.T) {
	r, err := LoadRules("")
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{
		"Hello there", "HI!", "good morning", "morning", "help", "What can you do?", "show me a picture", "play a sound",
		"video please", "send the terms document", "where are you", "tell me about the product", "the catalog",
		"choose for me", "coffee", "what size", "summary", "my order #12345 is late", "order 12", "shipping", "hip hop",
	}
	var buf bytes.Buffer
	types := map[string]bool{}
	for _, in := range inputs {
		replies, err := r.Reply(context.Background(), message.Turn{Message: message.Inbound{Text: in}})
		if err != nil {
			t.Fatal(err)
		}
		name := r.Match(in)
		if name == "" {
			name = "(fallback)"
		}
		b, _ := json.Marshal(replies)
		fmt.Fprintf(&buf, "%q -> %s\n  %s\n", in, name, b)
		for _, rep := range replies {
			types[rep.Type] = true
		}
	}
	for _, typ := range message.Types {
		if !types[typ] {
			t.Errorf("no input of the golden test gets a %s reply: the example must show every type", typ)
		}
	}
	golden := filepath.Join("testdata", "rules.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("rules answers differ from %s (go test -update rewrites it after review):\n%s", golden, diff(string(want), got))
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "- "+a, "+ "+b)
		}
	}
	return strings.Join(out, "\n")
}

func TestBadRulesFiles(t *testing.T) {
	reply := `{"type":"text","payload":{"text":"hi"}}`
	for _, tc := range []struct{ name, file, want string }{
		{"syntax", "{\n  \"intents\": [\n    {\"name\": \"a\",, }\n  ]\n}", "line 3, column"},
		{"unknown field", `{"intents":[{"name":"a","keyword":["x"],"replies":[` + reply + `]}]}`, `unknown field "keyword"`},
		{"wrong type", `{"intents":[{"name":"a","keywords":"x","replies":[` + reply + `]}]}`, "line 1, column"},
		{"empty", `{}`, "no intents and no fallback"},
		{"no name", `{"intents":[{"keywords":["x"],"replies":[` + reply + `]}]}`, "intent #1: no name"},
		{"twice", `{"intents":[{"name":"a","keywords":["x"],"replies":[` + reply + `]},{"name":"a","keywords":["y"],"replies":[` + reply + `]}]}`, `intent "a": the name is used twice`},
		{"never matches", `{"intents":[{"name":"a","replies":[` + reply + `]}]}`, `intent "a": no keywords and no patterns`},
		{"punctuation keyword", `{"intents":[{"name":"a","keywords":["?!"],"replies":[` + reply + `]}]}`, `intent "a": keyword 1 ("?!") has no letters or digits`},
		{"bad regex", `{"intents":[{"name":"a","patterns":["ok","(unclosed"],"replies":[` + reply + `]}]}`, `intent "a": pattern 2: error parsing regexp`},
		{"no replies", `{"intents":[{"name":"a","keywords":["x"]}]}`, `intent "a": no replies`},
		{"unknown type", `{"intents":[{"name":"a","keywords":["x"],"replies":[{"type":"sticker","payload":{}}]}]}`, `intent "a": reply 1: type "sticker" is not one of`},
		{"bad payload", `{"intents":[{"name":"a","keywords":["x"],"replies":[` + reply + `,{"type":"image","payload":{"title":"t"}}]}]}`, `intent "a": reply 2: payload.imageUrl must be a non-empty string`},
		{"no payload", `{"intents":[{"name":"a","keywords":["x"],"replies":[{"type":"text"}]}]}`, `intent "a": reply 1: no payload`},
		{"bad fallback", `{"fallback":[{"type":"choice","payload":{"text":"t","options":[]}}]}`, "fallback: reply 1: payload.options must be a non-empty array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bot.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadRules(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "rules file "+path+": ") {
				t.Errorf("error = %v\nwant it to name the file and say %q", err, tc.want)
			}
		})
	}
	if _, err := LoadRules("/no/such/rules.json"); err == nil || !strings.Contains(err.Error(), "/no/such/rules.json") {
		t.Errorf("missing file: %v", err)
	}
}
