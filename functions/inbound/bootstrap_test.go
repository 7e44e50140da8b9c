package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/testkit/runtimeapi"
)

// TestBootstrap builds the real bootstrap as Lambda gets it (for this machine's
// architecture) and runs it as a process against a loopback Runtime API: what
// `sam local invoke` does, without Docker.
func TestBootstrap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := runtimeapi.Build(ctx, ".", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(bin); err == nil {
		t.Logf("bootstrap: %d bytes (%.2f MB)", info.Size(), float64(info.Size())/1e6)
	}
	b := newBackend(t)
	env := b.environment(t)

	t.Run("events", func(t *testing.T) {
		f := start(ctx, t, bin, env)
		answered := exercise(t, b, func(s sample) events.APIGatewayV2HTTPResponse {
			out, errPayload, err := f.Invoke(ctx, s.raw)
			if err != nil || errPayload != nil {
				t.Fatalf("%s: invoke: %v; error payload %s", s.name, err, errPayload)
			}
			var res events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("%s: response %s: %v", s.name, out, err)
			}
			return res
		})
		checkLogs(t, f, answered)
	})

	t.Run("init time", func(t *testing.T) {
		var inits []time.Duration
		for range 5 {
			f := start(ctx, t, bin, env)
			d, err := f.WaitReady(ctx)
			if err != nil {
				t.Fatal(err)
			}
			inits = append(inits, d)
			f.Stop()
		}
		slices.Sort(inits)
		t.Logf("init (process start to the first /next), 5 runs: median %s, min %s, max %s", inits[2], inits[0], inits[4])
		if inits[2] > 5*time.Second {
			t.Errorf("median init %s, want well under Lambda's 10s init limit", inits[2])
		}
	})

	// A function that cannot start must say everything that is wrong at once, and
	// exit non-zero before asking for work: Lambda reports it as an init error.
	t.Run("missing variables", func(t *testing.T) {
		env := maps.Clone(env)
		for k := range env {
			if strings.HasPrefix(k, "PARLEY_") {
				delete(env, k)
			}
		}
		env["PARLEY_RECORD_TTL"] = "-1h"
		f, err := runtimeapi.Run(bin, runtimeapi.ProcessEnv(env, bin), runtimeapi.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		code, err := f.Wait(ctx)
		if err != nil || code == 0 {
			t.Fatalf("exit code %d (%v), want non-zero; output:\n%s", code, err, f.Output())
		}
		if n := f.Nexts(); n != 0 {
			t.Errorf("it asked for an invocation %d times before failing", n)
		}
		var reports []string
		for _, ie := range f.InitErrors() {
			reports = append(reports, string(ie.Payload))
		}
		for _, name := range []string{"PARLEY_TABLE_NAME", "PARLEY_QUEUE_URL", "PARLEY_RECORD_TTL"} {
			if !strings.Contains(f.Output(), name) {
				t.Errorf("the log does not name %s:\n%s", name, f.Output())
			}
			for _, r := range reports {
				if !strings.Contains(r, name) {
					t.Errorf("the init error %s does not name %s", r, name)
				}
			}
		}
		if !strings.Contains(f.Output(), `"level":"ERROR"`) {
			t.Errorf("no JSON error line in the log:\n%s", f.Output())
		}
	})
}

// start starts the bootstrap in env and waits for the end of its init.
func start(ctx context.Context, t *testing.T, bin string, env map[string]string) *runtimeapi.Function {
	t.Helper()
	f, err := runtimeapi.Run(bin, runtimeapi.ProcessEnv(env, bin), runtimeapi.Config{
		FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:" + env["AWS_LAMBDA_FUNCTION_NAME"],
		Timeout:     10 * time.Second, // template.yaml
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	if _, err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkLogs: one JSON line per invocation, carrying its Lambda request id and status,
// and never the token or a message's text.
func checkLogs(t *testing.T, f *runtimeapi.Function, answered map[string]events.APIGatewayV2HTTPResponse) {
	t.Helper()
	out := f.SettledOutput()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, inv := range f.Invocations() {
		var res events.APIGatewayV2HTTPResponse
		_ = json.Unmarshal(inv.Response, &res)
		n := 0
		for _, l := range lines {
			if !strings.Contains(l, `"requestId":"`+inv.RequestID+`"`) {
				continue
			}
			n++
			var rec struct {
				Level, Message string
				Status         int
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Errorf("log line is not JSON: %s", l)
			}
			if rec.Message != "inbound" || rec.Status != res.StatusCode {
				t.Errorf("log line %s: want message inbound and status %d", l, res.StatusCode)
			}
		}
		if n != 1 {
			t.Errorf("%d log lines for invocation %s, want 1:\n%s", n, inv.RequestID, out)
		}
	}
	secrets := []string{sampleToken, "unterminated"}
	for name := range answered {
		if s := loadSample(t, name); s.valid {
			secrets = append(secrets, s.in.Text)
		}
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log holds %q: never tokens or message text", s)
		}
	}
}
