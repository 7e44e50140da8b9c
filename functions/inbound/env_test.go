package main

import (
	"strings"
	"testing"
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

// Every configuration problem is reported at once, an unknown bot among them.
func TestConfigProblemsTogether(t *testing.T) {
	env := map[string]string{"PARLEY_BOT": "eliza", "PARLEY_RECORD_TTL": "forever", "PARLEY_LLM_TEMPERATURE": "9"}
	_, err := loadConfig(func(k string) string { return env[k] })
	for _, want := range []string{"PARLEY_TABLE_NAME", "PARLEY_QUEUE_URL", `PARLEY_BOT="eliza"`, "PARLEY_RECORD_TTL", "PARLEY_LLM_TEMPERATURE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	env = map[string]string{"PARLEY_TABLE_NAME": "t", "PARLEY_QUEUE_URL": "q", "PARLEY_BOT": "llm", "PARLEY_LLM_MODEL": "m"}
	if _, err := loadConfig(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "PARLEY_LLM_API_KEY_SECRET_ARN") {
		t.Errorf("llm without a key: %v", err)
	}
}
