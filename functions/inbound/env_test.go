package main

import "testing"

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
