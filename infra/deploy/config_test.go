package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/settings"
)

const (
	repoRoot     = "../.."
	testEndpoint = "https://example.com/hook"
)

// given is CDK context by setting, as the tests write it.
type given map[*settings.Setting]any

// load is LoadConfig with the context given and responseEndpointUrl=testEndpoint unless
// the context says otherwise.
func load(t *testing.T, ctx given) (Config, error) {
	t.Helper()
	byKey := map[string]any{settings.ResponseEndpointURL.Context: testEndpoint}
	for s, v := range ctx {
		byKey[s.Context] = v
	}
	return LoadConfig(func(k string) any { return byKey[k] }, repoRoot)
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every deploy setting with a default has it; the others are unset; another bot's
	// settings are not there at all.
	for _, s := range Settings {
		want := s.Default
		switch {
		case s == settings.ResponseEndpointURL:
			want = testEndpoint
		case s.Bot != "":
			want = ""
		}
		if got := cfg.Value(s); got != want {
			t.Errorf("%s: got %q, want %q", s.Context, got, want)
		}
	}
	if cfg.StackName() != "Parley-dev" || cfg.Bot != "echo" || cfg.RulesFile != "" {
		t.Errorf("got stack %s, bot %s, rules file %q", cfg.StackName(), cfg.Bot, cfg.RulesFile)
	}
	if want := (Timing{FunctionTimeout: 110 * time.Second, VisibilityTimeout: 660 * time.Second}); cfg.Timing != want {
		t.Errorf("timing: got %+v, want %+v", cfg.Timing, want)
	}
	if got := cfg.Number(OldestMessageAgeAlarm); got != 3600 {
		t.Errorf("oldest message alarm: got %v s, want 3600", got)
	}
}

func TestLoadConfigValues(t *testing.T) {
	// Context from cdk.json arrives as JSON values, from -c as strings.
	cfg, err := load(t, given{
		settings.ResponseEndpointURL: "http://10.0.0.1:8080/bot?x=1", settings.Stage: "prod-2", settings.Bot: "http",
		settings.HTTPBotURL: "http://rasa.internal:5005/webhooks/rest/webhook", settings.HistoryTTL: "8760h", settings.BotTimeout: "5m",
		settings.RecordTTL: "360h", settings.MaxConcurrency: float64(1000),
		settings.MaxAttempts: float64(26), settings.RetryMaxDelay: "12h", settings.DeliveryTimeout: "30s",
		settings.RemovalPolicy: "destroy", settings.AlarmEmail: "ops@example.com", OldestMessageAgeAlarm: "2h",
		settings.HoldLimit: "0", settings.DisableAfterFailures: float64(0), settings.DisableAfter: "336h", settings.EndpointRateLimit: float64(2.50),
		settings.Tracing: "active", FailedAttemptsAlarm: float64(1e6),
	})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[*settings.Setting]string{
		settings.MaxAttempts: "26", settings.RemovalPolicy: "destroy", settings.AlarmEmail: "ops@example.com",
		OldestMessageAgeAlarm: "2h", settings.HTTPBotURL: "http://rasa.internal:5005/webhooks/rest/webhook",
		settings.HistoryTTL: "8760h", settings.BotTimeout: "5m", settings.MaxConcurrency: "1000", settings.HoldLimit: "0",
		settings.DisableAfterFailures: "0", settings.DisableAfter: "336h", settings.EndpointRateLimit: "2.5",
		settings.Tracing: "active", FailedAttemptsAlarm: "1000000",
	} {
		if got := cfg.Value(s); got != want {
			t.Errorf("%s: got %q, want %q", s.Context, got, want)
		}
	}
	if cfg.StackName() != "Parley-prod-2" || cfg.Bot != "http" || cfg.Timing.FunctionTimeout != 380*time.Second {
		t.Errorf("got stack %s, bot %s, timing %+v", cfg.StackName(), cfg.Bot, cfg.Timing)
	}
}

func TestLoadConfigLLM(t *testing.T) {
	cfg, err := load(t, given{
		settings.Bot: "llm", settings.LLMProvider: "anthropic", settings.LLMBaseURL: "https://llm.example.com/v1",
		settings.LLMModel: "claude-x", settings.LLMSystemPrompt: "  Be brief.  ", settings.LLMTemperature: "0.70",
		settings.LLMMaxTokens: float64(1024), settings.LLMHistory: "0", settings.LLMAPIKeySecretName: "parley/llm-key",
	})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[*settings.Setting]string{
		settings.LLMProvider: "anthropic", settings.LLMBaseURL: "https://llm.example.com/v1", settings.LLMModel: "claude-x",
		settings.LLMSystemPrompt: "Be brief.", settings.LLMTemperature: "0.7", settings.LLMMaxTokens: "1024",
		settings.LLMHistory: "0", settings.LLMAPIKeySecretName: "parley/llm-key",
	} {
		if got := cfg.Value(s); got != want {
			t.Errorf("%s: got %q, want %q", s.Context, got, want)
		}
	}

	// Only the required ones: the declared defaults, the rest unset.
	cfg, err = load(t, given{settings.Bot: "llm", settings.LLMModel: "gpt-4o-mini", settings.LLMAPIKeySecretName: "openai-api-key"})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[*settings.Setting]string{
		settings.LLMProvider: "", settings.LLMMaxTokens: settings.LLMMaxTokens.Default, settings.LLMHistory: settings.LLMHistory.Default,
		settings.LLMTemperature: "", settings.LLMModel: "gpt-4o-mini",
	} {
		if got := cfg.Value(s); got != want {
			t.Errorf("%s: got %q, want %q", s.Context, got, want)
		}
	}
}

func TestLoadConfigRulesFile(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "my rules.json")
	if err := os.WriteFile(abs, []byte(`{"fallback": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for given, want := range map[string]string{
		abs:                         abs,
		"infra/testdata/rules.json": filepath.Join(root, "infra", "testdata", "rules.json"),
		"":                          "", // the built-in example
	} {
		byKey := map[string]any{"responseEndpointUrl": testEndpoint, "bot": "rules", "rulesFile": given}
		cfg, err := LoadConfig(func(k string) any { return byKey[k] }, root)
		if err != nil {
			t.Fatalf("rulesFile %q: %v", given, err)
		}
		if cfg.RulesFile != want {
			t.Errorf("rulesFile %q: got %q, want %q", given, cfg.RulesFile, want)
		}
		// The function reads the copy in its package.
		if wantEnv := map[bool]string{true: RulesFileOnLambda, false: ""}[want != ""]; cfg.Value(settings.RulesFile) != wantEnv {
			t.Errorf("rulesFile %q: PARLEY_RULES_FILE %q, want %q", given, cfg.Value(settings.RulesFile), wantEnv)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	llm := given{settings.Bot: "llm", settings.LLMModel: "gpt-4o-mini", settings.LLMAPIKeySecretName: "parley/openai"}
	with := func(base, extra given) given {
		out := given{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		context given
		want    []string // each must appear in the error
	}{
		{"missing endpoint", given{settings.ResponseEndpointURL: ""}, []string{`context "responseEndpointUrl": required`}},
		{"relative endpoint", given{settings.ResponseEndpointURL: "/hook"}, []string{`"responseEndpointUrl"`, "absolute http or https"}},
		{"ftp endpoint", given{settings.ResponseEndpointURL: "ftp://example.com/x"}, []string{"absolute http or https"}},
		{"endpoint without host", given{settings.ResponseEndpointURL: "https:///x"}, []string{"has no host"}},
		{"endpoint with credentials", given{settings.ResponseEndpointURL: "https://u:p@example.com/"}, []string{"credentials"}},
		{"bad stage", given{settings.Stage: "my stage"}, []string{`context "stage": "my stage" is not 1-32 letters`}},
		{"unknown bot", given{settings.Bot: "parrot"}, []string{`context "bot": "parrot" is not one of echo, rules, llm, http`}},
		{"history TTL", given{settings.HistoryTTL: "30 days"}, []string{`context "historyTtl": "30 days" is not a Go duration`}},
		{"history TTL too long", given{settings.HistoryTTL: "10000h"}, []string{`"historyTtl": 10000h is out of range [360h, 8760h]`}},
		{"history TTL under 15 days", given{settings.HistoryTTL: "359h"}, []string{`context "historyTtl": 359h is out of range [360h, 8760h]`}},
		{"record TTL under 15 days", given{settings.RecordTTL: "168h"}, []string{`context "recordTtl": 168h is out of range [360h, 8760h]`}},
		{"bot timeout over 5m", given{settings.BotTimeout: "301s"}, []string{`"botTimeout": 301s is out of range [1ms, 5m]`}},
		{"max concurrency 1", given{settings.MaxConcurrency: "1"}, []string{`context "maxConcurrency": 1 is out of range [2, 1000]`}},
		{"max concurrency over 1000", given{settings.MaxConcurrency: float64(1001)}, []string{`"maxConcurrency": 1001 is out of range [2, 1000]`}},
		{"max concurrency not a number", given{settings.MaxConcurrency: "ten"}, []string{`"maxConcurrency": "ten" is not a whole number`}},
		{"rules file missing", given{settings.Bot: "rules", settings.RulesFile: "no/such/rules.json"},
			[]string{`context "rulesFile"`, "no/such/rules.json does not exist", "relative to the repository root"}},
		{"rules file a directory", given{settings.Bot: "rules", settings.RulesFile: "infra"}, []string{`"rulesFile"`, "is not a file"}},
		{"rules file not JSON", given{settings.Bot: "rules", settings.RulesFile: "infra/deploy/config.go"}, []string{`"rulesFile"`, "config.go is not JSON"}},
		// Another bot's settings would do nothing: refused.
		{"rules file without rules bot", given{settings.RulesFile: "infra/testdata/rules.json"},
			[]string{`context "rulesFile": is only used with bot=rules, and bot is echo`}},
		{"http bot without URL", given{settings.Bot: "http"}, []string{`context "httpBotUrl": required with bot=http`}},
		{"http bot URL relative", given{settings.Bot: "http", settings.HTTPBotURL: "/webhook"}, []string{`"httpBotUrl"`, "absolute http or https"}},
		{"http bot URL with credentials", given{settings.Bot: "http", settings.HTTPBotURL: "https://u:p@bot/"}, []string{`"httpBotUrl"`, "credentials"}},
		{"http bot URL without http bot", with(llm, given{settings.HTTPBotURL: "https://bot/"}),
			[]string{`"httpBotUrl": is only used with bot=http, and bot is llm`}},
		{"llm without model and key", given{settings.Bot: "llm"},
			[]string{`context "llmModel": required with bot=llm`, `context "llmApiKeySecretName": required with bot=llm`}},
		{"llm settings without llm bot", given{settings.LLMModel: "gpt", settings.LLMTemperature: "1"},
			[]string{`"llmModel": is only used with bot=llm`, `"llmTemperature": is only used with bot=llm`}},
		{"bad duration", given{settings.RetryMinDelay: "5 seconds"}, []string{`"retryMinDelay"`, "not a Go duration"}},
		{"delivery timeout over 30s", given{settings.DeliveryTimeout: "31s"}, []string{`"deliveryTimeout": 31s is out of range [1ms, 30s]`}},
		{"retry delay over 12h", given{settings.RetryMaxDelay: "13h"}, []string{`"retryMaxDelay": 13h is out of range`}},
		{"zero attempts", given{settings.MaxAttempts: "0"}, []string{`"maxAttempts": 0 is out of range [1, 100]`}},
		{"too many attempts", given{settings.MaxAttempts: "101", settings.RetryMaxDelay: "1m"}, []string{`"maxAttempts": 101 is out of range [1, 100]`}},
		{"attempts not a number", given{settings.MaxAttempts: "eleven"}, []string{"not a whole number"}},
		// The rules between settings are the functions' own (delivery.Settings.Validate).
		{"min over max", given{settings.RetryMinDelay: "2h", settings.RetryMaxDelay: "1h"},
			[]string{"context retryMinDelay, retryMaxDelay, maxAttempts, holdLimit together: retry budget (PARLEY_RETRY_MIN_DELAY", "maximum retry delay 1h0m0s must be between the minimum 2h0m0s"}},
		// 27 waits of 12h, and the default hour's hold with one more wait, are more than
		// 14 days.
		{"retries outlast retention", given{settings.MaxAttempts: "28"},
			[]string{"context retryMinDelay, retryMaxDelay, maxAttempts, holdLimit together: retry budget (PARLEY_RETRY_MIN_DELAY", "more than the queue's 336h0m0s retention"}},
		{"many attempts outlast retention", given{settings.MaxAttempts: "100", settings.RetryMaxDelay: "4h"}, []string{"retention"}},
		{"hold limit outlasts retention", given{settings.MaxAttempts: "27", settings.HoldLimit: "12h1s"}, []string{"retention"}},
		{"hold limit over 7 days", given{settings.HoldLimit: "169h", settings.MaxAttempts: "1"}, []string{`context "holdLimit": 169h is out of range [0s, 168h]`}},
		{"hold limit negative", given{settings.HoldLimit: "-1m"}, []string{`"holdLimit": -1m is out of range`}},
		{"hold limit not a duration", given{settings.HoldLimit: "1 hour"}, []string{`"holdLimit": "1 hour" is not a Go duration`}},
		{"disable after failures negative", given{settings.DisableAfterFailures: "-1"}, []string{`context "disableAfterFailures": -1 is out of range [0, 100000]`}},
		{"disable after over retention", given{settings.DisableAfter: "337h"}, []string{`context "disableAfter": 337h is out of range [0s, 336h]`}},
		{"rate limit negative", given{settings.EndpointRateLimit: "-1"}, []string{`context "endpointRateLimit": -1 is out of range [0, 10000]`}},
		{"rate limit NaN", given{settings.EndpointRateLimit: "NaN"}, []string{`"endpointRateLimit": "NaN" is not a number`}},
		{"rate limit infinite", given{settings.EndpointRateLimit: "+Inf"}, []string{`"endpointRateLimit": "+Inf" is not a number`}},
		{"tracing", given{settings.Tracing: "on"}, []string{`context "tracing": "on" is not one of passthrough, active`}},
		{"failed attempts alarm zero", given{FailedAttemptsAlarm: "0"}, []string{`context "failedAttemptsAlarm": 0 is out of range [1, 1000000]`}},
		{"oldest message alarm", given{OldestMessageAgeAlarm: "30s"}, []string{`context "oldestMessageAgeAlarm": 30s is out of range [1m, 336h]`}},
		{"bad removal policy", given{settings.RemovalPolicy: "snapshot"}, []string{`"removalPolicy": "snapshot" is not one of retain, destroy`}},
		{"bad alarm email", given{settings.AlarmEmail: "ops at example"}, []string{`context "alarmEmail": "ops at example" is not an e-mail address`}},
		{"all at once", given{settings.ResponseEndpointURL: "nope", settings.DeliveryTimeout: "1m", settings.MaxAttempts: "-1"},
			[]string{"responseEndpointUrl", "deliveryTimeout", "maxAttempts"}},
		{"llm provider", with(llm, given{settings.LLMProvider: "groq"}), []string{`"llmProvider": "groq" is not one of openai, anthropic`}},
		{"llm base URL relative", with(llm, given{settings.LLMBaseURL: "api.openai.com"}), []string{`"llmBaseUrl"`}},
		{"llm system prompt too long", with(llm, given{settings.LLMSystemPrompt: strings.Repeat("x", 2049)}), []string{`"llmSystemPrompt": 2049 bytes, at most 2048`}},
		{"llm temperature NaN", with(llm, given{settings.LLMTemperature: "NaN"}), []string{`"llmTemperature": "NaN" is not a number`}},
		{"llm temperature over 2", with(llm, given{settings.LLMTemperature: float64(2.5)}), []string{`"llmTemperature": 2.5 is out of range [0, 2]`}},
		{"llm max tokens fraction", with(llm, given{settings.LLMMaxTokens: "1.5"}), []string{`"llmMaxTokens": "1.5" is not a whole number`}},
		{"llm history", with(llm, given{settings.LLMHistory: "101"}), []string{`"llmHistory": 101 is out of range [0, 100]`}},
		{"llm secret ARN", with(llm, given{settings.LLMAPIKeySecretName: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf"}),
			[]string{`"llmApiKeySecretName": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf" is an ARN: give the secret's name`}},
		{"llm secret name characters", with(llm, given{settings.LLMAPIKeySecretName: "my key"}), []string{`"llmApiKeySecretName": "my key" is not a secret name`}},
		{"llm secret name suffix", with(llm, given{settings.LLMAPIKeySecretName: "parley-openai"}), []string{`"llmApiKeySecretName": "parley-openai" ends in a hyphen and six characters`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.context)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestDeliveryTiming: the functions' rule, in Lambda's and SQS's whole seconds, within
// what they accept and Lambda's guidance for SQS sources.
func TestDeliveryTiming(t *testing.T) {
	for _, tt := range []struct {
		bot, function, visibility time.Duration
	}{
		{time.Second, 81 * time.Second, 486 * time.Second},
		{30 * time.Second, 110 * time.Second, 660 * time.Second},
		{1500 * time.Millisecond, 82 * time.Second, 492 * time.Second}, // the bot timeout taken up
		{time.Millisecond, 81 * time.Second, 486 * time.Second},
		{5 * time.Minute, 380 * time.Second, 2280 * time.Second},
	} {
		got := DeliveryTiming(tt.bot)
		if got.FunctionTimeout != tt.function || got.VisibilityTimeout != tt.visibility {
			t.Errorf("bot timeout %s: got %+v, want function %s, visibility %s", tt.bot, got, tt.function, tt.visibility)
		}
	}
	for _, bot := range []time.Duration{time.Millisecond, 999 * time.Millisecond, 10 * time.Second, 123456 * time.Millisecond, 5 * time.Minute} {
		got := DeliveryTiming(bot)
		if got.FunctionTimeout%time.Second != 0 || got.VisibilityTimeout%time.Second != 0 ||
			got.VisibilityTimeout < 6*got.FunctionTimeout || got.FunctionTimeout > 15*time.Minute || got.VisibilityTimeout > 12*time.Hour {
			t.Errorf("bot timeout %s: %+v breaks a limit", bot, got)
		}
	}
}

// TestMakeContext: rules.mk passes every deploy setting on as its context key (the
// Response Endpoint URL and the stage on their own), and no other key.
func TestMakeContext(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repoRoot, "infra", "rules.mk"))
	if err != nil {
		t.Fatal(err)
	}
	passed := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\(call cdk_context,(\w+),\$\(`).FindAllStringSubmatch(string(mk), -1) {
		passed[m[1]] = true
	}
	for _, s := range Settings {
		switch {
		case s == settings.ResponseEndpointURL || s == settings.Stage:
			if !strings.Contains(string(mk), "-c "+s.Context+"=") {
				t.Errorf("rules.mk does not pass %s", s.Context)
			}
		case !passed[s.Context]:
			t.Errorf("rules.mk does not pass %s", s.Context)
		}
		delete(passed, s.Context)
	}
	for key := range passed {
		t.Errorf("rules.mk passes %s, which is no deploy setting", key)
	}
}
