package main

import (
	"strings"
	"testing"
	"time"
)

func lookupIn(m map[string]any) func(string) any {
	return func(k string) any { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(lookupIn(map[string]any{keyResponseEndpointURL: testEndpoint}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Stage: "dev", ResponseEndpointURL: testEndpoint, Bot: "echo", RecordTTL: "168h",
		RetryMinDelay: "5s", RetryMaxDelay: "12h", MaxAttempts: 11, DeliveryTimeout: "10s",
		RemovalPolicy: "retain", OldestMessageAge: time.Hour,
	}
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if cfg.StackName() != "Parley-dev" || cfg.MaxReceiveCount() != 12 {
		t.Errorf("stack name, receive count: got %s, %d, want Parley-dev, 12", cfg.StackName(), cfg.MaxReceiveCount())
	}
}

func TestLoadConfigValues(t *testing.T) {
	// Context from cdk.json arrives as JSON values, from -c as strings.
	cfg, err := LoadConfig(lookupIn(map[string]any{
		keyResponseEndpointURL: "http://10.0.0.1:8080/bot?x=1", keyStage: "prod-2", keyBot: "parrot",
		keyMaxAttempts: float64(28), keyRetryMaxDelay: "12h", keyDeliveryTimeout: "30s",
		keyRemovalPolicy: "DESTROY", keyAlarmEmail: "ops@example.com", keyOldestMessageAge: "2h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxAttempts != 28 || cfg.RemovalPolicy != "destroy" || cfg.AlarmEmail != "ops@example.com" ||
		cfg.OldestMessageAge != 2*time.Hour || cfg.StackName() != "Parley-prod-2" || cfg.Bot != "parrot" {
		t.Errorf("got %+v", cfg)
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
		{"bad duration", map[string]any{keyRetryMinDelay: "5 seconds"}, []string{`"retryMinDelay"`, "not a Go duration"}},
		{"delivery timeout over 30s", map[string]any{keyDeliveryTimeout: "31s"}, []string{`"deliveryTimeout": 31s is out of range`}},
		{"retry delay over 12h", map[string]any{keyRetryMaxDelay: "13h"}, []string{`"retryMaxDelay"`, "out of range"}},
		{"min over max", map[string]any{keyRetryMinDelay: "2h", keyRetryMaxDelay: "1h"}, []string{"longer than retryMaxDelay"}},
		{"zero attempts", map[string]any{keyMaxAttempts: "0"}, []string{`"maxAttempts": 0 is out of range [1, 30]`}},
		{"too many attempts", map[string]any{keyMaxAttempts: "31"}, []string{"out of range"}},
		{"attempts not a number", map[string]any{keyMaxAttempts: "eleven"}, []string{"not a whole number"}},
		{"retries outlast retention", map[string]any{keyMaxAttempts: "30"}, []string{"14-day retention"}},
		{"bad removal policy", map[string]any{keyRemovalPolicy: "snapshot"}, []string{`"removalPolicy"`}},
		{"bad alarm email", map[string]any{keyAlarmEmail: "ops at example"}, []string{`"alarmEmail"`}},
		{"record TTL zero", map[string]any{keyRecordTTL: "0s"}, []string{`"recordTtl"`}},
		{"all at once", map[string]any{keyResponseEndpointURL: "nope", keyDeliveryTimeout: "1m", keyMaxAttempts: "-1"},
			[]string{"responseEndpointUrl", "deliveryTimeout", "maxAttempts"}},
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
			_, err := LoadConfig(lookupIn(ctx))
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
