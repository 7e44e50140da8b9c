package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/awsenv"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/metrics"
	"github.com/parley-chat/parley/shared/settings"
)

// TestSettingsMatchApplication: `cdk synth` accepts a delivery setting exactly when the
// delivery function, reading the value from its environment, starts: both read the
// declarations, and the rules between settings are the function's own. A value the
// function refuses would stop it at every cold start, and its messages would wait.
func TestSettingsMatchApplication(t *testing.T) {
	cases := []given{
		{}, // the defaults
		// The retention rule: the waits at the maximum delay, and the hold limit with one
		// more wait, within 14 days.
		{settings.MaxAttempts: "29", settings.RetryMaxDelay: "12h", settings.HoldLimit: "0"}, // exactly 14 days
		{settings.MaxAttempts: "29", settings.RetryMaxDelay: "12h", settings.HoldLimit: "1s"},
		{settings.MaxAttempts: "28", settings.RetryMaxDelay: "12h"}, // with the default hour
		{settings.MaxAttempts: "27", settings.RetryMaxDelay: "12h", settings.HoldLimit: "12h"},
		{settings.MaxAttempts: "27", settings.RetryMaxDelay: "12h", settings.HoldLimit: "12h1s"},
		{settings.MaxAttempts: "11", settings.RetryMaxDelay: "12h", settings.HoldLimit: "168h"},
		{settings.MaxAttempts: "100", settings.RetryMaxDelay: "3h"},
		{settings.MaxAttempts: "100", settings.RetryMaxDelay: "3h", settings.HoldLimit: "36h"},
		{settings.MaxAttempts: "100", settings.RetryMaxDelay: "3h", settings.HoldLimit: "37h"},
		{settings.MaxAttempts: "100", settings.RetryMaxDelay: "4h"},
		{settings.RetryMinDelay: "2h", settings.RetryMaxDelay: "1h"},
		{settings.RetryMinDelay: "1ms"}, {settings.RetryMinDelay: "0s"},
		// Their own ranges.
		{settings.HoldLimit: "0s"}, {settings.HoldLimit: "169h", settings.MaxAttempts: "1"}, {settings.HoldLimit: "-1s"}, {settings.HoldLimit: "an hour"},
		{settings.BotTimeout: "5m"}, {settings.BotTimeout: "5m1s"}, {settings.DeliveryTimeout: "30s"}, {settings.DeliveryTimeout: "31s"},
		{settings.HistoryTTL: "359h"}, {settings.HistoryTTL: "360h"},
		{settings.DisableAfterFailures: "0"}, {settings.DisableAfterFailures: "100000"}, {settings.DisableAfterFailures: "100001"},
		{settings.DisableAfterFailures: "-1"}, {settings.DisableAfterFailures: "many"},
		{settings.DisableAfter: "0s"}, {settings.DisableAfter: "336h"}, {settings.DisableAfter: "337h"}, {settings.DisableAfter: "a day"},
		{settings.EndpointRateLimit: "0"}, {settings.EndpointRateLimit: "0.5"}, {settings.EndpointRateLimit: "10000"},
		{settings.EndpointRateLimit: "10001"}, {settings.EndpointRateLimit: "-1"}, {settings.EndpointRateLimit: "fast"}, {settings.EndpointRateLimit: "NaN"},
	}
	for _, c := range cases {
		env := map[string]string{}
		for s, v := range c {
			env[s.Env] = v.(string)
		}
		r := envvar.New(func(k string) string { return env[k] })
		delivery.ConfigFromEnv(r)
		appErr := r.Err()
		_, cdkErr := load(t, c)
		if (cdkErr == nil) != (appErr == nil) {
			t.Errorf("%v: cdk synth accepts it: %v (%v); the delivery function: %v (%v)", env, cdkErr == nil, cdkErr, appErr == nil, appErr)
		}
	}
}

// TestEnvironment: each function gets every setting shared/settings declares for it,
// but the ones the deployment leaves unset on purpose, and no other.
func TestEnvironment(t *testing.T) {
	for _, f := range Functions {
		got := map[string]bool{}
		for _, e := range f.Environment() {
			got[e.Setting.Env] = true
		}
		for _, s := range settings.All {
			_, unset := notDeployed[s]
			switch {
			case s.Env == "" || !s.Reads(f.Part):
				if got[s.Env] {
					t.Errorf("%s gets %s, which it does not read", f.ID, s.Env)
				}
			case unset && got[s.Env]:
				t.Errorf("%s gets %s, which the deployment leaves unset", f.ID, s.Env)
			case !unset && !got[s.Env]:
				t.Errorf("%s does not get %s, which it reads", f.ID, s.Env)
			}
		}
	}
	// A record lives at least as long as its history: both functions know both TTLs.
	for _, f := range Functions {
		if !slices.ContainsFunc(f.Environment(), func(e EnvVar) bool { return e.Setting == settings.HistoryTTL }) {
			t.Errorf("%s does not get PARLEY_HISTORY_TTL", f.ID)
		}
	}
}

// TestLocalEndpoints: the variables SAM's template declares for sam local are the ones
// the functions read their DynamoDB and SQS endpoints from.
func TestLocalEndpoints(t *testing.T) {
	read := map[string]bool{}
	for _, service := range []string{"DYNAMODB", "SQS"} {
		awsenv.Endpoint(func(k string) string { read[k] = true; return "" }, service)
	}
	for _, v := range LocalEndpoints {
		if !read[v] {
			t.Errorf("%s: the functions do not read it (they read %v)", v, read)
		}
	}
}

// TestInboundTimeout: an erasure after its token lookup fits in the inbound function's
// timeout, which stays under API Gateway's 30 s integration timeout.
func TestInboundTimeout(t *testing.T) {
	if need := inbound.DefaultCallTimeout + inbound.EraseTimeout; Inbound.Timeout <= need {
		t.Errorf("inbound timeout %s: an erasure takes up to %s", Inbound.Timeout, need)
	}
	if Inbound.Timeout >= 30*time.Second || Inbound.Timeout%time.Second != 0 {
		t.Errorf("inbound timeout %s: want whole seconds under API Gateway's 30 s", Inbound.Timeout)
	}
}

// TestMetrics: the alarms and the dashboard read the metrics the functions write, in
// their namespace and dimension. The names are literals in the main module's code
// (metricOne and metricMillis in shared/delivery, the metricOf map in shared/inbound).
func TestMetrics(t *testing.T) {
	var line bytes.Buffer
	slog.New(slog.NewJSONHandler(&line, nil)).LogAttrs(context.Background(), slog.LevelInfo, "probe",
		metrics.Recorder{On: true}.Attrs(time.UnixMilli(0), metrics.One("Probe"))...)
	var written struct {
		Service string
		AWS     struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(line.Bytes(), &written); err != nil || len(written.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("metric log line %s: %v", line.Bytes(), err)
	}
	m := written.AWS.CloudWatchMetrics[0]
	if m.Namespace != MetricsNamespace || len(m.Dimensions) != 1 || !slices.Equal(m.Dimensions[0], []string{MetricsDimension}) || written.Service != MetricsService {
		t.Errorf("the functions write metrics to %s with dimensions %v, %s=%q; the stack reads %s with %s=%q",
			m.Namespace, m.Dimensions, MetricsDimension, written.Service, MetricsNamespace, MetricsDimension, MetricsService)
	}

	var names []string
	calls := regexp.MustCompile(`metric(?:One|Millis)\("(\w+)"`)
	mapped := regexp.MustCompile(`(?m)^var metricOf = map\[string\]string\{(.*)\}$`)
	quoted := regexp.MustCompile(`:\s*"(\w+)"`)
	for _, dir := range []string{"shared/delivery", "shared/inbound"} {
		files, err := filepath.Glob(filepath.Join(repoRoot, dir, "*.go"))
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
				names = append(names, string(m[1]))
			}
			for _, m := range mapped.FindAllSubmatch(src, -1) {
				for _, q := range quoted.FindAllSubmatch(m[1], -1) {
					names = append(names, string(q[1]))
				}
			}
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if want := slices.Sorted(slices.Values(ParleyMetrics)); !slices.Equal(names, want) {
		t.Errorf("the functions write metrics %v; the deployment knows %v", names, want)
	}

	// Each one is on the dashboard, and every metric of Parley's namespace there is one.
	var shown []string
	for _, row := range Dashboard {
		for _, w := range row {
			for _, m := range w.Metrics {
				if m.Namespace == MetricsNamespace {
					shown = append(shown, m.Name)
				}
			}
		}
	}
	slices.Sort(shown)
	if shown = slices.Compact(shown); !slices.Equal(shown, names) {
		t.Errorf("the dashboard shows %v, want %v", shown, names)
	}
}
