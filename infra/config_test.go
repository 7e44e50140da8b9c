package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func lookupIn(m map[string]any) func(string) any {
	return func(k string) any { return m[k] }
}

// loadConfig is LoadConfig with relative paths resolved against this repository.
func loadConfig(t *testing.T, context map[string]any) (Config, error) {
	t.Helper()
	return LoadConfig(lookupIn(context), repoRoot(t))
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(t, map[string]any{keyResponseEndpointURL: testEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Stage: "dev", ResponseEndpointURL: testEndpoint, Bot: "echo", RecordTTL: "360h", HistoryTTL: "720h",
		BotTimeout: "30s", Timing: Timing{FunctionTimeout: 110 * time.Second, VisibilityTimeout: 660 * time.Second}, MaxConcurrency: 10,
		RetryMinDelay: "5s", RetryMaxDelay: "12h", MaxAttempts: 11, DeliveryTimeout: "10s",
		RemovalPolicy: "retain", OldestMessageAge: time.Hour,
		HoldLimit: "1h", DisableAfterFailures: 20, DisableAfter: "24h", EndpointRateLimit: "0", Tracing: "passthrough",
		FailedAttemptsAlarm: 100,
	}
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if cfg.StackName() != "Parley-dev" {
		t.Errorf("stack name: got %s, want Parley-dev", cfg.StackName())
	}
	// The redrive budget is SQS's maximum, as delivery.MaxReceives, not derived from
	// maxAttempts (see maxReceiveCount).
	if maxReceiveCount != 1000 {
		t.Errorf("maxReceiveCount: got %d, want 1000", maxReceiveCount)
	}
}

func TestLoadConfigValues(t *testing.T) {
	// Context from cdk.json arrives as JSON values, from -c as strings.
	cfg, err := loadConfig(t, map[string]any{
		keyResponseEndpointURL: "http://10.0.0.1:8080/bot?x=1", keyStage: "prod-2", keyBot: "http",
		keyHTTPBotURL: "http://rasa.internal:5005/webhooks/rest/webhook", keyHistoryTTL: "8760h", keyBotTimeout: "5m",
		keyRecordTTL: "360h", keyMaxConcurrency: float64(1000),
		keyMaxAttempts: float64(28), keyRetryMaxDelay: "12h", keyDeliveryTimeout: "30s",
		keyRemovalPolicy: "DESTROY", keyAlarmEmail: "ops@example.com", keyOldestMessageAge: "2h",
		keyHoldLimit: "0", keyDisableAfterFails: float64(0), keyDisableAfter: "336h", keyEndpointRateLimit: float64(2.50),
		keyTracing: "Active", keyFailedAttemptsAlarm: float64(25),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxAttempts != 28 || cfg.RemovalPolicy != "destroy" || cfg.AlarmEmail != "ops@example.com" ||
		cfg.OldestMessageAge != 2*time.Hour || cfg.StackName() != "Parley-prod-2" || cfg.Bot != "http" ||
		cfg.HTTPBotURL != "http://rasa.internal:5005/webhooks/rest/webhook" || cfg.HistoryTTL != "8760h" || cfg.BotTimeout != "5m" ||
		cfg.RecordTTL != "360h" || cfg.MaxConcurrency != 1000 || cfg.Timing.FunctionTimeout != 380*time.Second ||
		cfg.HoldLimit != "0" || cfg.DisableAfterFailures != 0 || cfg.DisableAfter != "336h" || cfg.EndpointRateLimit != "2.5" ||
		cfg.Tracing != "active" || cfg.FailedAttemptsAlarm != 25 {
		t.Errorf("got %+v", cfg)
	}
}

// TestLoadConfigMaxAttempts: the delivery function's whole range, 1–100, as long as the
// waits between the attempts and the hold limit fit in the queue's 14-day retention
// (the limits exactly: policy_test.go compares with the function).
func TestLoadConfigMaxAttempts(t *testing.T) {
	for _, tt := range []struct {
		attempts            any
		maxDelay, holdLimit string
	}{
		{"1", "12h", ""}, {"28", "12h", ""}, {"29", "11h", ""}, {float64(30), "1h", ""}, {"100", "3h", ""},
		{"29", "12h", "0"}, {"28", "12h", "12h"}, {"100", "3h", "39h"}, {"1", "12h", "168h"},
	} {
		cfg, err := loadConfig(t, map[string]any{keyResponseEndpointURL: testEndpoint, keyMaxAttempts: tt.attempts, keyRetryMaxDelay: tt.maxDelay, keyHoldLimit: tt.holdLimit})
		if err != nil {
			t.Errorf("maxAttempts %v, retryMaxDelay %s: %v", tt.attempts, tt.maxDelay, err)
			continue
		}
		if want := fmt.Sprint(tt.attempts); strconv.Itoa(cfg.MaxAttempts) != want {
			t.Errorf("maxAttempts: got %d, want %s", cfg.MaxAttempts, want)
		}
	}
}

func TestLoadConfigLLM(t *testing.T) {
	// Numbers from cdk.json arrive as float64; their text is canonical.
	cfg, err := loadConfig(t, map[string]any{
		keyResponseEndpointURL: testEndpoint, keyBot: "llm", keyLLMProvider: "anthropic",
		keyLLMBaseURL: "https://llm.example.com/v1", keyLLMModel: "claude-x", keyLLMSystemPrompt: "  Be brief.  ",
		keyLLMTemperature: "0.70", keyLLMMaxTokens: float64(1024), keyLLMHistory: "0", keyLLMAPIKeySecretName: "parley/llm-key",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := LLMConfig{
		Provider: "anthropic", BaseURL: "https://llm.example.com/v1", Model: "claude-x", SystemPrompt: "Be brief.",
		Temperature: "0.7", MaxTokens: "1024", History: "0", APIKeySecretName: "parley/llm-key",
	}
	if cfg.LLM != want {
		t.Errorf("got %+v, want %+v", cfg.LLM, want)
	}

	// Only the required ones: the provider defaults to openai, the rest stay unset.
	cfg, err = loadConfig(t, map[string]any{
		keyResponseEndpointURL: testEndpoint, keyBot: "llm", keyLLMModel: "gpt-4o-mini", keyLLMAPIKeySecretName: "openai-api-key",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (LLMConfig{Provider: "openai", Model: "gpt-4o-mini", APIKeySecretName: "openai-api-key"}); cfg.LLM != want {
		t.Errorf("got %+v, want %+v", cfg.LLM, want)
	}
}

func TestLoadConfigRulesFile(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "my rules.json")
	if err := os.WriteFile(abs, []byte(`{"fallback": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for given, want := range map[string]string{
		abs:                         abs,
		"infra/testdata/rules.json": filepath.Join(repoRoot(t), "infra", "testdata", "rules.json"),
		"":                          "", // the built-in example
	} {
		cfg, err := loadConfig(t, map[string]any{keyResponseEndpointURL: testEndpoint, keyBot: "rules", keyRulesFile: given})
		if err != nil {
			t.Fatalf("rulesFile %q: %v", given, err)
		}
		if cfg.RulesFile != want {
			t.Errorf("rulesFile %q: got %q, want %q", given, cfg.RulesFile, want)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		context map[string]any
		want    []string // each must appear in the error
	}{
		{"missing endpoint", map[string]any{}, []string{`"responseEndpointUrl": required`}},
		{"relative endpoint", map[string]any{keyResponseEndpointURL: "/hook"}, []string{`"responseEndpointUrl"`, "absolute http or https"}},
		{"ftp endpoint", map[string]any{keyResponseEndpointURL: "ftp://example.com/x"}, []string{"absolute http or https"}},
		{"endpoint without host", map[string]any{keyResponseEndpointURL: "https:///x"}, []string{"has no host"}},
		{"endpoint with credentials", map[string]any{keyResponseEndpointURL: "https://u:p@example.com/"}, []string{"credentials"}},
		{"bad stage", map[string]any{keyStage: "my stage"}, []string{`"stage"`}},
		{"bad bot", map[string]any{keyBot: "Echo Bot"}, []string{`"bot"`}},
		{"unknown bot", map[string]any{keyBot: "parrot"}, []string{`context "bot": "parrot" is not a bot: want one of echo, rules, llm, http`}},
		{"history TTL", map[string]any{keyHistoryTTL: "30 days"}, []string{`"historyTtl"`, "not a Go duration"}},
		{"history TTL too long", map[string]any{keyHistoryTTL: "10000h"}, []string{`"historyTtl": 10000h is out of range`}},
		{"history TTL under 15 days", map[string]any{keyHistoryTTL: "359h"},
			[]string{`context "historyTtl": 359h is out of range [360h, 8760h]: an exchange must outlive the delivery queue's 14-day retention by a day`}},
		{"record TTL under 15 days", map[string]any{keyRecordTTL: "168h"},
			[]string{`context "recordTtl": 168h is out of range [360h, 8760h]: a message record must outlive the delivery queue's 14-day retention by a day`}},
		{"bot timeout over 5m", map[string]any{keyBotTimeout: "301s"}, []string{`"botTimeout": 301s is out of range [1s, 5m]`}},
		{"bot timeout under 1s", map[string]any{keyBotTimeout: "500ms"}, []string{`"botTimeout": 500ms is out of range [1s, 5m]`}},
		{"max concurrency 1", map[string]any{keyMaxConcurrency: "1"}, []string{`context "maxConcurrency": 1 is out of range [2, 1000]`}},
		{"max concurrency over 1000", map[string]any{keyMaxConcurrency: float64(1001)}, []string{`"maxConcurrency": 1001 is out of range [2, 1000]`}},
		{"max concurrency not a number", map[string]any{keyMaxConcurrency: "ten"}, []string{`"maxConcurrency": "ten" is not a whole number`}},
		{"bot timeout", map[string]any{keyBotTimeout: "ten"}, []string{`"botTimeout"`, "not a Go duration"}},
		{"rules file missing", map[string]any{keyBot: "rules", keyRulesFile: "no/such/rules.json"},
			[]string{`context "rulesFile"`, "no/such/rules.json does not exist", "relative to the repository root"}},
		{"rules file a directory", map[string]any{keyBot: "rules", keyRulesFile: "infra"}, []string{`"rulesFile"`, "is not a file"}},
		{"rules file not JSON", map[string]any{keyBot: "rules", keyRulesFile: "infra/config.go"}, []string{`"rulesFile"`, "config.go is not JSON"}},
		{"rules file without rules bot", map[string]any{keyRulesFile: "infra/testdata/rules.json"},
			[]string{`context "rulesFile": is only used with bot=rules, and bot is echo`}},
		{"http bot without URL", map[string]any{keyBot: "http"}, []string{`context "httpBotUrl": required with bot=http`}},
		{"http bot URL relative", map[string]any{keyBot: "http", keyHTTPBotURL: "/webhook"}, []string{`"httpBotUrl"`, "absolute http or https"}},
		{"http bot URL with credentials", map[string]any{keyBot: "http", keyHTTPBotURL: "https://u:p@bot/"}, []string{`"httpBotUrl"`, "credentials"}},
		{"http bot URL without http bot", map[string]any{keyBot: "llm", keyHTTPBotURL: "https://bot/", keyLLMModel: "m", keyLLMAPIKeySecretName: "k"},
			[]string{`"httpBotUrl": is only used with bot=http, and bot is llm`}},
		{"llm without model and key", map[string]any{keyBot: "llm"},
			[]string{`context "llmModel": required with bot=llm`, `context "llmApiKeySecretName": required with bot=llm`}},
		{"llm settings without llm bot", map[string]any{keyLLMModel: "gpt", keyLLMTemperature: "1"},
			[]string{`"llmModel": is only used with bot=llm`, `"llmTemperature": is only used with bot=llm`}},
		{"bad duration", map[string]any{keyRetryMinDelay: "5 seconds"}, []string{`"retryMinDelay"`, "not a Go duration"}},
		{"delivery timeout over 30s", map[string]any{keyDeliveryTimeout: "31s"}, []string{`"deliveryTimeout": 31s is out of range`}},
		{"retry delay over 12h", map[string]any{keyRetryMaxDelay: "13h"}, []string{`"retryMaxDelay"`, "out of range"}},
		{"min over max", map[string]any{keyRetryMinDelay: "2h", keyRetryMaxDelay: "1h"}, []string{"longer than retryMaxDelay"}},
		{"zero attempts", map[string]any{keyMaxAttempts: "0"}, []string{`"maxAttempts": 0 is out of range [1, 100]`}},
		{"too many attempts", map[string]any{keyMaxAttempts: "101", keyRetryMaxDelay: "1m"}, []string{`"maxAttempts": 101 is out of range [1, 100]`}},
		{"attempts not a number", map[string]any{keyMaxAttempts: "eleven"}, []string{"not a whole number"}},
		// 28 waits of 12h are exactly the 14-day retention, so with the default hour a
		// message may wait behind its conversation's head, one too many.
		{"retries outlast retention", map[string]any{keyMaxAttempts: "29"},
			[]string{`context "maxAttempts": 29 attempts with retryMaxDelay 12h and holdLimit 1h: the waits may span 336h`, "14-day retention"}},
		{"many attempts outlast retention", map[string]any{keyMaxAttempts: "100", keyRetryMaxDelay: "4h"}, []string{"14-day retention"}},
		{"hold limit outlasts retention", map[string]any{keyMaxAttempts: "28", keyHoldLimit: "12h1s"}, []string{`"maxAttempts": 28 attempts`, "holdLimit 12h1s", "14-day retention"}},
		{"hold limit over 7 days", map[string]any{keyHoldLimit: "169h", keyMaxAttempts: "1"}, []string{`context "holdLimit": 169h is out of range [0s, 168h]`}},
		{"hold limit negative", map[string]any{keyHoldLimit: "-1m"}, []string{`"holdLimit": -1m is out of range`}},
		{"hold limit not a duration", map[string]any{keyHoldLimit: "1 hour"}, []string{`"holdLimit": "1 hour" is not a Go duration`}},
		{"disable after failures negative", map[string]any{keyDisableAfterFails: "-1"}, []string{`context "disableAfterFailures": -1 is out of range [0, 100000]`}},
		{"disable after failures too many", map[string]any{keyDisableAfterFails: float64(100001)}, []string{`"disableAfterFailures": 100001 is out of range`}},
		{"disable after failures not a number", map[string]any{keyDisableAfterFails: "twenty"}, []string{`"disableAfterFailures": "twenty" is not a whole number`}},
		{"disable after over retention", map[string]any{keyDisableAfter: "337h"}, []string{`context "disableAfter": 337h is out of range [0s, 336h]`}},
		{"disable after not a duration", map[string]any{keyDisableAfter: "1d"}, []string{`"disableAfter": "1d" is not a Go duration`}},
		{"rate limit negative", map[string]any{keyEndpointRateLimit: "-1"}, []string{`context "endpointRateLimit": -1 is out of range [0, 10000]`}},
		{"rate limit too high", map[string]any{keyEndpointRateLimit: float64(10001)}, []string{`"endpointRateLimit": 10001 is out of range`}},
		{"rate limit NaN", map[string]any{keyEndpointRateLimit: "NaN"}, []string{`"endpointRateLimit": "NaN" is not a number`}},
		{"rate limit infinite", map[string]any{keyEndpointRateLimit: "+Inf"}, []string{`"endpointRateLimit": "+Inf" is not a number`}},
		{"rate limit not a number", map[string]any{keyEndpointRateLimit: "fast"}, []string{`"endpointRateLimit": "fast" is not a number`}},
		{"tracing", map[string]any{keyTracing: "on"}, []string{`context "tracing": "on" must be active or passthrough`}},
		{"failed attempts alarm zero", map[string]any{keyFailedAttemptsAlarm: "0"}, []string{`context "failedAttemptsAlarm": 0 is out of range [1, 1000000]`}},
		{"bad removal policy", map[string]any{keyRemovalPolicy: "snapshot"}, []string{`"removalPolicy"`}},
		{"bad alarm email", map[string]any{keyAlarmEmail: "ops at example"}, []string{`"alarmEmail"`}},
		{"record TTL zero", map[string]any{keyRecordTTL: "0s"}, []string{`"recordTtl"`}},
		{"all at once", map[string]any{keyResponseEndpointURL: "nope", keyDeliveryTimeout: "1m", keyMaxAttempts: "-1"},
			[]string{"responseEndpointUrl", "deliveryTimeout", "maxAttempts"}},
	}
	llm := map[string]any{keyBot: "llm", keyLLMModel: "gpt-4o-mini", keyLLMAPIKeySecretName: "parley/openai"}
	for _, tt := range []struct {
		name, key string
		value     any
		want      string
	}{
		{"llm provider", keyLLMProvider, "groq", `"llmProvider": "groq" is not a provider: want openai or anthropic`},
		{"llm base URL http", keyLLMBaseURL, "http://localhost:11434/v1", `"llmBaseUrl": "http://localhost:11434/v1" must be an absolute https URL`},
		{"llm base URL relative", keyLLMBaseURL, "api.openai.com", `"llmBaseUrl"`},
		{"llm system prompt too long", keyLLMSystemPrompt, strings.Repeat("x", 2049), `"llmSystemPrompt": 2049 bytes, at most 2048`},
		{"llm temperature not a number", keyLLMTemperature, "warm", `"llmTemperature": "warm" is not a number`},
		{"llm temperature NaN", keyLLMTemperature, "NaN", `"llmTemperature": "NaN" is not a number`},
		{"llm temperature over 2", keyLLMTemperature, float64(2.5), `"llmTemperature": 2.5 is out of range [0, 2]`},
		{"llm temperature negative", keyLLMTemperature, "-0.1", `"llmTemperature": -0.1 is out of range`},
		{"llm max tokens zero", keyLLMMaxTokens, "0", `"llmMaxTokens": 0 is out of range [1, 32000]`},
		{"llm max tokens too many", keyLLMMaxTokens, float64(32001), `"llmMaxTokens": 32001 is out of range`},
		{"llm max tokens fraction", keyLLMMaxTokens, "1.5", `"llmMaxTokens": "1.5" is not a whole number`},
		{"llm history", keyLLMHistory, "101", `"llmHistory": 101 is out of range [0, 100]`},
		{"llm history negative", keyLLMHistory, "-1", `"llmHistory": -1 is out of range`},
		{"llm secret ARN", keyLLMAPIKeySecretName, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf", `"llmApiKeySecretName"`},
		{"llm secret name characters", keyLLMAPIKeySecretName, "my key", `"llmApiKeySecretName": "my key" is not a secret name`},
		{"llm secret name suffix", keyLLMAPIKeySecretName, "parley-openai", `"llmApiKeySecretName": "parley-openai" ends in a hyphen and six characters`},
	} {
		ctx := map[string]any{tt.key: tt.value}
		for k, v := range llm {
			if _, ok := ctx[k]; !ok {
				ctx[k] = v
			}
		}
		tests = append(tests, struct {
			name    string
			context map[string]any
			want    []string
		}{tt.name, ctx, []string{tt.want}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := map[string]any{keyResponseEndpointURL: testEndpoint}
			for k, v := range tt.context {
				ctx[k] = v
			}
			if tt.name == "missing endpoint" {
				delete(ctx, keyResponseEndpointURL)
			}
			_, err := loadConfig(t, ctx)
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

// TestDeliveryTiming: the rule of shared/delivery/config.go, with Lambda's whole seconds
// (timing_test.go compares it with the root module's own functions).
func TestDeliveryTiming(t *testing.T) {
	for _, tt := range []struct {
		bot, function, visibility time.Duration
	}{
		{time.Second, 81 * time.Second, 486 * time.Second},
		{10 * time.Second, 90 * time.Second, 540 * time.Second},
		{30 * time.Second, 110 * time.Second, 660 * time.Second},
		{1500 * time.Millisecond, 82 * time.Second, 492 * time.Second}, // rounded up
		{5 * time.Minute, 380 * time.Second, 2280 * time.Second},
	} {
		got := deliveryTiming(tt.bot)
		if got.FunctionTimeout != tt.function || got.VisibilityTimeout != tt.visibility {
			t.Errorf("bot timeout %s: got %+v, want function %s, visibility %s", tt.bot, got, tt.function, tt.visibility)
		}
		// Lambda's guidance for SQS sources, and what Lambda and SQS accept.
		if got.VisibilityTimeout < 6*got.FunctionTimeout || got.FunctionTimeout > 15*time.Minute || got.VisibilityTimeout > maxVisibilityDelay {
			t.Errorf("bot timeout %s: %+v breaks a limit", tt.bot, got)
		}
	}
}
