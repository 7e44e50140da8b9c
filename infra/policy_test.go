package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// settingsProbe runs in the root module, like timingProbe: for each environment on its
// standard input it runs the delivery function's own reading of its settings
// (delivery.ConfigFromEnv) and answers the problems it finds, "" for none; it also
// answers the settings it reads from an empty environment (the defaults), and one
// log line carrying a metric value as the functions write it.
const settingsProbe = `package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/metrics"
)

func main() {
	var envs []map[string]string
	if err := json.NewDecoder(os.Stdin).Decode(&envs); err != nil {
		panic(err)
	}
	problems := make([]string, len(envs))
	for i, env := range envs {
		r := envvar.New(func(k string) string { return env[k] })
		delivery.ConfigFromEnv(r)
		if err := r.Err(); err != nil {
			problems[i] = err.Error()
		}
	}
	s := delivery.ConfigFromEnv(envvar.New(func(string) string { return "" }))
	var line bytes.Buffer
	slog.New(slog.NewJSONHandler(&line, nil)).LogAttrs(context.Background(), slog.LevelInfo, "probe",
		metrics.Recorder{On: true}.Attrs(time.UnixMilli(0), metrics.One("Probe"))...)
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"problems": problems,
		"defaults": map[string]any{
			"minDelay": s.Policy.MinDelay, "maxDelay": s.Policy.MaxDelay, "maxAttempts": s.Policy.MaxAttempts,
			"holdLimit": s.Policy.HoldLimit, "disableFailures": s.Disable.Failures, "disableSpan": s.Disable.Span,
			"rateLimit": s.RateLimit,
		},
		"metricLine": json.RawMessage(line.Bytes()),
	})
}
`

// goRunInRoot runs a one-file program in the root module (`go run` of a file resolves
// its imports against the module of the working directory) and returns its output.
func goRunInRoot(t *testing.T, src string, stdin []byte, args ...string) []byte {
	t.Helper()
	probe := filepath.Join(t.TempDir(), "probe.go")
	if err := os.WriteFile(probe, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"run", probe}, args...)...)
	cmd.Dir = repoRoot(t)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("go run the probe in the root module: %v\n%s", err, stderr)
	}
	return out
}

// settingEnv is the delivery function's variable for each context key that
// TestSettingsMatchApplication tries: the CDK app passes the text through.
var settingEnv = map[string]string{
	keyRetryMinDelay:     "PARLEY_RETRY_MIN_DELAY",
	keyRetryMaxDelay:     "PARLEY_RETRY_MAX_DELAY",
	keyMaxAttempts:       "PARLEY_MAX_ATTEMPTS",
	keyHoldLimit:         "PARLEY_HOLD_LIMIT",
	keyDisableAfterFails: "PARLEY_DISABLE_AFTER_FAILURES",
	keyDisableAfter:      "PARLEY_DISABLE_AFTER",
	keyEndpointRateLimit: "PARLEY_ENDPOINT_RATE_LIMIT",
}

// TestSettingsMatchApplication: the CDK app copies the delivery function's rules for its
// retry budget (the retention check with the hold limit, checkRetryBudget) and for the
// endpoint health and rate limit settings, because a value the function refuses stops
// it at every cold start, and its messages wait. For each configuration here, `cdk
// synth` accepts it exactly when the function does. (Left out: where the CDK app is
// stricter on purpose, such as a retry delay under a second.) The SAM template's largest
// choices (TestSAMRetryBudget) are among them.
func TestSettingsMatchApplication(t *testing.T) {
	sam := readSAMDoc(t, readSAMTemplate(t))
	longest := func(param string) string {
		var best string
		var bestD time.Duration = -1
		for _, v := range sam.Parameters[param].AllowedValues {
			if d, err := time.ParseDuration(v); err == nil && d > bestD {
				best, bestD = v, d
			}
		}
		return best
	}
	samMax := strconv.Itoa(int(*sam.Parameters["MaxAttempts"].MaxValue))

	cases := []map[string]string{
		{}, // the defaults
		// The retention rule: (attempts - 1) x maximum delay + hold limit <= 14 days.
		{keyMaxAttempts: "29", keyRetryMaxDelay: "12h", keyHoldLimit: "0"},   // exactly 14 days
		{keyMaxAttempts: "29", keyRetryMaxDelay: "12h", keyHoldLimit: "1s"},  // a second over
		{keyMaxAttempts: "29", keyRetryMaxDelay: "12h"},                      // over with the default hold limit
		{keyMaxAttempts: "28", keyRetryMaxDelay: "12h", keyHoldLimit: "12h"}, // exactly 14 days
		{keyMaxAttempts: "28", keyRetryMaxDelay: "12h", keyHoldLimit: "13h"},
		{keyMaxAttempts: "11", keyRetryMaxDelay: "12h", keyHoldLimit: "168h"}, // 5 + 7 days
		{keyMaxAttempts: "100", keyRetryMaxDelay: "3h"},
		{keyMaxAttempts: "100", keyRetryMaxDelay: "3h", keyHoldLimit: "39h"},
		{keyMaxAttempts: "100", keyRetryMaxDelay: "3h", keyHoldLimit: "40h"},
		{keyMaxAttempts: "100", keyRetryMaxDelay: "4h"},
		{keyMaxAttempts: samMax, keyRetryMaxDelay: longest("RetryMaxDelay"), keyHoldLimit: longest("HoldLimit")},
		// The hold limit's own range.
		{keyHoldLimit: "0s"}, {keyHoldLimit: "169h", keyMaxAttempts: "1"}, {keyHoldLimit: "-1s"}, {keyHoldLimit: "an hour"},
		// Endpoint health.
		{keyDisableAfterFails: "0"}, {keyDisableAfterFails: "100000"}, {keyDisableAfterFails: "100001"},
		{keyDisableAfterFails: "-1"}, {keyDisableAfterFails: "many"},
		{keyDisableAfter: "0s"}, {keyDisableAfter: "336h"}, {keyDisableAfter: "337h"}, {keyDisableAfter: "-1h"}, {keyDisableAfter: "a day"},
		// The rate limit.
		{keyEndpointRateLimit: "0"}, {keyEndpointRateLimit: "0.5"}, {keyEndpointRateLimit: "10000"},
		{keyEndpointRateLimit: "10001"}, {keyEndpointRateLimit: "-1"}, {keyEndpointRateLimit: "fast"},
	}
	envs := make([]map[string]string, len(cases))
	for i, c := range cases {
		envs[i] = map[string]string{}
		for k, v := range c {
			envs[i][settingEnv[k]] = v
		}
	}
	stdin, err := json.Marshal(envs)
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Problems []string
		Defaults struct {
			MinDelay, MaxDelay, HoldLimit, DisableSpan time.Duration
			MaxAttempts, DisableFailures               int
			RateLimit                                  float64
		}
		MetricLine json.RawMessage
	}
	out := goRunInRoot(t, settingsProbe, stdin)
	if err := json.Unmarshal(out, &app); err != nil || len(app.Problems) != len(cases) {
		t.Fatalf("probe output %q: %v", out, err)
	}
	for i, c := range cases {
		ctx := map[string]any{keyResponseEndpointURL: testEndpoint}
		for k, v := range c {
			ctx[k] = v
		}
		_, err := loadConfig(t, ctx)
		if cdkOK, appOK := err == nil, app.Problems[i] == ""; cdkOK != appOK {
			t.Errorf("%v: cdk synth accepts it: %v (%v); the delivery function: %v (%s)", c, cdkOK, err, appOK, app.Problems[i])
		}
	}

	// The defaults are the function's own.
	d := app.Defaults
	for _, c := range []struct {
		key  string
		want any
	}{
		{keyRetryMinDelay, d.MinDelay}, {keyRetryMaxDelay, d.MaxDelay}, {keyHoldLimit, d.HoldLimit}, {keyDisableAfter, d.DisableSpan},
		{keyMaxAttempts, d.MaxAttempts}, {keyDisableAfterFails, d.DisableFailures}, {keyEndpointRateLimit, d.RateLimit},
	} {
		var got any
		var err error
		switch c.want.(type) {
		case time.Duration:
			got, err = time.ParseDuration(defaults[c.key])
		case int:
			got, err = strconv.Atoi(defaults[c.key])
		case float64:
			got, err = strconv.ParseFloat(defaults[c.key], 64)
		}
		if err != nil || got != c.want {
			t.Errorf("default %s: got %q, the delivery function's is %v", c.key, defaults[c.key], c.want)
		}
	}

	// Every variable tried is one the stack sets.
	env := cdkSystem(t, defaultSynth(t)).Functions["DeliveryFunction"].Environment
	for key, name := range settingEnv {
		if env[name] != defaults[key] {
			t.Errorf("delivery function %s: got %q, want %s's default %q", name, env[name], key, defaults[key])
		}
	}

	// The metrics the alarms and the dashboard read are in the namespace and under the
	// dimension the functions write.
	var line struct {
		Service string
		AWS     struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(app.MetricLine, &line); err != nil || len(line.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("metric log line %s: %v", app.MetricLine, err)
	}
	m := line.AWS.CloudWatchMetrics[0]
	if m.Namespace != metricsNamespace || len(m.Dimensions) != 1 || !slices.Equal(m.Dimensions[0], []string{metricsDimension}) || line.Service != metricsService {
		t.Errorf("the functions write metrics to %s with dimensions %v, %s=%q; the stack reads %s with %s=%q",
			m.Namespace, m.Dimensions, metricsDimension, line.Service, metricsNamespace, metricsDimension, metricsService)
	}
}

// TestMetricNames: the alarms and the dashboard name metrics the functions write. The
// names are literals in the root module's code (metricOne and metricMillis in
// shared/delivery, the metricOf map in shared/inbound): the two lists must agree.
func TestMetricNames(t *testing.T) {
	var written []string
	calls := regexp.MustCompile(`metric(?:One|Millis)\("(\w+)"`)
	mapped := regexp.MustCompile(`(?m)^var metricOf = map\[string\]string\{(.*)\}$`)
	quoted := regexp.MustCompile(`:\s*"(\w+)"`)
	for _, dir := range []string{"shared/delivery", "shared/inbound"} {
		files, err := filepath.Glob(filepath.Join(repoRoot(t), dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range calls.FindAllSubmatch(src, -1) {
				written = append(written, string(m[1]))
			}
			for _, m := range mapped.FindAllSubmatch(src, -1) {
				for _, q := range quoted.FindAllSubmatch(m[1], -1) {
					written = append(written, string(q[1]))
				}
			}
		}
	}
	slices.Sort(written)
	written = slices.Compact(written)
	if want := slices.Sorted(slices.Values(parleyMetrics)); !slices.Equal(written, want) {
		t.Errorf("the functions write metrics %v; the stack knows %v", written, want)
	}

	// And each one is on the dashboard, and only those of Parley's namespace.
	var onDashboard []string
	for _, w := range dashboardWidgets(cdkSystem(t, defaultSynth(t)).Dashboards["Dashboard"]) {
		props, _ := w.(map[string]any)["properties"].(map[string]any)
		metrics, _ := props["metrics"].([]any)
		for _, m := range metrics {
			if m, _ := m.([]any); len(m) > 1 && m[0] == metricsNamespace {
				onDashboard = append(onDashboard, m[1].(string))
			}
		}
	}
	slices.Sort(onDashboard)
	if onDashboard = slices.Compact(onDashboard); !slices.Equal(onDashboard, written) {
		t.Errorf("dashboard shows %v, want %v", onDashboard, written)
	}
}
