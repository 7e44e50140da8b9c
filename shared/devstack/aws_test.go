package devstack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
)

func TestMain(m *testing.M) { emulator.Main(m) }

// The inbound and delivery roles as two stacks on DynamoDB Local and local-aws-sqs,
// as the two Lambdas run in AWS.
func TestSplitRolesOnTheEmulators(t *testing.T) {
	ddb, sq := emulator.DynamoDB(t), emulator.SQS(t)
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_ENDPOINT_URL_DYNAMODB": ddb.URL, "AWS_ENDPOINT_URL_SQS": sq.URL,
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	name := fmt.Sprintf("dev-%d", time.Now().UnixNano())
	if err := dynamo.CreateTable(ctx, ddb.DynamoDBClient(), name); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, q := range []string{name + "-dlq.fifo", name + ".fifo"} {
		out, err := sq.SQSClient().CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(q), Attributes: map[string]string{"FifoQueue": "true"}})
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, aws.ToString(out.QueueUrl))
	}
	got := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	defer receiver.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var stacks []*devstack.Stack
	for _, role := range []string{"inbound", "delivery"} {
		cfg := config(t, map[string]string{
			"PARLEY_DEV_ROLE": role, "PARLEY_TABLE_NAME": name, "PARLEY_QUEUE_URL": urls[1], "PARLEY_DEAD_LETTER_QUEUE_URL": urls[0],
			"PARLEY_RESPONSE_ENDPOINT_URL": receiver.URL,
		})
		s, err := devstack.Start(cfg, io.Discard, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		stacks = append(stacks, s)
	}
	if stacks[1].URL != "" {
		t.Errorf("the delivery role listens on %s, want no API", stacks[1].URL)
	}
	res := send(t, stacks[0].URL, "dev-token", `{"userId":"u","messageId":"split-1","conversationId":"c","type":"text","text":"over SQS"}`)
	if res.StatusCode != 200 {
		t.Fatalf("POST = %d", res.StatusCode)
	}
	select {
	case body := <-got:
		if want := `"payload":{"text":"over SQS"}`; !strings.Contains(body, want) {
			t.Errorf("receiver got %s, want %s", body, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("nothing delivered through SQS within 15s")
	}
	if res := send(t, stacks[0].URL, "dev-token", `{"userId":"u","messageId":"split-1","conversationId":"c","type":"text","text":"over SQS"}`); res.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay through DynamoDB: %d %v", res.StatusCode, res.Header)
	}
}

func TestRoleNeedsTheAWSBackend(t *testing.T) {
	_, err := devstack.ConfigFromEnv(func(k string) string { return map[string]string{"PARLEY_DEV_ROLE": "delivery"}[k] })
	if err == nil {
		t.Error("the delivery role on the embedded parts was accepted")
	}
}
