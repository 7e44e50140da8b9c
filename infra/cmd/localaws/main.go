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
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/proc"
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
	bin, args, dir, err := emulator.DynamoDBCommand(dynamoDBPort)
	if err != nil {
		return err
	}
	// -sharedDb: one database whatever the credentials and region SAM passes on.
	ddb, err := start(ctx, dynamoDBPort, proc.Spec{Name: "DynamoDB Local", Bin: bin, Args: append(args, "-sharedDb"), Dir: dir})
	if err != nil {
		return err
	}
	defer ddb.Kill()
	bin, args, dir, err = emulator.SQSCommand("0.0.0.0", sqsPort)
	if err != nil {
		return err
	}
	sq, err := start(ctx, sqsPort, proc.Spec{Name: "local-aws-sqs", Bin: bin, Args: args, Dir: dir})
	if err != nil {
		return err
	}
	defer sq.Kill()

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
	case <-ddb.Exited():
		return fmt.Errorf("DynamoDB Local exited: %v", ddb.Err())
	case <-sq.Exited():
		return fmt.Errorf("local-aws-sqs exited: %v", sq.Err())
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

// start starts spec, its output on this process's stderr, and waits until port
// answers HTTP.
func start(ctx context.Context, port int, spec proc.Spec) (*proc.Proc, error) {
	// Free first: else another server there would pass for the emulator.
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("port %d: %w (another local-aws, or another server, is running)", port, err)
	}
	l.Close()
	spec.Output = os.Stderr
	p, err := proc.Start(spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.WaitHTTP(ctx, "http://127.0.0.1:"+strconv.Itoa(port)+"/"); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}
