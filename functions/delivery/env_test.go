package main

import (
	"testing"

	"github.com/parley-chat/parley/shared/settings"
)

// The delivery function reads every setting declared for it, and nothing else.
func TestReadsWhatIsDeclared(t *testing.T) {
	for _, p := range settings.Audit(settings.Delivery, map[string]string{}, func(getenv func(string) string) { _, _ = loadConfig(getenv) }) {
		t.Error(p)
	}
}
