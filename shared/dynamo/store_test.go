package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/storetest"
)

func TestMain(m *testing.M) { emulator.Main(m) }

var tables atomic.Int64

// newTable creates a fresh table with the deployed schema in DynamoDB Local.
func newTable(t *testing.T) *dynamo.Store {
	t.Helper()
	client := emulator.DynamoDB(t).DynamoDBClient()
	name := fmt.Sprintf("parley-test-%d", tables.Add(1))
	if err := dynamo.CreateTable(context.Background(), client, name); err != nil {
		t.Fatal(err)
	}
	return dynamo.New(client, name)
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return newTable(t) })
}

// Every item Parley writes besides tokens carries the TTL attribute, so nothing stays forever.
func TestItemsCarryTheTTLAttribute(t *testing.T) {
	ctx := context.Background()
	client := emulator.DynamoDB(t).DynamoDBClient()
	name := fmt.Sprintf("parley-ttl-%d", tables.Add(1))
	if err := dynamo.CreateTable(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	s := dynamo.New(client, name)
	now := time.Now()
	if err := s.AppendHistory(ctx, "conv_x", []message.Entry{{ID: "msg_1", Direction: message.Incoming, Type: "text", Payload: []byte(`{"text":"hi"}`), CreatedAt: now}}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Failed(ctx, "sqs-1", now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(ctx, message.Record{Key: "msg_k", Status: message.InProgress, LeaseID: "l", LeaseUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: &name})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 3 {
		t.Fatalf("%d items, want 3", len(out.Items))
	}
	for _, item := range out.Items {
		exp, ok := item["expiresAt"].(*types.AttributeValueMemberN)
		if !ok {
			t.Errorf("item %v has no numeric expiresAt", item["pk"])
			continue
		}
		if n, _ := strconv.ParseInt(exp.Value, 10, 64); n <= now.Unix() || n > now.Add(16*24*time.Hour).Unix() {
			t.Errorf("item %v expires at %s", item["pk"], time.Unix(n, 0))
		}
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &name})
	if err != nil || ttl.TimeToLiveDescription == nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expiresAt" {
		t.Errorf("TTL = %+v, %v; want on expiresAt", ttl, err)
	}
}

// stripOld hides the old item from conditional-check failures, as some emulators and
// older DynamoDB Local versions do, and counts the reads that follow.
type stripOld struct {
	*dynamodb.Client
	gets atomic.Int32
}

func (s *stripOld) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := s.Client.PutItem(ctx, in, opts...)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		ccf.Item = nil
	}
	return out, err
}

func (s *stripOld) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if aws.ToBool(in.ConsistentRead) {
		s.gets.Add(1)
	}
	return s.Client.GetItem(ctx, in, opts...)
}

func TestDuplicateWithoutOldItemFallsBackToAConsistentRead(t *testing.T) {
	ctx := context.Background()
	client := emulator.DynamoDB(t).DynamoDBClient()
	name := fmt.Sprintf("parley-fallback-%d", tables.Add(1))
	if err := dynamo.CreateTable(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec := message.Record{Key: "msg_f", Status: message.InProgress, RequestHash: "h1", LeaseID: "l1", LeaseUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}

	full := dynamo.New(client, name)
	if _, acquired, err := full.Acquire(ctx, rec, now); err != nil || !acquired {
		t.Fatal(acquired, err)
	}
	stripped := &stripOld{Client: client}
	rec.LeaseID = "l2"
	existing, acquired, err := dynamo.New(stripped, name).Acquire(ctx, rec, now)
	if err != nil || acquired || existing.LeaseID != "l1" || existing.RequestHash != "h1" {
		t.Fatalf("Acquire = %+v, %v, %v; want the first record", existing, acquired, err)
	}
	if stripped.gets.Load() != 1 {
		t.Errorf("%d consistent reads, want 1", stripped.gets.Load())
	}
	// With the old item in the failure, no read is needed: DynamoDB Local returns it.
	counting := &stripOld{Client: client}
	if _, _, err := dynamo.New(countingOnly{counting}, name).Acquire(ctx, rec, now); err != nil {
		t.Fatal(err)
	}
	if counting.gets.Load() != 0 {
		t.Errorf("%d reads when the failure carried the old item, want 0", counting.gets.Load())
	}
}

// countingOnly counts reads but leaves the failures as they are.
type countingOnly struct{ *stripOld }

func (c countingOnly) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return c.Client.PutItem(ctx, in, opts...)
}
