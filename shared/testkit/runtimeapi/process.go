package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/parley-chat/parley/shared/testkit/proc"
)

// BuildFlags are the go build flags of a Lambda bootstrap, as the Makefile and infra/
// build them: no RPC shim (provided.al2023 talks to the Runtime API), no paths or
// symbols in the binary.
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w"}

// Build compiles the main package in pkgDir into outDir/bootstrap with BuildFlags and
// CGO_ENABLED=0, for the host's OS and architecture so that it can run here.
func Build(ctx context.Context, pkgDir, outDir string) (string, error) {
	out := filepath.Join(outDir, "bootstrap")
	err := proc.GoBuild(ctx, pkgDir, ".", out, BuildFlags, "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	return out, err
}

// Function is a bootstrap process running against its own Server, as in a Lambda
// execution environment.
type Function struct {
	*Server
	// Started is when the process was started: a cold start's init lasts from here to
	// the first request for an invocation.
	Started time.Time

	proc *proc.Proc
}

// Run starts binary with exactly env (KEY=value entries) plus AWS_LAMBDA_RUNTIME_API,
// which points at a new Server with cfg. Its stdout and stderr — the function's logs —
// are kept for Output. The process dies with the test binary; call Stop when done.
func Run(binary string, env []string, cfg Config) (*Function, error) {
	s, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	f := &Function{Server: s, Started: time.Now()}
	f.proc, err = proc.Start(proc.Spec{Name: "bootstrap", Bin: binary, Dir: filepath.Dir(binary), // LAMBDA_TASK_ROOT
		Env: append(append([]string(nil), env...), "AWS_LAMBDA_RUNTIME_API="+s.Addr())})
	if err != nil {
		s.Close()
		return nil, err
	}
	return f, nil
}

// WaitReady waits for the end of init — the first request for an invocation — and
// returns how long init took. It fails if the process exits first.
func (f *Function) WaitReady(ctx context.Context) (time.Duration, error) {
	select {
	case <-f.Ready():
		return f.FirstNext().Sub(f.Started), nil
	case <-f.proc.Exited():
		return 0, fmt.Errorf("bootstrap exited during init (%v):\n%s", f.proc.Err(), f.Output())
	case <-ctx.Done():
		return 0, fmt.Errorf("bootstrap did not finish init: %w\n%s", ctx.Err(), f.Output())
	}
}

// Invoke is Server.Invoke, failing at once if the process exits.
func (f *Function) Invoke(ctx context.Context, event []byte) (response []byte, errorPayload []byte, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-f.proc.Exited():
			cancel(fmt.Errorf("bootstrap exited (%v)", f.proc.Err()))
		case <-ctx.Done():
		}
	}()
	response, errorPayload, err = f.Server.Invoke(ctx, event)
	if err != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), err) {
		err = fmt.Errorf("%w: %w\n%s", err, context.Cause(ctx), f.Output())
	}
	return response, errorPayload, err
}

// Exited is closed when the process has exited.
func (f *Function) Exited() <-chan struct{} { return f.proc.Exited() }

// Wait waits for the process to exit and returns its exit code.
func (f *Function) Wait(ctx context.Context) (int, error) {
	select {
	case <-f.proc.Exited():
	case <-ctx.Done():
		return -1, fmt.Errorf("bootstrap still running: %w", ctx.Err())
	}
	var exit *exec.ExitError
	if err := f.proc.Err(); err != nil && !errors.As(err, &exit) {
		return -1, err
	}
	return f.proc.ExitCode(), nil
}

// Output is what the process wrote to stdout and stderr so far.
func (f *Function) Output() string { return f.proc.Output() }

// SettledOutput is Output once it has stopped growing: the process writes through a
// pipe, so the last lines of an invocation may land just after its answer.
func (f *Function) SettledOutput() string {
	out := f.Output()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		next := f.Output()
		if next == out {
			break
		}
		out = next
	}
	return out
}

// Stop kills the process, as Lambda does when it retires an execution environment,
// waits for it, and closes the server.
func (f *Function) Stop() {
	f.proc.Kill()
	_ = f.Server.Close()
}

// ProcessEnv is env (sorted) after what every provided.al2023 process gets, for the
// bootstrap bin.
func ProcessEnv(env map[string]string, bin string) []string {
	out := []string{
		"PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin", "LANG=en_US.UTF-8", "TZ=:UTC",
		"_HANDLER=bootstrap", "LAMBDA_TASK_ROOT=" + filepath.Dir(bin), "LAMBDA_RUNTIME_DIR=/var/runtime",
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// LambdaEnv is the environment Lambda gives a function named name, with dummy
// credentials and the SDK endpoints pointed at the emulators. Tests add the function's
// own PARLEY_* variables on top.
func LambdaEnv(name, dynamoDBURL, sqsURL string) map[string]string {
	return map[string]string{
		"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
		"AWS_ENDPOINT_URL_DYNAMODB": dynamoDBURL, "AWS_ENDPOINT_URL_SQS": sqsURL,
		"AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + name,
		"AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/23/[$LATEST]0123456789abcdef0123456789abcdef",
		"AWS_LAMBDA_LOG_FORMAT":      "JSON", "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
	}
}
