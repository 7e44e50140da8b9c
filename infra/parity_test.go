package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/parley-chat/parley/infra/deploy"
	"github.com/parley-chat/parley/shared/settings"
)

// template.yaml is generated from package deploy, which the CDK stack is built from too
// (deploy's TestTemplate compares it byte for byte with the generator's output). What
// the generation does not guarantee is that the two renderings of the one definition —
// stack.go's constructs and deploy/sam.go's YAML — describe the same system. These
// tests read both into a system (system_test.go) and compare everything a deploy
// depends on, for the defaults, every setting changed and each bot.

func readSAMTemplate(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// samParams are the SAM parameter values of a CDK configuration: each setting's value
// in its parameter's unit (Number parameters as float64, as goformation reads YAML
// numbers), the rules file where the stack puts it.
func samParams(t *testing.T, doc *samDoc, cfg deploy.Config) map[string]any {
	t.Helper()
	params := map[string]any{}
	for _, s := range deploy.Settings {
		name, _ := deploy.Parameter(s)
		v := cfg.Value(s)
		if name == "" || v == "" {
			continue
		}
		switch {
		case deploy.Unit(name) != 0:
			v = strconv.FormatFloat(cfg.Number(s), 'f', -1, 64)
		case s == settings.RulesFile:
			v = deploy.RulesFileOnLambda
		}
		params[name] = v
		if doc.Parameters[name].Type == "Number" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("parameter %s: %v", name, err)
			}
			params[name] = f
		}
	}
	return params
}

func samSystem(data []byte, params map[string]any) (*system, error) {
	raw, err := processTemplate(data, true, params)
	if err != nil {
		return nil, err
	}
	return loadSystem(raw)
}

// compareSystems lists how sam differs from cdk.
func compareSystems(cdk, sam *system) []string {
	return diff("template.yaml", sam, cdk)
}

func TestParity(t *testing.T) {
	s := defaultSynth(t)
	cdk := cdkSystem(t, s)
	// Only the Response Endpoint URL has no default in either.
	data := readSAMTemplate(t)
	sam, err := samSystem(data, map[string]any{"ResponseEndpointUrl": testEndpoint})
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	for _, d := range compareSystems(cdk, sam) {
		t.Error(d)
	}

	// The comparison covers what it should: a sanity check of the CDK side.
	in, out := cdk.Functions["InboundFunction"], cdk.Functions["DeliveryFunction"]
	if in == nil || out == nil {
		t.Fatalf("functions: got %v", cdk.Functions)
	}
	if len(in.Environment) != 4 || len(out.Environment) != 16 || !slices.Equal(in.Routes, []string{"$default"}) ||
		len(out.Queues) != 1 || len(cdk.Queues) != 2 || len(cdk.Tables) != 1 || len(cdk.Alarms) != 9 || len(cdk.Outputs) != 5 {
		t.Errorf("CDK system is missing parts: %+v %+v %+v", cdk, in, out)
	}
	if d, ok := cdk.Dashboards["Dashboard"]; !ok || len(dashboardWidgets(d)) != 9 {
		t.Errorf("CDK dashboard: got %+v, want 9 widgets", cdk.Dashboards)
	}

	// The defaults SAM offers are the settings' (the comparison above), and each passes
	// its own parameter's constraints, as CloudFormation checks it.
	doc := readSAMDoc(t, data)
	for name, p := range doc.Parameters {
		if p.Default != nil {
			if err := doc.checkParameter(name, fmt.Sprint(p.Default)); err != nil {
				t.Errorf("default: %v", err)
			}
		}
	}
}

// dashboardWidgets are a dashboard body's widgets, nil when it has none.
func dashboardWidgets(d dashboard) []any {
	body, _ := d.Body.(map[string]any)
	widgets, _ := body["widgets"].([]any)
	return widgets
}

// everySetting changes every setting that is not a bot's from its default: the
// parity tests synthesize the stack with it and give SAM the matching parameters.
var everySetting = given{
	settings.Stage: "prod", settings.Bot: "rules", settings.RecordTTL: "400h", settings.RetryMinDelay: "1s", settings.RetryMaxDelay: "1h",
	settings.MaxAttempts: "5", settings.DeliveryTimeout: "20s", deploy.OldestMessageAgeAlarm: "30m",
	settings.HistoryTTL: "2160h", settings.BotTimeout: "180s", settings.MaxConcurrency: "50",
	settings.HoldLimit: "6h", settings.DisableAfterFailures: "5", settings.DisableAfter: "48h", settings.EndpointRateLimit: "2.5",
	settings.Tracing: "active", deploy.FailedAttemptsAlarm: "40", settings.AlarmEmail: "ops@example.com",
}

// TestParityWithSettings synthesizes the stack with every setting changed and gives the
// SAM template the matching parameters: still one system, the timing that follows the
// bot timeout and the alarms' actions included.
func TestParityWithSettings(t *testing.T) {
	s := synth(t, everySetting, false)
	cdk := cdkSystem(t, s)
	data := readSAMTemplate(t)
	params := samParams(t, readSAMDoc(t, data), s.cfg)
	sam, err := samSystem(data, params)
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	for _, d := range compareSystems(cdk, sam) {
		t.Error(d)
	}
	for name, v := range params {
		if err := readSAMDoc(t, data).checkParameter(name, fmt.Sprint(v)); err != nil {
			t.Error(err)
		}
	}

	// And the CDK side changed alone is caught: the comparison is not blind to a setting.
	samDefaults, err := samSystem(data, map[string]any{"ResponseEndpointUrl": testEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	diffs := strings.Join(compareSystems(cdk, samDefaults), "\n")
	for _, want := range []string{"PARLEY_MAX_ATTEMPTS", "PARLEY_BOT]", "PARLEY_HISTORY_TTL", "PARLEY_RECORD_TTL", "PARLEY_BOT_TIMEOUT",
		"Threshold", "DeliveryFunction].Timeout", "DeliveryQueue].VisibilityTimeout", "MaximumConcurrency",
		"PARLEY_HOLD_LIMIT", "PARLEY_DISABLE_AFTER_FAILURES", "PARLEY_DISABLE_AFTER]", "PARLEY_ENDPOINT_RATE_LIMIT",
		"InboundFunction].Tracing", "DeliveryFunction].Tracing", "InboundFunction].Permissions[*]", "DeliveryFunction].Permissions[*]",
		"FailedAttemptsHigh].Threshold", "Dashboards[Dashboard].Body[widgets][5][properties][annotations]", "Dashboards[Dashboard].Name",
		"Actions", "Outputs"} {
		if !strings.Contains(diffs, want) {
			t.Errorf("changing %s in CDK alone went unnoticed; differences:\n%s", want, diffs)
		}
	}
}

// TestParityBots: each bot configuration of the CDK app and the SAM template with the
// matching parameters are one system, environment values and permissions included;
// and the parameter values pass the template's own checks.
func TestParityBots(t *testing.T) {
	data := readSAMTemplate(t)
	doc := readSAMDoc(t, data)
	for name, context := range botContexts(t) {
		t.Run(name, func(t *testing.T) {
			s := synth(t, context, false)
			cdk := cdkSystem(t, s)
			params := samParams(t, doc, s.cfg)
			sam, err := samSystem(data, params)
			if err != nil {
				t.Fatalf("read template.yaml: %v", err)
			}
			for _, d := range compareSystems(cdk, sam) {
				t.Error(d)
			}
			for p, v := range params {
				if err := doc.checkParameter(p, fmt.Sprint(v)); err != nil {
					t.Error(err)
				}
			}
			if failed := failedRules(t, data, params); len(failed) > 0 {
				t.Errorf("template rules fail: %v", failed)
			}
		})
	}
}

// TestSAMRules: the template's Rules refuse a bot without its required parameters, as
// the CDK app refuses the context.
func TestSAMRules(t *testing.T) {
	base := map[string]any{"ResponseEndpointUrl": testEndpoint}
	for _, tt := range []struct {
		params map[string]any
		want   []string
	}{
		{map[string]any{}, nil},
		{map[string]any{"Bot": "http"}, []string{"Bot=http needs HttpBotUrl."}},
		{map[string]any{"Bot": "llm"}, []string{"Bot=llm needs LlmApiKeySecretName.", "Bot=llm needs LlmModel."}},
		{map[string]any{"Bot": "llm", "LlmModel": "m"}, []string{"Bot=llm needs LlmApiKeySecretName."}},
		{map[string]any{"Bot": "llm", "LlmModel": "m", "LlmApiKeySecretName": "k"}, nil},
		{map[string]any{"Bot": "echo", "LlmModel": "m"}, nil},
	} {
		params := maps.Clone(base)
		maps.Copy(params, tt.params)
		if got := failedRules(t, readSAMTemplate(t), params); !slices.Equal(got, tt.want) {
			t.Errorf("parameters %v: failing rules %v, want %v", tt.params, got, tt.want)
		}
	}
}

// failedRules evaluates the template's Rules with the parameters, as CloudFormation
// does before a deploy, and returns the failing assertions' descriptions, sorted. It
// also checks that every condition evaluates: one that does not would make each
// !If on it quietly drop its value.
func failedRules(t *testing.T, data []byte, params map[string]any) []string {
	t.Helper()
	var doc struct {
		Conditions map[string]any
		Rules      map[string]struct {
			RuleCondition *bool
			Assertions    []struct {
				Assert            any
				AssertDescription string
			}
		}
	}
	if err := decodeTemplate(data, true, processorOptions(params), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rules) == 0 {
		t.Fatal("template.yaml has no Rules")
	}
	for name, c := range doc.Conditions {
		if _, ok := c.(bool); !ok {
			t.Errorf("condition %s does not evaluate: %v", name, c)
		}
	}
	var failed []string
	for name, r := range doc.Rules {
		if r.RuleCondition != nil && !*r.RuleCondition {
			continue
		}
		for _, a := range r.Assertions {
			switch a.Assert {
			case true:
			case false:
				failed = append(failed, a.AssertDescription)
			default:
				t.Errorf("rule %s: assertion %q did not evaluate: %v", name, a.AssertDescription, a.Assert)
			}
		}
	}
	sort.Strings(failed)
	return failed
}

// samDoc is template.yaml read without resolving anything.
type samDoc struct {
	Parameters map[string]struct {
		Type               string
		Default            any
		AllowedPattern     string
		AllowedValues      []string
		MaxLength          int
		MinValue, MaxValue *float64
	}
}

func readSAMDoc(t *testing.T, data []byte) *samDoc {
	t.Helper()
	var doc samDoc
	if err := decodeTemplate(data, true, &intrinsics.ProcessorOptions{NoProcess: true}, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

// checkParameter applies a parameter's constraints to a value, as CloudFormation does.
func (d *samDoc) checkParameter(name, value string) error {
	p, ok := d.Parameters[name]
	switch {
	case !ok:
		return fmt.Errorf("no parameter %s", name)
	case p.AllowedValues != nil && !slices.Contains(p.AllowedValues, value):
		return fmt.Errorf("parameter %s: %q is not one of %v", name, value, p.AllowedValues)
	case p.Type == "Number":
		n, err := strconv.ParseFloat(value, 64)
		switch {
		case err != nil:
			return fmt.Errorf("parameter %s: %q is not a number", name, value)
		case p.MinValue != nil && n < *p.MinValue:
			return fmt.Errorf("parameter %s: %q is less than %v", name, value, *p.MinValue)
		case p.MaxValue != nil && n > *p.MaxValue:
			return fmt.Errorf("parameter %s: %q is more than %v", name, value, *p.MaxValue)
		}
	case p.MaxLength > 0 && len(value) > p.MaxLength:
		return fmt.Errorf("parameter %s: %q is longer than %d", name, value, p.MaxLength)
	case p.AllowedPattern != "":
		// CloudFormation matches the whole value (its patterns here are anchored anyway).
		re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
		if err != nil {
			return fmt.Errorf("parameter %s: pattern %q: %v", name, p.AllowedPattern, err)
		}
		if !re.MatchString(value) {
			return fmt.Errorf("parameter %s: %q does not match %s", name, value, p.AllowedPattern)
		}
	}
	return nil
}

// TestSAMBuildMatchesBundling: `sam build` runs the root Makefile's build-<Function>
// targets; they must build what the CDK app bundles, the same way.
func TestSAMBuildMatchesBundling(t *testing.T) {
	for _, fn := range deploy.Functions {
		t.Run(fn.ID, func(t *testing.T) {
			cmd := exec.Command("make", "--no-print-directory", "-n", "build-"+fn.ID, "ARTIFACTS_DIR=/artifacts")
			cmd.Dir = repoRoot(t)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("make -n build-%s: %v", fn.ID, err)
			}
			env, args := map[string]string{}, []string(nil)
			for _, word := range shellWords(strings.TrimSpace(string(out))) {
				if k, v, ok := strings.Cut(word, "="); ok && len(args) == 0 && !strings.HasPrefix(word, "-") {
					env[k] = v
					continue
				}
				args = append(args, word)
			}
			wantEnv := map[string]string{}
			for _, kv := range buildEnv {
				k, v, _ := strings.Cut(kv, "=")
				wantEnv[k] = v
			}
			wantArgs := append([]string{"go"}, buildArgs(fn.Package, "/artifacts")...)
			if !slices.Equal(args, wantArgs) || fmt.Sprint(env) != fmt.Sprint(wantEnv) {
				t.Errorf("make build-%s runs %v %q,\nthe CDK app runs %v %q", fn.ID, env, args, wantEnv, wantArgs)
			}
		})
	}
}

// shellWords splits a command line on spaces outside double or single quotes.
func shellWords(s string) []string {
	var words []string
	var word strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
