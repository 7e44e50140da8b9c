package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/settings"
)

var update = flag.Bool("update", false, "rewrite ../template.yaml (as make template does)")

var templatePath = filepath.Join(repoRoot, "template.yaml")

// TestTemplate: template.yaml is what the generator writes, byte for byte.
func TestTemplate(t *testing.T) {
	want, err := SAMTemplate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(templatePath)
	if err != nil && !*update {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	if *update {
		if err := os.WriteFile(templatePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(gotLines), len(wantLines)) {
		if gotLines[i] != wantLines[i] {
			t.Fatalf("template.yaml is not what infra/deploy generates (make template, or go test ./deploy -update, rewrites it); line %d:\n got  %q\n want %q",
				i+1, gotLines[i], wantLines[i])
		}
	}
	t.Fatalf("template.yaml is not what infra/deploy generates (make template rewrites it): %d lines, want %d", len(gotLines), len(wantLines))
}

// TestREADMETable: infra/README.md's parameters table is the generator's.
func TestREADMETable(t *testing.T) {
	path := filepath.Join(repoRoot, "infra", "README.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := WithParametersTable(got)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Error("infra/README.md's parameters table is not the generator's: make template (or go test ./deploy -update) rewrites it")
}

// readParameters are template.yaml's parameters, read without resolving anything.
func readParameters(t *testing.T) map[string]struct {
	Type               string
	Default            any
	AllowedValues      []string
	MinValue, MaxValue *float64
} {
	t.Helper()
	data, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	js, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters map[string]struct {
			Type               string
			Default            any
			AllowedValues      []string
			MinValue, MaxValue *float64
		}
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Parameters
}

// TestSAMRetryBudget: CloudFormation cannot add, so template.yaml offers the retry
// budget's parts so that no combination of the values it allows breaks the functions'
// own rule: each one, read as the delivery function reads its environment
// (delivery.ConfigFromEnv, which runs delivery.Settings.Validate), starts. And the most
// attempts is the most: one more breaks the rule with the largest choices.
func TestSAMRetryBudget(t *testing.T) {
	params := readParameters(t)
	minDelays, maxDelays, holds := params["RetryMinDelay"].AllowedValues, params["RetryMaxDelay"].AllowedValues, params["HoldLimit"].AllowedValues
	attempts := params["MaxAttempts"]
	if len(minDelays) == 0 || len(maxDelays) == 0 || len(holds) == 0 || attempts.MinValue == nil || attempts.MaxValue == nil {
		t.Fatalf("want RetryMinDelay, RetryMaxDelay and HoldLimit with AllowedValues, MaxAttempts with a range: got %+v", params)
	}
	start := func(minDelay, maxDelay, hold string, n int) error {
		env := map[string]string{settings.RetryMinDelay.Env: minDelay, settings.RetryMaxDelay.Env: maxDelay,
			settings.HoldLimit.Env: hold, settings.MaxAttempts.Env: strconv.Itoa(n)}
		r := envvar.New(func(k string) string { return env[k] })
		delivery.ConfigFromEnv(r)
		return r.Err()
	}
	tried := 0
	longest := func(values []string) (best string) {
		for _, v := range values {
			if best == "" || mustDuration(v) > mustDuration(best) {
				best = v
			}
		}
		return best
	}
	for _, minDelay := range minDelays {
		for _, maxDelay := range maxDelays {
			for _, hold := range holds {
				for n := int(*attempts.MinValue); n <= int(*attempts.MaxValue); n++ {
					tried++
					if err := start(minDelay, maxDelay, hold, n); err != nil {
						t.Fatalf("RetryMinDelay=%s RetryMaxDelay=%s HoldLimit=%s MaxAttempts=%d: template.yaml allows it, the delivery function refuses it: %v",
							minDelay, maxDelay, hold, n, err)
					}
				}
			}
		}
	}
	if start(minDelays[0], longest(maxDelays), longest(holds), int(*attempts.MaxValue)+1) == nil {
		t.Errorf("MaxAttempts at most %v is not the most: one more fits with the largest choices", *attempts.MaxValue)
	}
	t.Logf("%d combinations", tried)
}

// TestSAMParametersAreTheSettings: SAM offers every deploy setting but the removal
// policy (a template's resources are retained), under its declared parameter name.
func TestSAMParametersAreTheSettings(t *testing.T) {
	params := readParameters(t)
	want := map[string]bool{}
	for _, s := range Settings {
		if name, _ := Parameter(s); name != "" {
			want[name] = true
		} else if s != settings.RemovalPolicy {
			t.Errorf("%s: SAM offers no parameter for it", s.Context)
		}
	}
	for name := range params {
		if !want[name] {
			t.Errorf("template.yaml has parameter %s, which is no deploy setting", name)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("template.yaml lacks parameter %s", name)
	}
	// A duration in whole units: the bot timeout SAM offers by default is the declared one.
	if got := params[parameterName(settings.BotTimeout)].Default; got != strconv.Itoa(int(mustDuration(settings.BotTimeout.Default)/time.Second)) {
		t.Errorf("BotTimeoutSeconds default: got %v", got)
	}
}
