package devstack_test

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/shared/devstack"
)

// Weak or useless settings are refused at start with the reason, or warned about.
func TestWeakSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // in the error; "" for none
	}{
		{"a 10-byte signing key", map[string]string{"PARLEY_SIGNING_SECRET": "whsec_bm90YXNlY3JldA=="}, "too weak"},
		{"notasecret: 7 bytes", map[string]string{"PARLEY_SIGNING_SECRET": "notasecret"}, "too weak"},
		{"a 32-byte key", map[string]string{"PARLEY_SIGNING_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, ""},
		{"llm without a key against OpenAI", map[string]string{"PARLEY_BOT": "llm", "PARLEY_LLM_MODEL": "gpt-4o-mini"}, "PARLEY_LLM_API_KEY"},
		{"llm without a key against Anthropic", map[string]string{"PARLEY_BOT": "llm", "PARLEY_LLM_MODEL": "m", "PARLEY_LLM_PROVIDER": "anthropic"}, "PARLEY_LLM_API_KEY"},
		{"llm without a key against a local server", map[string]string{"PARLEY_BOT": "llm", "PARLEY_LLM_MODEL": "llama3.2", "PARLEY_LLM_BASE_URL": "http://127.0.0.1:11434/v1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["PORT"] = "0"
			_, err := devstack.ConfigFromEnv(func(k string) string { return tc.env[k] })
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
	// One problem, one line: an unknown provider is not also a failed bot.
	_, err := devstack.ConfigFromEnv(func(k string) string {
		return map[string]string{"PARLEY_BOT": "llm", "PARLEY_LLM_PROVIDER": "gemini", "PARLEY_LLM_MODEL": "m", "PARLEY_LLM_API_KEY": "k"}[k]
	})
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "PARLEY_LLM_PROVIDER") {
		t.Errorf("gemini = %q, want one line naming PARLEY_LLM_PROVIDER", err)
	}
	// Another bot's setting does nothing: a warning, not an error.
	cfg, err := devstack.ConfigFromEnv(func(k string) string {
		return map[string]string{"PORT": "0", "PARLEY_RULES_FILE": "bot.json", "PARLEY_HTTP_BOT_URL": "http://x"}[k]
	})
	if err != nil || strings.Join(cfg.Warnings, " ") != "PARLEY_RULES_FILE PARLEY_HTTP_BOT_URL" {
		t.Errorf("echo with rules and http settings: %v, warnings %v", err, cfg.Warnings)
	}
}
