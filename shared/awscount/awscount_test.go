package awscount_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/awscount"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopAll()
	os.Exit(code)
}

// A call the SDK retries is one call and two attempts; a call that fails in the end
// is counted under its error code.
func TestCallsAttemptsAndErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch n.Add(1) {
		case 1:
			w.WriteHeader(500)
			fmt.Fprint(w, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"try again"}`)
		case 2:
			fmt.Fprint(w, `{}`)
		default:
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}`)
		}
	}))
	defer srv.Close()
	c := awscount.New()
	client := dynamodb.NewFromConfig(emulator.Config(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.APIOptions = append(o.APIOptions, c.Middleware)
	})
	ctx := context.Background()
	key := dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}}}
	if _, err := client.GetItem(ctx, &key); err != nil {
		t.Fatalf("GetItem after one retry: %v", err)
	}
	if _, err := client.GetItem(ctx, &key); err == nil {
		t.Fatal("GetItem of a missing table succeeded")
	}
	got := c.Counts()[awscount.Op{Service: "DynamoDB", Operation: "GetItem"}]
	if got.Calls != 2 || got.Attempts != 3 || got.Errors["ResourceNotFoundException"] != 1 || got.Failed() != 1 {
		t.Errorf("GetItem counted %+v, want 2 calls, 3 attempts, 1 ResourceNotFoundException", got)
	}
	if len(c.Counts()) != 1 {
		t.Errorf("counted %v, want only GetItem", c.Counts())
	}
	c.Reset()
	if len(c.Counts()) != 0 {
		t.Errorf("after Reset: %v", c.Counts())
	}
}

// The real adapters on the emulators: one conditional PutItem per Acquire (a duplicate
// fails its condition), one SendMessageBatch per Send of up to 10, and the write
// units DynamoDB Local reports.
func TestRealAdaptersOnTheEmulators(t *testing.T) {
	ddbEmu, sqsEmu := emulator.DynamoDB(t), emulator.SQS(t)
	c := awscount.New().TrackCapacity()
	cfg := emulator.Config()
	cfg.APIOptions = append(cfg.APIOptions, c.Middleware)
	ddb := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ddbEmu.URL) })
	sq := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(sqsEmu.URL) })
	ctx := context.Background()
	name := fmt.Sprintf("awscount-%d", time.Now().UnixNano())
	if err := dynamo.CreateTable(ctx, ddb, name); err != nil {
		t.Fatal(err)
	}
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + ".fifo"), Attributes: map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"}})
	if err != nil {
		t.Fatal(err)
	}
	before := c.Counts()

	store := dynamo.New(ddb, name)
	now := time.Now()
	rec := message.Record{Key: "k1", Status: message.InProgress, RequestHash: "h", LeaseID: "l", LeaseUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}
	if _, ok, err := store.Acquire(ctx, rec, now); err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	if _, ok, err := store.Acquire(ctx, rec, now); err != nil || ok {
		t.Fatalf("second Acquire = %v, %v; want the existing record", ok, err)
	}
	queue := sqsfifo.New(sq, aws.ToString(q.QueueUrl), "")
	var msgs []message.Delivery
	for i := range 12 {
		msgs = append(msgs, message.Delivery{ID: fmt.Sprintf("d%d", i), GroupID: "g", Index: i + 1, Count: 12, Body: []byte(`{"type":"text"}`)})
	}
	if err := queue.Send(ctx, msgs); err != nil {
		t.Fatal(err)
	}

	got := c.Counts().Sub(before)
	put := got[awscount.Op{Service: "DynamoDB", Operation: "PutItem"}]
	if put.Calls != 2 || put.Errors["ConditionalCheckFailedException"] != 1 {
		t.Errorf("PutItem %+v, want 2 calls, 1 failed condition", put)
	}
	if put.Time <= 0 {
		t.Errorf("PutItem took %s in all, want the time counted", put.Time)
	}
	if put.WriteUnits < 1 {
		t.Errorf("PutItem consumed %g write units, want at least 1 reported", put.WriteUnits)
	}
	if send := got[awscount.Op{Service: "SQS", Operation: "SendMessageBatch"}]; send.Calls != 2 || send.Failed() != 0 {
		t.Errorf("SendMessageBatch %+v, want 2 calls for 12 messages", send)
	}
	if total := got.Total(nil); total.Calls != 4 {
		t.Errorf("counted:\n%s want 4 calls in all", got)
	}
}
