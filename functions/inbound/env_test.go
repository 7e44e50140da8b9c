package main

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/settings"
)

// TestEnvJSON: events/env.json, SAM's --env-vars file, configures this function the
// way it reads its configuration: the function starts with it, and reads every
// variable it sets (a misspelt name would be ignored without a word).
func TestEnvJSON(t *testing.T) {
	env := envJSON(t)
	read := map[string]bool{}
	if _, err := loadConfig(func(k string) string { read[k] = true; return env[k] }); err != nil {
		t.Fatalf("the function does not start with events/env.json: %v", err)
	}
	for k := range env {
		if !read[k] {
			t.Errorf("events/env.json sets %s, which the function does not read", k)
		}
	}
}

// Every configuration problem is reported at once; a record TTL shorter than the
// queue's retention and a day is one. The bot does not run here: no bot setting is
// read.
func TestConfigProblemsTogether(t *testing.T) {
	env := map[string]string{"PARLEY_RECORD_TTL": "168h", "PARLEY_BOT": "eliza"}
	read := map[string]bool{}
	_, err := loadConfig(func(k string) string { read[k] = true; return env[k] })
	for _, want := range []string{"PARLEY_TABLE_NAME", "PARLEY_QUEUE_URL", "PARLEY_RECORD_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	for k := range read {
		if k == "PARLEY_BOT" || strings.HasPrefix(k, "PARLEY_LLM_") || k == "PARLEY_RULES_FILE" || k == "PARLEY_HTTP_BOT_URL" || k == "PARLEY_BOT_TIMEOUT" {
			t.Errorf("the inbound function reads %s: the bot runs in the delivery function", k)
		}
	}
	env = map[string]string{"PARLEY_TABLE_NAME": "t", "PARLEY_QUEUE_URL": "q"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.recordTTL != 360*time.Hour {
		t.Errorf("defaults: record TTL %s (%v), want 360h: records outlive the queue's 14-day retention", cfg.recordTTL, err)
	}
}

// The inbound function reads every setting declared for it, and nothing else.
func TestReadsWhatIsDeclared(t *testing.T) {
	for _, p := range settings.Audit(settings.Inbound, map[string]string{}, func(getenv func(string) string) { _, _ = loadConfig(getenv) }) {
		t.Error(p)
	}
}
