package inbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/token"
)

func TestMain(m *testing.M) { emulator.Main(m) }

// emulatedParts are the real adapters on the emulators: DynamoDB Local for the
// records, a FIFO queue in local-aws-sqs for the jobs.
func emulatedParts(t *testing.T) (*dynamo.Store, *sqsfifo.Queue) {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("inbound-%d", time.Now().UnixNano())
	ddb := emulator.DynamoDB(t).DynamoDBClient()
	if err := dynamo.CreateTable(ctx, ddb, name); err != nil {
		t.Fatal(err)
	}
	sq := emulator.SQS(t).SQSClient()
	out, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(name + ".fifo"),
		Attributes: map[string]string{string(types.QueueAttributeNameFifoQueue): "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dynamo.New(ddb, name), sqsfifo.New(sq, aws.ToString(out.QueueUrl), "")
}

// drain receives and deletes every message of a queue.
func drain(t *testing.T, q *sqsfifo.Queue) []events.SQSMessage {
	t.Helper()
	ctx := context.Background()
	var all []events.SQSMessage
	for {
		msgs, err := q.Receive(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
		var receipts []string
		for _, m := range msgs {
			receipts = append(receipts, m.ReceiptHandle)
		}
		if err := q.Ack(ctx, receipts); err != nil {
			t.Fatal(err)
		}
	}
}

// 50 concurrent POSTs of the same message: one conditional put wins, every other
// request is a replay of it, and the queue holds one job, the copies that replays
// send again being dropped by FIFO deduplication.
func TestConcurrentDuplicatesOnTheEmulators(t *testing.T) {
	store, queue := emulatedParts(t)
	const plain = "prly_emulated-test-token"
	h := inbound.New(store, queue, token.NewStatic(plain), inbound.Config{CallTimeout: 10 * time.Second},
		slog.New(slog.NewJSONHandler(io.Discard, nil)))
	const body = `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hello"}`
	req := events.APIGatewayV2HTTPRequest{
		RawPath: "/",
		Headers: map[string]string{"authorization": "Bearer " + plain, "content-type": "application/json"},
		Body:    body,
	}
	req.RequestContext.HTTP.Method = "POST"
	req.RequestContext.HTTP.Path = "/"

	const n = 50
	results := make([]events.APIGatewayV2HTTPResponse, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], _ = h.Handle(context.Background(), req)
		}()
	}
	close(start)
	wg.Wait()

	accepted, replayed := 0, 0
	var createdAt []string
	for i, res := range results {
		if res.StatusCode != 200 {
			t.Errorf("request %d: got %d %s, want 200", i, res.StatusCode, res.Body)
			continue
		}
		if res.Headers["Idempotent-Replayed"] == "true" {
			replayed++
		} else {
			accepted++
		}
		var answer struct {
			Message struct {
				ID        string `json:"id"`
				CreatedAt string `json:"createdAt"`
			} `json:"message"`
		}
		if err := json.Unmarshal([]byte(res.Body), &answer); err != nil {
			t.Fatalf("request %d: body %s: %v", i, res.Body, err)
		}
		if want := message.MessageRef(message.DefaultChannel, "c1", "m1"); answer.Message.ID != want {
			t.Errorf("request %d: message id: got %q, want %q", i, answer.Message.ID, want)
		}
		createdAt = append(createdAt, answer.Message.CreatedAt)
	}
	if accepted != 1 || replayed != n-1 {
		t.Errorf("got %d accepted and %d replayed, want 1 and %d", accepted, replayed, n-1)
	}
	for i, at := range createdAt {
		if at != createdAt[0] {
			t.Errorf("answer %d: createdAt: got %s, want %s as every answer: the one record's", i, at, createdAt[0])
		}
	}

	msgs := drain(t, queue)
	if len(msgs) != 1 {
		t.Fatalf("got %d jobs in the queue, want 1", len(msgs))
	}
	j, err := message.DecodeJob([]byte(msgs[0].Body))
	if err != nil {
		t.Fatal(err)
	}
	if want := message.MessageRef(message.DefaultChannel, "c1", "m1"); j.Kind != message.KindTurn || j.Ref != want || j.Message.Text != "hello" {
		t.Errorf("job: got kind %q ref %q text %q, want a turn %q saying hello", j.Kind, j.Ref, j.Message.Text, want)
	}
	if want := createdAt[0]; j.CreatedAt.UTC().Format(time.RFC3339Nano) != want {
		t.Errorf("job: createdAt: got %s, want the record's %s", j.CreatedAt.UTC().Format(time.RFC3339Nano), want)
	}
	rec, found, _, _, err := store.Load(context.Background(), j.Key, j.CreatedAt)
	if err != nil || !found {
		t.Fatalf("Load: got found %v, err %v; want the record", found, err)
	}
	if rec.RequestHash != j.Message.Hash() {
		t.Errorf("record: hash: got %q, want the message's %q", rec.RequestHash, j.Message.Hash())
	}
}
