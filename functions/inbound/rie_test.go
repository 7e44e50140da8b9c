package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/testkit/proc"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/testkit/runtimeapi"
)

// The official Lambda Runtime Interface Emulator — the Runtime API that AWS ships in
// its container base images — at the pseudo-version the Go module proxy serves (no
// tagged release is served). `go install module@version` builds it without touching
// go.mod.
const (
	riePackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	rieVersion = "v0.0.0-20261030222936-bef5c4ba774d"
	// rieTimeout is AWS_LAMBDA_FUNCTION_TIMEOUT, in whole seconds as the emulator
	// wants it: template.yaml's timeout.
	rieTimeout = "10"
)

// TestBootstrapUnderRIE is the smoke test against AWS's own Runtime API: the real
// bootstrap under aws-lambda-rie, invoked over HTTP as `docker run` of a Lambda image
// would be, with the function's environment pointed at DynamoDB Local and
// local-aws-sqs. TestBootstrap's loopback Runtime API covers the details (every event,
// init errors, deadlines); this one checks that the emulator agrees with it.
func TestBootstrapUnderRIE(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	fnDir, gobin := filepath.Join(dir, "task"), filepath.Join(dir, "bin")
	for _, d := range []string{fnDir, gobin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Both builds run while the emulators start.
	var bin, rie string
	var binErr, rieErr error
	var binTook, rieTook time.Duration
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // if the emulators fail to start
	wg.Go(func() {
		start := time.Now()
		bin, binErr = runtimeapi.Build(ctx, ".", fnDir)
		binTook = time.Since(start)
	})
	wg.Go(func() {
		start := time.Now()
		rie, rieErr = buildRIE(ctx, gobin)
		rieTook = time.Since(start)
	})
	b := newBackend(t)
	wg.Wait()
	if binErr != nil {
		t.Fatal(binErr)
	}
	if rieErr != nil {
		t.Fatalf("the Lambda Runtime Interface Emulator cannot be built here, so the bootstrap cannot be run under it: %v", rieErr)
	}
	t.Logf("built bootstrap in %s, aws-lambda-rie@%s in %s", binTook.Round(time.Millisecond), rieVersion, rieTook.Round(time.Millisecond))

	p := startRIE(ctx, t, rie, bin, b.environment(t))

	answered := map[string]events.APIGatewayV2HTTPResponse{}
	var turns []turn
	ids := map[string]string{} // file -> the request id it was invoked with
	var bootstrapPID int
	for i, file := range []string{"inbound-text.json", "inbound-missing-auth.json"} {
		w, s := expectation(file), loadSample(t, file)
		ids[file] = "rie-" + strconv.Itoa(i) + "-" + rand.Text()[:10]
		start := time.Now()
		res := p.invoke(ctx, t, ids[file], s.raw)
		t.Logf("%s: invocation %d answered in %s", file, i+1, time.Since(start).Round(time.Microsecond))
		answered[file] = res
		if tr, ok := checkAnswer(t, w, s, res, answered); ok {
			turns = append(turns, tr)
		}
		checkRecord(t, b, w, s, turns)

		// One execution environment: the emulator starts the bootstrap on the first
		// invocation and keeps it warm for the next.
		kids := procChildren(p.Pid())
		if len(kids) != 1 || !strings.HasSuffix(procCmdline(kids[0]), "bootstrap") {
			t.Fatalf("after invocation %d the emulator's child processes are %v, want the bootstrap alone", i+1, procDescribe(kids))
		}
		if bootstrapPID == 0 {
			bootstrapPID = kids[0]
			p.runtimes = append(p.runtimes, bootstrapPID)
		} else if kids[0] != bootstrapPID {
			t.Errorf("invocation %d ran in a new bootstrap (pid %d, was %d): the emulator did not keep it warm", i+1, kids[0], bootstrapPID)
		}
	}
	if len(turns) != 1 {
		t.Fatalf("%d messages accepted, want inbound-text.json's", len(turns))
	}
	// Exactly one job, for the accepted message, which the delivery side runs.
	drain(t, b, turns)

	// Nothing of the emulator or the function listens beyond loopback: the invoke API
	// and the Runtime API, each where the test put it.
	got, err := listeners(append([]int{p.Pid()}, p.runtimes...))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{p.apiAddr, p.invokeAddr}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the emulator and the bootstrap listen on %v, want only %v (loopback)", got, want)
	}

	checkRIELogs(t, p.Output, ids, answered)

	// Stopped as a container is: SIGTERM, after which the emulator kills the
	// bootstrap and exits 0. Nothing may be left running.
	start := time.Now()
	if err := p.stop(); err != nil {
		t.Error(err)
	}
	t.Logf("the emulator stopped in %s", time.Since(start).Round(time.Millisecond))
	for _, pid := range append([]int{p.Pid()}, p.runtimes...) {
		if procAlive(pid) {
			t.Errorf("process %d (%s) still running after the emulator stopped", pid, procCmdline(pid))
		}
	}
}

// buildRIE installs aws-lambda-rie into gobin. The module cache is tried first as a
// proxy, so a machine that has downloaded the module once builds it offline; the
// configured GOPROXY only serves a first download. It runs outside the module, so
// go.mod and go.sum are untouched.
func buildRIE(ctx context.Context, gobin string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is not on PATH: %w", err)
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMODCACHE", "GOPROXY").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	vals := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(vals) != 2 || vals[0] == "" {
		return "", fmt.Errorf("go env GOMODCACHE GOPROXY printed %q", out)
	}
	proxy := "file://" + filepath.ToSlash(filepath.Join(vals[0], "cache", "download"))
	if vals[1] != "" {
		proxy += "," + vals[1]
	}
	target := riePackage + "@" + rieVersion
	cmd := exec.CommandContext(ctx, goBin, "install", target)
	cmd.Dir = gobin
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOPROXY="+proxy, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("GOPROXY=%s go install %s: %w\n%s", proxy, target, err, b)
	}
	return filepath.Join(gobin, "aws-lambda-rie"), nil
}

// rieProcess is aws-lambda-rie running one bootstrap.
type rieProcess struct {
	*proc.Proc
	invokeAddr, apiAddr string // host:port of the invoke API and of the Runtime API
	runtimes            []int  // pids of the bootstraps it started, for stop to check
	stopOnce            sync.Once
	stopErr             error
}

// startRIE starts `aws-lambda-rie ./bootstrap` in bin's folder with env (the
// emulator hands its whole environment to the function), both its APIs on free
// loopback ports, and waits until they accept connections. The emulator starts the
// bootstrap itself, on the first invocation.
func startRIE(ctx context.Context, t *testing.T, rie, bin string, env map[string]string) *rieProcess {
	t.Helper()
	p := &rieProcess{}
	// Its defaults are 0.0.0.0:8080 for the invoke API and 127.0.0.1:9001 for the
	// Runtime API: set both.
	var err1, err2 error
	p.invokeAddr, err1 = proc.FreeAddr()
	p.apiAddr, err2 = proc.FreeAddr()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	var err error
	p.Proc, err = proc.Start(proc.Spec{Name: "aws-lambda-rie", Bin: rie, Dir: filepath.Dir(bin),
		Args: []string{"--runtime-interface-emulator-address", p.invokeAddr, "--runtime-api-address", p.apiAddr, "./bootstrap"},
		Env:  append(runtimeapi.ProcessEnv(env, bin), "AWS_LAMBDA_FUNCTION_TIMEOUT="+rieTimeout)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, addr := range []string{p.invokeAddr, p.apiAddr} {
		if err := p.WaitListen(ctx, addr); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// invoke POSTs event to the invoke API with requestID as the Lambda request id, and
// decodes the function's answer. The emulator answers 200 with the function's result
// whatever status that result carries.
func (p *rieProcess) invoke(ctx context.Context, t *testing.T, requestID string, event []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.invokeAddr+"/2015-03-31/functions/function/invocations", bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amzn-RequestId", requestID)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoke %s: %v\n%s", requestID, err, p.Output())
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("invoke %s: read the answer: %v", requestID, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("invoke %s: the emulator answered %s: %s\n%s", requestID, res.Status, body, p.Output())
	}
	var out events.APIGatewayV2HTTPResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("invoke %s: the answer %s is not an HTTP API response (%v):\n%s", requestID, body, err, p.Output())
	}
	return out
}

// stop sends SIGTERM and waits for the emulator to exit 0 and its bootstraps to be
// gone; past 10s it kills them all. It is idempotent.
func (p *rieProcess) stop() error {
	p.stopOnce.Do(func() {
		var errs []error
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited():
			if err := p.Err(); err != nil {
				errs = append(errs, fmt.Errorf("aws-lambda-rie exited with %v on SIGTERM, want 0", err))
			}
		case <-time.After(10 * time.Second):
			errs = append(errs, errors.New("aws-lambda-rie still running 10s after SIGTERM"))
			p.Kill()
		}
		for _, pid := range p.runtimes {
			for i := 0; procAlive(pid) && i < 100; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			if procAlive(pid) {
				errs = append(errs, fmt.Errorf("bootstrap %d still running 5s after the emulator exited", pid))
				// The emulator runs it in its own process group.
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		p.stopErr = errors.Join(errs...)
	})
	return p.stopErr
}

// checkRIELogs: for each invocation the emulator's START, END and REPORT lines and
// the function's one JSON line, with the request id the test gave and the status
// answered; never the token or the message's text.
func checkRIELogs(t *testing.T, output func() string, ids map[string]string, answered map[string]events.APIGatewayV2HTTPResponse) {
	t.Helper()
	// The emulator writes REPORT after the answer, through a pipe.
	out := output()
	for i := 0; strings.Count(out, "REPORT RequestId: ") < len(ids) && i < 40; i++ {
		time.Sleep(50 * time.Millisecond)
		out = output()
	}
	lines := strings.Split(out, "\n")
	for file, id := range ids {
		for _, prefix := range []string{"START RequestId: " + id + " ", "END RequestId: " + id, "REPORT RequestId: " + id + "\t"} {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
				t.Errorf("%s: no line %q from the emulator:\n%s", file, prefix, out)
			}
		}
		n := 0
		for _, l := range lines {
			if !strings.Contains(l, `"requestId":"`+id+`"`) {
				continue
			}
			n++
			var rec struct {
				Level, Message string
				Status         int
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Message != "inbound" || rec.Status != answered[file].StatusCode {
				t.Errorf("%s: log line %s (%v), want JSON with message inbound and status %d", file, l, err, answered[file].StatusCode)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d log lines with request id %s, want 1:\n%s", file, n, id, out)
		}
	}
	for _, secret := range []string{sampleToken, "Hello, Parley!"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q: never tokens or message text", secret)
		}
	}
}

// listeners lists the host:port of every TCP socket in LISTEN state that one of pids
// holds, sorted, from /proc/net/tcp and tcp6.
func listeners(pids []int) ([]string, error) {
	inodes := map[string]bool{}
	for _, pid := range pids {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue // exited
		}
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(table)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(raw), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(l)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			addr, err := procAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", table, err)
			}
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out, nil
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90": the address in 32-bit words of
// host byte order (little-endian here), the port in hex.
func procAddr(s string) (string, error) {
	host, port, ok := strings.Cut(s, ":")
	ip, err := hex.DecodeString(host)
	if !ok || err != nil || len(ip)%4 != 0 {
		return "", fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(ip); i += 4 {
		slices.Reverse(ip[i : i+4])
	}
	n, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return "", fmt.Errorf("bad port in %q", s)
	}
	return net.JoinHostPort(net.IP(ip).String(), strconv.FormatUint(n, 10)), nil
}

// procChildren lists the live processes whose parent is pid.
func procChildren(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, path := range stats {
		state, ppid, ok := procStat(path)
		if ok && ppid == pid && state != "Z" {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// procAlive: pid is a process that has not exited (a zombie has).
func procAlive(pid int) bool {
	state, _, ok := procStat(fmt.Sprintf("/proc/%d/stat", pid))
	return ok && state != "Z"
}

// procStat reads the state and parent of a process from its /proc/<pid>/stat.
func procStat(path string) (state string, ppid int, ok bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

func procCmdline(pid int) string {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimRight(strings.ReplaceAll(string(raw), "\x00", " "), " ")
}

func procDescribe(pids []int) []string {
	var out []string
	for _, pid := range pids {
		out = append(out, fmt.Sprintf("%d %q", pid, procCmdline(pid)))
	}
	return out
}
