package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/proc"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

func TestMain(m *testing.M) { emulator.Main(m) }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// useEmulators points the AWS SDK's default configuration, as the CLI loads it, at
// the emulators.
func useEmulators(t *testing.T, endpoints map[string]string) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	for k, v := range endpoints {
		t.Setenv(k, v)
	}
}

// tableOnDynamoDBLocal creates a fresh table on DynamoDB Local and points the CLI's AWS
// configuration at it: the store on that table, and the environment naming it.
func tableOnDynamoDBLocal(t *testing.T, prefix string) (*dynamo.Store, func(string) string) {
	t.Helper()
	ddb := emulator.DynamoDB(t)
	useEmulators(t, map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": ddb.URL})
	table := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	if err := dynamo.CreateTable(context.Background(), ddb.DynamoDBClient(), table); err != nil {
		t.Fatal(err)
	}
	return dynamo.New(ddb.DynamoDBClient(), table), env(map[string]string{"PARLEY_TABLE_NAME": table})
}

// startLocalStack starts the local stack with vars and closes it after the test: the stack
// and its URL as --local takes it.
func startLocalStack(t *testing.T, vars map[string]string) (*devstack.Stack, string) {
	t.Helper()
	vars["PORT"] = "0"
	cfg, err := devstack.ConfigFromEnv(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	s, err := devstack.Start(cfg, io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, strings.TrimSuffix(s.URL, "/")
}

func TestEndpointCheck(t *testing.T) {
	var mu sync.Mutex
	var body string
	var headers http.Header
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		body, headers = string(b), r.Header.Clone()
		w.WriteHeader(status)
		mu.Unlock()
	}))
	defer srv.Close()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var out bytes.Buffer
	if err := run(context.Background(), []string{"endpoint", "check", "--url", srv.URL, "--secret", secret}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("check of a 200 endpoint: %v", err)
	}
	if body != `{"type":"test","payload":"test"}` || !strings.Contains(out.String(), "HTTP 200") {
		t.Errorf("probe body %q, output %q", body, out.String())
	}
	keys, _ := webhook.ParseSecrets(secret)
	if err := webhook.Verify(keys, headers, []byte(body), time.Minute, time.Now()); err != nil {
		t.Errorf("probe signature: %v", err)
	}

	status = 404
	err := run(context.Background(), []string{"endpoint", "check"}, env(map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": srv.URL}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "http 404") || !strings.Contains(err.Error(), "retried") {
		t.Errorf("check of a 404 endpoint = %v, want a failure naming the status", err)
	}
	status = 410
	err = run(context.Background(), []string{"endpoint", "check", "--url", srv.URL}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "disable") {
		t.Errorf("check of a 410 endpoint = %v, want a warning that it would be disabled", err)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + addr
	if err := run(context.Background(), []string{"endpoint", "check", "--url", closed, "--timeout", "1s"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "retried") {
		t.Errorf("check of a closed port = %v, want not reachable", err)
	}
}

// token create/list/revoke against DynamoDB Local through the CLI's own AWS
// configuration; the created token then authenticates, and stops once revoked.
func TestTokenCommandsAgainstDynamoDBLocal(t *testing.T) {
	store, e := tableOnDynamoDBLocal(t, "cli")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "create", "--name", "backend"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	plain := strings.Fields(out.String())[0]
	if !strings.HasPrefix(plain, token.Prefix) {
		t.Fatalf("create printed %q, want the token first", out.String())
	}
	auth := token.NewTable(store, time.Millisecond)
	if _, err := auth.Authenticate(context.Background(), plain); err != nil {
		t.Fatalf("the created token does not authenticate: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"token", "list"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	id := token.Hash(plain)[:12]
	if !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "backend") || strings.Contains(out.String(), plain) {
		t.Errorf("list printed %q: want the id and name, never the token", out.String())
	}
	if err := run(context.Background(), []string{"token", "revoke", id}, e, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := auth.Authenticate(context.Background(), plain); message.KindOf(err) != message.Unauthorized {
		t.Errorf("revoked token: %v, want unauthorized", err)
	}
	if err := run(context.Background(), []string{"token", "revoke", id}, e, io.Discard, io.Discard); err == nil {
		t.Error("revoking twice succeeded")
	}
	if err := run(context.Background(), []string{"token", "create"}, e, io.Discard, io.Discard); err == nil {
		t.Error("create without --name succeeded")
	}
}

// A receiver answering 404 puts the message in the local stack's dead letters,
// `parley dlq list --local` shows why, and `dlq redrive --local` delivers it once the
// receiver is fixed.
func TestDLQAgainstTheLocalStack(t *testing.T) {
	var status atomic.Int32
	status.Store(404)
	var delivered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := int(status.Load())
		if s == 200 {
			delivered.Add(1)
		}
		w.WriteHeader(s)
	}))
	defer srv.Close()
	s, local := startLocalStack(t, map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": srv.URL,
		"PARLEY_MAX_ATTEMPTS": "2", "PARLEY_RETRY_MIN_DELAY": "100ms", "PARLEY_RETRY_MAX_DELAY": "200ms"})
	req, _ := http.NewRequest("POST", s.URL, strings.NewReader(`{"userId":"u","messageId":"m-404","conversationId":"c","type":"text","text":"hi"}`))
	req.Header.Set("Authorization", "bearer dev-token")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("POST: %v %v", res, err)
	}
	waitUntil(t, func() bool { _, _, dead := s.Queue.Stats(); return dead == 1 })

	var out bytes.Buffer
	if err := run(context.Background(), []string{"dlq", "list", "--local", local}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "gave up after 2 attempts: http 404") || !strings.Contains(out.String(), "m-404") || !strings.Contains(out.String(), "1 dead letter") {
		t.Errorf("dlq list printed:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"dlq", "list", "--local", local}, env(map[string]string{"PARLEY_TOKEN": "wrong"}), io.Discard, io.Discard); err == nil {
		t.Error("dlq list with a wrong token succeeded")
	}
	status.Store(200)
	out.Reset()
	// Only what failed in the last hour — this one.
	if err := run(context.Background(), []string{"dlq", "redrive", "--since", "1h", "--local", local}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return delivered.Load() == 1 })
	if _, _, dead := s.Queue.Stats(); dead != 0 || !strings.Contains(out.String(), "redrove 1") {
		t.Errorf("after redrive: %d dead, output %q", dead, out.String())
	}
}

// Against local-aws-sqs: a message that always fails reaches the dead-letter queue
// after exactly PARLEY_MAX_ATTEMPTS attempts, spaced as the policy says; `parley dlq
// list` shows it and `parley dlq redrive` brings it back.
func TestRetryBudgetAndRedriveAgainstLocalSQS(t *testing.T) {
	emu := emulator.SQS(t)
	useEmulators(t, map[string]string{"AWS_ENDPOINT_URL_SQS": emu.URL})
	client := emu.SQSClient()
	ctx := context.Background()
	name := fmt.Sprintf("budget-%d", time.Now().UnixNano())
	dead, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	// The redrive policy is only the backstop; it is set far above the budget here
	// because local-aws-sqs counts visibility changes as receives.
	main, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + ".fifo"), Attributes: map[string]string{
		"FifoQueue": "true", "VisibilityTimeout": "30",
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:` + name + `-dlq.fifo","maxReceiveCount":100}`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	queue := sqsfifo.New(client, aws.ToString(main.QueueUrl), aws.ToString(dead.QueueUrl))

	var mu sync.Mutex
	var times []time.Time
	var fixed atomic.Bool
	var delivered atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fixed.Load() {
			delivered.Add(1)
			w.WriteHeader(200)
			return
		}
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.WriteHeader(503)
	}))
	defer srv.Close()
	policy := delivery.Policy{MinDelay: time.Second, MaxDelay: 3 * time.Second, MaxAttempts: 3}
	sender, _ := webhook.NewSender(webhook.Config{URL: srv.URL, Timeout: time.Second})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := inmem.NewStore()
	ch := &delivery.Channel{ID: message.DefaultChannel, Bot: bot.Echo{}, BotTimeout: time.Second, Sender: sender, SendTimeout: time.Second, Policy: policy}
	h := delivery.New(store, queue, delivery.Single(ch), delivery.Config{}, quiet)
	pollCtx, stop := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		delivery.Poll(pollCtx, queue, h, delivery.PollConfig{Budget: 20 * time.Second}, quiet)
		close(polled)
	}()
	defer func() { stop(); <-polled }()

	in := inbound.New(store, queue, token.NewStatic("t"), inbound.Config{}, quiet)
	res, _ := in.Handle(ctx, events.APIGatewayV2HTTPRequest{RawPath: "/", Headers: map[string]string{"authorization": "bearer t"},
		Body:           `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`,
		RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST"}}})
	if res.StatusCode != 200 {
		t.Fatalf("POST = %d %s", res.StatusCode, res.Body)
	}
	e := env(map[string]string{"PARLEY_QUEUE_URL": aws.ToString(main.QueueUrl), "PARLEY_DEAD_LETTER_QUEUE_URL": aws.ToString(dead.QueueUrl)})
	var out bytes.Buffer
	waitUntil(t, func() bool {
		out.Reset()
		return run(ctx, []string{"dlq", "list"}, e, &out, io.Discard) == nil && strings.Contains(out.String(), "1 dead letter")
	})
	mu.Lock()
	got := append([]time.Time(nil), times...)
	mu.Unlock()
	if len(got) != policy.MaxAttempts {
		t.Fatalf("%d attempts before the dead-letter queue, want exactly %d", len(got), policy.MaxAttempts)
	}
	for i := 1; i < len(got); i++ {
		gap, want := got[i].Sub(got[i-1]), policy.Delay(i)
		t.Logf("attempt %d at +%s (gap %s, policy %s)", i+1, got[i].Sub(got[0]).Round(time.Millisecond), gap.Round(time.Millisecond), want)
		if gap < want || gap > want+1500*time.Millisecond {
			t.Errorf("gap before attempt %d = %s, want %s (+ polling)", i+1, gap, want)
		}
	}
	if !strings.Contains(out.String(), "gave up after 3 attempts: http 503") {
		t.Errorf("dlq list printed:\n%s", out.String())
	}
	fixed.Store(true)
	out.Reset()
	if err := run(ctx, []string{"dlq", "redrive"}, e, &out, io.Discard); err != nil || !strings.Contains(out.String(), "redrove 1") {
		t.Fatalf("redrive: %v %q", err, out.String())
	}
	waitUntil(t, func() bool { return delivered.Load() == 1 })
	out.Reset()
	if err := run(ctx, []string{"dlq", "list"}, e, &out, io.Discard); err != nil || !strings.Contains(out.String(), "0 dead letter") {
		t.Errorf("after redrive: %v\n%s", err, out.String())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
