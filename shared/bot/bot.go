// Package bot holds Parley's bots and picks one by name: echo (the default), rules
// (intents from a file), llm (OpenAI-compatible or Anthropic chat, with the
// conversation's history) and http (a bot service speaking Rasa's REST channel).
// Each answers one turn with zero or more messages before the context's deadline.
package bot

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/settings"
)

// Bot answers a turn with zero or more messages (see inbound.Bot).
type Bot interface {
	Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error)
}

// Names lists the bots New knows.
var Names = []string{"echo", "rules", "llm", "http"}

// HistoryReader gives the llm bot a conversation's recent messages, oldest first.
type HistoryReader interface {
	RecentHistory(ctx context.Context, channel, conversationRef string, limit int) ([]message.Entry, error)
}

// Options configure the bots; each bot reads its own part.
type Options struct {
	RulesFile string // rules: the intents file; empty: Rules, or the built-in example
	Rules     []byte // rules: the intents file's content, when not from a file
	LLM       LLMConfig
	HTTPURL   string // http: the bot service's Rasa REST webhook URL
	// History feeds the llm bot; nil: it sees only the current message.
	History HistoryReader
	// Client makes the llm and http bots' requests; nil: a client of their own.
	Client *http.Client
}

// New returns the bot called name, checked and ready: a rules file is read and
// validated here, so a bad one stops the start with an error naming the problem.
func New(name string, opts Options) (Bot, error) {
	switch name {
	case "", "echo":
		return Echo{}, nil
	case "rules":
		if opts.RulesFile == "" && len(opts.Rules) > 0 {
			return ParseRules(opts.Rules)
		}
		return LoadRules(opts.RulesFile)
	case "llm":
		return NewLLM(opts.LLM, opts.History, opts.Client)
	case "http":
		return NewRasa(opts.HTTPURL, opts.Client)
	}
	return nil, fmt.Errorf("unknown bot %q; known: %v", name, Names)
}

// ConfigFromEnv reads the bots' options — PARLEY_RULES_FILE, PARLEY_LLM_* and
// PARLEY_HTTP_BOT_URL — noting bad values in r. The API key comes from
// PARLEY_LLM_API_KEY here; the Lambda reads it from Secrets Manager.
func ConfigFromEnv(r *envvar.Reader) Options {
	return Options{
		RulesFile: settings.RulesFile.String(r),
		HTTPURL:   settings.HTTPBotURL.String(r),
		LLM: LLMConfig{
			Provider:     settings.LLMProvider.String(r),
			BaseURL:      settings.LLMBaseURL.String(r),
			Model:        settings.LLMModel.String(r),
			APIKey:       settings.LLMAPIKey.String(r),
			SystemPrompt: settings.LLMSystemPrompt.String(r),
			Temperature:  settings.LLMTemperature.Float(r),
			MaxTokens:    settings.LLMMaxTokens.Int(r),
			History:      settings.LLMHistory.Int(r),
		},
	}
}

// Hosted reports whether an llm base URL is a provider's own service, which answers
// nothing without a key (a local server, such as Ollama or vLLM, may not need one).
func Hosted(baseURL string) bool {
	return baseURL == "" || strings.Contains(baseURL, "api.openai.com") || strings.Contains(baseURL, "api.anthropic.com")
}

// Unused lists the bot settings part reads, set through getenv, that the bot called
// name does not use: they would silently do nothing.
func Unused(name string, part settings.Part, getenv func(string) string) []string {
	var out []string
	for _, s := range settings.All {
		if s.Bot != "" && s.Bot != name && s.Env != "" && s.Reads(part) && getenv(s.Env) != "" {
			out = append(out, s.Env)
		}
	}
	return out
}

// Echo answers each message with one message of the same type and payload.
type Echo struct{}

// Reply implements Bot.
func (Echo) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return []message.Reply{{Type: turn.Message.Type, Payload: turn.Message.Payload}}, nil
}
