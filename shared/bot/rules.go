package bot

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode"

	"github.com/parley-chat/parley/shared/message"
)

// exampleRules is the example intents file, built in so `PARLEY_BOT=rules make run`
// answers with no file at hand. It shows every message type.
//
//go:embed examples/rules.json
var exampleRules []byte

// ExampleRulesName names the built-in example in errors and logs.
const ExampleRulesName = "built-in examples/rules.json"

// Rules answers from a file of intents: the first intent whose keywords or patterns
// match the message's text gives the replies; otherwise the fallback does.
type Rules struct {
	intents  []intent
	fallback []message.Reply
}

type intent struct {
	name     string
	keywords [][]string // each a phrase of lowercased words
	patterns []*regexp.Regexp
	replies  []message.Reply
}

// rulesFile is the file format.
type rulesFile struct {
	Intents []struct {
		Name     string          `json:"name"`
		Keywords []string        `json:"keywords"`
		Patterns []string        `json:"patterns"`
		Replies  []message.Reply `json:"replies"`
	} `json:"intents"`
	Fallback []message.Reply `json:"fallback"`
}

// LoadRules reads and validates an intents file; path "" is the built-in example.
// Errors name the file, the intent and the problem.
func LoadRules(path string) (*Rules, error) {
	name, data := ExampleRulesName, exampleRules
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("rules file %s: %w", path, err)
		}
		name = path
	}
	r, err := ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", name, err)
	}
	return r, nil
}

// ParseRules validates an intents file's content.
func ParseRules(data []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f rulesFile
	if err := dec.Decode(&f); err != nil {
		return nil, jsonPosition(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if len(f.Intents) == 0 && len(f.Fallback) == 0 {
		return nil, errors.New("no intents and no fallback: the bot would never answer")
	}
	r := &Rules{}
	seen := map[string]bool{}
	for i, in := range f.Intents {
		label := fmt.Sprintf("intent #%d", i+1)
		if in.Name == "" {
			return nil, fmt.Errorf("%s: no name", label)
		}
		label = fmt.Sprintf("intent %q", in.Name)
		if seen[in.Name] {
			return nil, fmt.Errorf("%s: the name is used twice", label)
		}
		seen[in.Name] = true
		if len(in.Keywords) == 0 && len(in.Patterns) == 0 {
			return nil, fmt.Errorf("%s: no keywords and no patterns: it could never match", label)
		}
		it := intent{name: in.Name}
		for j, k := range in.Keywords {
			words := tokenize(k)
			if len(words) == 0 {
				return nil, fmt.Errorf("%s: keyword %d (%q) has no letters or digits", label, j+1, k)
			}
			it.keywords = append(it.keywords, words)
		}
		for j, p := range in.Patterns {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("%s: pattern %d: %w", label, j+1, err)
			}
			it.patterns = append(it.patterns, re)
		}
		if len(in.Replies) == 0 {
			return nil, fmt.Errorf("%s: no replies", label)
		}
		if err := checkReplies(in.Replies); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		it.replies = in.Replies
		r.intents = append(r.intents, it)
	}
	if err := checkReplies(f.Fallback); err != nil {
		return nil, fmt.Errorf("fallback: %w", err)
	}
	r.fallback = f.Fallback
	return r, nil
}

func checkReplies(replies []message.Reply) error {
	for i, rep := range replies {
		if !message.KnownType(rep.Type) {
			return fmt.Errorf("reply %d: type %q is not one of %s", i+1, rep.Type, strings.Join(message.Types, ", "))
		}
		if len(rep.Payload) == 0 {
			return fmt.Errorf("reply %d: no payload", i+1)
		}
		if err := message.ValidatePayload(rep.Type, rep.Payload); err != nil {
			return fmt.Errorf("reply %d: %s", i+1, validationText(err))
		}
	}
	return nil
}

func validationText(err error) string {
	var e *message.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// Match returns the name of the intent that answers text, "" for the fallback.
func (r *Rules) Match(text string) string {
	words := tokenize(text)
	for _, it := range r.intents {
		for _, k := range it.keywords {
			if containsPhrase(words, k) {
				return it.name
			}
		}
		for _, re := range it.patterns {
			if re.MatchString(text) {
				return it.name
			}
		}
	}
	return ""
}

// Reply implements Bot.
func (r *Rules) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := r.Match(turn.Message.Text)
	for _, it := range r.intents {
		if it.name == name {
			return it.replies, nil
		}
	}
	return r.fallback, nil
}

// tokenize lowercases s and splits it into words of letters and digits, so "Hello!"
// matches the keyword "hello" and "shipping" does not match "hip".
func tokenize(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func containsPhrase(words, phrase []string) bool {
	for i := 0; i+len(phrase) <= len(words); i++ {
		match := true
		for j, w := range phrase {
			if words[i+j] != w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// jsonPosition adds the line and column to a JSON syntax or type error.
func jsonPosition(data []byte, err error) error {
	var offset int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		offset = syn.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 {
		return err
	}
	line, col := 1, 1
	for _, b := range data[:min(int(offset), len(data))] {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
