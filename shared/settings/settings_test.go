package settings_test

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/settings"
	"github.com/parley-chat/parley/shared/webhook"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table")

const (
	begin = "<!-- settings: generated from shared/settings (go test ./shared/settings -update) -->\n"
	end   = "<!-- settings: end -->"
)

// The README's configuration table is the declarations, rendered.
func TestREADMETable(t *testing.T) {
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no generated settings table between %q and %q", begin, end)
	}
	want := readme[:i+len(begin)] + settings.Table(settings.Local) + readme[j:]
	if want == readme {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's configuration table is not the declarations': run go test ./shared/settings -update")
}

// The local stack reads every setting declared for it, and nothing else.
func TestTheLocalStackReadsWhatIsDeclared(t *testing.T) {
	env := map[string]string{"PORT": "0"}
	for _, p := range settings.Audit(settings.Local, env, func(getenv func(string) string) { _, _ = devstack.ConfigFromEnv(getenv) }) {
		t.Error(p)
	}
}

// Bounds and defaults the code keeps as constants are the declared ones.
func TestDeclarationsMatchTheCode(t *testing.T) {
	d := func(s string) time.Duration { v, _ := time.ParseDuration(s); return v }
	for _, c := range []struct {
		what      string
		got, want time.Duration
	}{
		{"bot timeout default", delivery.DefaultBotTimeout, d(settings.BotTimeout.Default)},
		{"bot timeout max", delivery.MaxBotTimeout, d(settings.BotTimeout.Max)},
		{"record TTL min", inbound.MinRecordTTL, d(settings.RecordTTL.Min)},
		{"history TTL min", delivery.MinHistoryTTL, d(settings.HistoryTTL.Min)},
		{"delivery timeout default", webhook.DefaultTimeout, d(settings.DeliveryTimeout.Default)},
		{"delivery timeout max", webhook.MaxTimeout, d(settings.DeliveryTimeout.Max)},
		{"retry max delay max", delivery.MaxVisibility, d(settings.RetryMaxDelay.Max)},
		{"default min delay", delivery.DefaultPolicy.MinDelay, d(settings.RetryMinDelay.Default)},
		{"default max delay", delivery.DefaultPolicy.MaxDelay, d(settings.RetryMaxDelay.Default)},
		{"default hold limit", delivery.DefaultPolicy.HoldLimit, d(settings.HoldLimit.Default)},
	} {
		if c.got != c.want {
			t.Errorf("%s: the code has %s, the declaration %s", c.what, c.got, c.want)
		}
	}
	if got := settings.MaxAttempts.Default; got != "11" || delivery.DefaultPolicy.MaxAttempts != 11 {
		t.Errorf("max attempts: the code has %d, the declaration %s", delivery.DefaultPolicy.MaxAttempts, got)
	}
}

// Every declaration is well formed: a default within its bounds, a part, a description.
func TestDeclarations(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range settings.All {
		name := s.Env + s.Context
		if seen[name] {
			t.Errorf("%s declared twice", name)
		}
		seen[name] = true
		if s.Parts == 0 || s.Description == "" {
			t.Errorf("%s: no part or no description", name)
		}
		if (s.Env == "") != (s.Parts == settings.Deploy) {
			t.Errorf("%s: a setting without a variable is deploy-only, and only it", name)
		}
		if s.Kind == settings.Enum && s.Default != "" && !strings.Contains(" "+strings.Join(s.Values, " ")+" ", " "+s.Default+" ") {
			t.Errorf("%s: default %q is not one of %v", name, s.Default, s.Values)
		}
		if s.Kind == settings.Duration && s.Default != "" {
			v, lo, hi := dur(s.Default), dur(s.Min), dur(s.Max)
			if v < lo || v > hi {
				t.Errorf("%s: default %s outside %s–%s", name, s.Default, s.Min, s.Max)
			}
		}
	}
}

func dur(s string) time.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(s)
	}
	return v
}
