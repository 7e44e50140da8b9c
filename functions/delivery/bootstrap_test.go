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

	// One execution environment for every event: the secret is read once, at init.
	t.Run("events", func(t *testing.T) {
		f := start(ctx, t, bin, env, b.functionTimeout)
		if n := b.sm.calls.Load(); n != 1 {
			t.Errorf("%d Secrets Manager calls during init, want 1", n)
		}
		type run struct {
			s         sample
			c         deliveryCase
			requestID string
		}
		var runs []run
		for _, name := range slices.Sorted(maps.Keys(expectations)) {
			s := loadSample(t, name)
			b.accept(t, s)
			for _, c := range expectations[name] {
				t.Run(name+"/"+c.name, func(t *testing.T) {
					_, raw := s.received(t, c.receives)
					b.rc.reset(s, c.reject)
					b.calls.take()
					out, errPayload, err := f.Invoke(ctx, raw)
					if err != nil || errPayload != nil {
						t.Fatalf("invoke: %v; error payload %s", err, errPayload)
					}
					// Lambda reads the partial batch response by these exact names.
					var res events.SQSEventResponse
					if err := json.Unmarshal(out, &res); err != nil || !strings.HasPrefix(string(out), `{"batchItemFailures":[`) {
						t.Fatalf("response %s (%v), want {\"batchItemFailures\":[...]}", out, err)
					}
					checkDelivery(t, b, s, c, res)
					invs := f.Invocations()
					runs = append(runs, run{s, c, invs[len(invs)-1].RequestID})
				})
			}
		}
		if n := b.sm.calls.Load(); n != 1 {
			t.Errorf("%d Secrets Manager calls after the invocations, want 1: once per cold start", n)
		}
		lines := parseLogs(t, f.SettledOutput())
		for _, r := range runs {
			var mine []logLine
			for _, l := range lines {
				if l.RequestID == r.requestID {
					mine = append(mine, l)
				}
			}
			checkLogs(t, r.s, r.c, mine)
		}
		for _, l := range lines {
			if !slices.ContainsFunc(runs, func(r run) bool { return r.requestID == l.RequestID }) {
				t.Errorf("log line without its invocation's request id: %s", l.raw)
			}
		}
		if out := f.Output(); strings.Contains(out, signingSecret) {
			t.Error("the log holds the signing secret")
		}
	})

	t.Run("init time", func(t *testing.T) {
		var inits []time.Duration
		for range 5 {
			f := start(ctx, t, bin, env, b.functionTimeout)
			inits = append(inits, f.FirstNext().Sub(f.Started))
			f.Stop()
		}
		slices.Sort(inits)
		t.Logf("init (process start to the first /next, with the Secrets Manager read), 5 runs: median %s, min %s, max %s", inits[2], inits[0], inits[4])
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
		env["PARLEY_MAX_ATTEMPTS"] = "0"
		env["PARLEY_BOT"] = "eliza"
		env["PARLEY_BOT_TIMEOUT"] = "10m"
		env["PARLEY_HISTORY_TTL"] = "24h"
		f := runFailing(ctx, t, bin, env)
		for _, name := range []string{"PARLEY_RESPONSE_ENDPOINT_URL", "PARLEY_QUEUE_URL", "PARLEY_DEAD_LETTER_QUEUE_URL", "PARLEY_TABLE_NAME",
			"PARLEY_MAX_ATTEMPTS", "PARLEY_BOT=", "PARLEY_BOT_TIMEOUT", "PARLEY_HISTORY_TTL"} {
			if !strings.Contains(f.Output(), name) {
				t.Errorf("the log does not name %s:\n%s", name, f.Output())
			}
			for _, ie := range f.InitErrors() {
				if !strings.Contains(string(ie.Payload), name) {
					t.Errorf("the init error %s does not name %s", ie.Payload, name)
				}
			}
		}
	})

	t.Run("unreadable secret", func(t *testing.T) {
		env := maps.Clone(env)
		env["PARLEY_SIGNING_SECRET_ARN"] = strings.Replace(secretARN, "Ab12Cd", "Gone00", 1)
		f := runFailing(ctx, t, bin, env)
		if out := f.Output(); !strings.Contains(out, "read signing secret") || !strings.Contains(out, "ResourceNotFoundException") {
			t.Errorf("the log does not say the secret could not be read:\n%s", out)
		}
	})
}

// start starts the bootstrap in env and waits for the end of its init.
func start(ctx context.Context, t *testing.T, bin string, env map[string]string, timeout time.Duration) *runtimeapi.Function {
	t.Helper()
	f, err := runtimeapi.Run(bin, runtimeapi.ProcessEnv(env, bin), runtimeapi.Config{
		FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:" + env["AWS_LAMBDA_FUNCTION_NAME"],
		Timeout:     timeout,
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

// runFailing starts the bootstrap in env and checks that its init fails: a non-zero
// exit with a JSON error line, before any request for an invocation.
func runFailing(ctx context.Context, t *testing.T, bin string, env map[string]string) *runtimeapi.Function {
	t.Helper()
	f, err := runtimeapi.Run(bin, runtimeapi.ProcessEnv(env, bin), runtimeapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	code, err := f.Wait(ctx)
	if err != nil || code == 0 {
		t.Fatalf("exit code %d (%v), want non-zero; output:\n%s", code, err, f.Output())
	}
	if n := f.Nexts(); n != 0 {
		t.Errorf("it asked for an invocation %d times before failing", n)
	}
	if !strings.Contains(f.Output(), `"level":"ERROR"`) {
		t.Errorf("no JSON error line in the log:\n%s", f.Output())
	}
	return f
}
