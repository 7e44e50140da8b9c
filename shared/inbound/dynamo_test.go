package inbound

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
)

func TestMain(m *testing.M) { emulator.Main(m) }

// The real parts: DynamoDB Local for the records, local-aws-sqs for the queue.
func realParts(t *testing.T, name string) (*dynamo.Store, *sqsfifo.Queue) {
	t.Helper()
	ctx := context.Background()
	ddb := emulator.DynamoDB(t).DynamoDBClient()
	table := fmt.Sprintf("inbound-%s-%d", name, time.Now().UnixNano())
	if err := dynamo.CreateTable(ctx, ddb, table); err != nil {
		t.Fatal(err)
	}
	sq := emulator.SQS(t).SQSClient()
	out, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(table + ".fifo"),
		Attributes: map[string]string{string(types.QueueAttributeNameFifoQueue): "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return dynamo.New(ddb, table), sqsfifo.New(sq, aws.ToString(out.QueueUrl), "")
}

// 50 concurrent posts of the same message: one bot run, one enqueue, and every other
// request a replay or a 409 to retry.
func TestConcurrentDuplicatesAgainstDynamoDBLocal(t *testing.T) {
	store, queue := realParts(t, "storm")
	b := &countingBot{delay: 100 * time.Millisecond}
	h := New(store, queue, b, token.NewStatic(testToken), Config{BotTimeout: 5 * time.Second}, slog.New(slog.NewJSONHandler(io.Discard, nil)))

	const n = 50
	type result struct {
		status   int
		replayed bool
		code     string
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, _ := h.Handle(context.Background(), post(hello))
			results[i] = result{res.StatusCode, res.Headers["Idempotent-Replayed"] == "true", errorCode(res.Body)}
		}()
	}
	close(start)
	wg.Wait()

	fresh, replays, busy := 0, 0, 0
	for _, r := range results {
		switch {
		case r.status == 200 && !r.replayed:
			fresh++
		case r.status == 200:
			replays++
		case r.status == 409 && r.code == "in_progress":
			busy++
		default:
			t.Errorf("unexpected answer %+v", r)
		}
	}
	t.Logf("%d accepted, %d replayed, %d told to retry", fresh, replays, busy)
	if fresh != 1 || replays+busy != n-1 {
		t.Errorf("accepted %d, replayed %d, in progress %d; want 1 and %d others", fresh, replays, busy, n-1)
	}
	if got := b.turns.Load(); got != 1 {
		t.Errorf("bot ran %d times, want 1", got)
	}
	var queued int
	for {
		msgs, err := queue.Receive(context.Background(), 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			queued++
			_ = queue.Delete(context.Background(), m.ReceiptHandle)
		}
	}
	if queued != 1 {
		t.Errorf("%d messages enqueued, want 1", queued)
	}
}

// A crash after the enqueue, then a retry after the lease: SQS drops the re-enqueued
// copies, so exactly one set is queued.
func TestCrashRecoveryAgainstTheEmulators(t *testing.T) {
	store, queue := realParts(t, "crash")
	b := &countingBot{replies: 3}
	h := New(store, queue, b, token.NewStatic(testToken), Config{BotTimeout: time.Second, Lease: time.Second}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	h.crash = func(step string) error {
		if step == "enqueued" {
			return fmt.Errorf("crash")
		}
		return nil
	}
	if res, _ := h.Handle(context.Background(), post(hello)); res.StatusCode != 503 {
		t.Fatalf("crashed request = %d", res.StatusCode)
	}
	h.crash = nil
	time.Sleep(1100 * time.Millisecond) // let the lease run out
	if res, _ := h.Handle(context.Background(), post(hello)); res.StatusCode != 200 {
		t.Fatalf("retry = %d %s", res.StatusCode, res.Body)
	}
	if b.turns.Load() != 2 {
		t.Errorf("bot ran %d times, want 2 (the crashed turn and its redo)", b.turns.Load())
	}
	var ids []string
	for {
		msgs, err := queue.Receive(context.Background(), 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			ids = append(ids, m.Attributes["MessageDeduplicationId"])
			_ = queue.Delete(context.Background(), m.ReceiptHandle)
		}
	}
	if len(ids) != 3 {
		t.Errorf("queued %v, want exactly one set of 3", ids)
	}
}

func errorCode(body string) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = jsonUnmarshal(body, &e)
	return e.Error.Code
}
