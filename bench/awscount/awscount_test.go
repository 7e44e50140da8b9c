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

	"github.com/parley-chat/parley/bench/awscount"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
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

// The real adapters on the emulators: one conditional PutItem per Accept (a duplicate
// fails its condition), one SendMessage per job sent, one PutItem per exchange, and
// the write units DynamoDB Local reports next to those worked out from the items.
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
	now := time.Now().UTC().Truncate(time.Millisecond)
	in := message.Inbound{UserID: "u1", MessageID: "m1", ConversationID: "c1", Type: "text", Text: "hello", Payload: []byte(`{"text":"hello"}`)}
	turn := message.NewTurn(message.DefaultChannel, in)
	rec := message.Record{Key: turn.Key(), RequestHash: "h", UserRef: turn.UserRef, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, ok, err := store.Accept(ctx, rec, now); err != nil || !ok {
		t.Fatalf("Accept = %v, %v", ok, err)
	}
	if _, ok, err := store.Accept(ctx, rec, now); err != nil || ok {
		t.Fatalf("second Accept = %v, %v; want the existing record", ok, err)
	}
	queue := sqsfifo.New(sq, aws.ToString(q.QueueUrl), "")
	for i := range 3 {
		in := in
		in.MessageID = fmt.Sprintf("m%d", i+1)
		if err := queue.Send(ctx, message.TurnJob(message.NewTurn(message.DefaultChannel, in), now), false); err != nil {
			t.Fatal(err)
		}
	}
	x := message.Answer(turn, now, []message.Reply{{Type: "text", Payload: []byte(`{"text":"hi"}`)}}, now)
	x.Owner, x.ExpiresAt = "sqs-1", now.Add(time.Hour)
	if _, stored, err := store.PutExchange(ctx, x); err != nil || !stored {
		t.Fatalf("PutExchange = %v, %v", stored, err)
	}

	got := c.Counts().Sub(before)
	put := got[awscount.Op{Service: "DynamoDB", Operation: "PutItem"}]
	if put.Calls != 3 || put.Errors["ConditionalCheckFailedException"] != 1 {
		t.Errorf("PutItem %+v, want 3 calls, 1 failed condition", put)
	}
	if put.Time <= 0 {
		t.Errorf("PutItem took %s in all, want the time counted", put.Time)
	}
	if put.WriteUnits < 2 {
		t.Errorf("PutItem: DynamoDB Local reported %g write units, want at least 2 (the record and the exchange)", put.WriteUnits)
	}
	// Two small items written and one refused put billed on the existing record.
	if put.SizedWriteUnits != 3 {
		t.Errorf("PutItem: %g write units worked out from the items, want 3", put.SizedWriteUnits)
	}
	if send := got[awscount.Op{Service: "SQS", Operation: "SendMessage"}]; send.Calls != 3 || send.Failed() != 0 {
		t.Errorf("SendMessage %+v, want 3 calls", send)
	}
	if total := got.Total(nil); total.Calls != 6 {
		t.Errorf("counted:\n%s want 6 calls in all", got)
	}
}

// Item sizes by DynamoDB's rules, worked out by hand.
func TestItemSize(t *testing.T) {
	for _, c := range []struct {
		name string
		item map[string]types.AttributeValue
		want int
	}{
		{"string", map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "abc"}}, 2 + 3},
		{"utf-8", map[string]types.AttributeValue{"é": &types.AttributeValueMemberS{Value: "ü"}}, 2 + 2},
		// 1 byte plus one per two significant digits; zeros at the ends do not count.
		{"number", map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "12345"}}, 1 + 1 + 3},
		{"round number", map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "1700000000"}}, 1 + 1 + 1},
		{"decimal", map[string]types.AttributeValue{"n": &types.AttributeValueMemberN{Value: "-0.0012"}}, 1 + 1 + 1},
		{"bool", map[string]types.AttributeValue{"t": &types.AttributeValueMemberBOOL{Value: true}}, 1 + 1},
		{"map", map[string]types.AttributeValue{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"ab": &types.AttributeValueMemberS{Value: "xyz"}}}}, 1 + 3 + 1 + 2 + 3},
		{"list", map[string]types.AttributeValue{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
			&types.AttributeValueMemberS{Value: "ab"}, &types.AttributeValueMemberNULL{Value: true}}}}, 1 + 3 + (1 + 2) + (1 + 1)},
	} {
		if got := awscount.ItemSize(c.item); got != c.want {
			t.Errorf("%s: ItemSize = %d, want %d", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		size int
		want float64
	}{{0, 1}, {1, 1}, {1024, 1}, {1025, 2}, {4096, 4}} {
		if got := awscount.UnitsFor(c.size); got != c.want {
			t.Errorf("UnitsFor(%d) = %g, want %g", c.size, got, c.want)
		}
	}
}
