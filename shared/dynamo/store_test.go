package dynamo_test

import (
	"context"
	"encoding/json"
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
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/storetest"
)

func TestMain(m *testing.M) { emulator.Main(m) }

var tables atomic.Int64

// newTable creates a fresh table with the deployed schema in DynamoDB Local and
// returns its name.
func newTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	name := fmt.Sprintf("parley-test-%d", tables.Add(1))
	if err := dynamo.CreateTable(context.Background(), client, name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		client := emulator.DynamoDB(t).DynamoDBClient()
		return dynamo.New(client, newTable(t, client))
	})
}

// hello is a text message with realistic ids, its record as the inbound side writes
// it, and its exchange as the delivery side writes it after an echo bot answered.
func hello(now time.Time) (message.Record, message.Exchange) {
	in := message.Inbound{
		UserID: "2f1c7a52-9d7e-4c1b-8f0a-6c3e5b9d1a27", MessageID: "b8e4d0f6-3a1c-4e29-9b57-0d2f8a6c4e13",
		ConversationID: "7d9a3e21-5c4b-4f8e-a1d6-3b0c9e2f7a58", Type: "text", Text: "hello", Payload: json.RawMessage(`{"text":"hello"}`),
	}
	turn := message.NewTurn(message.DefaultChannel, in)
	created := now.UTC().Truncate(time.Millisecond)
	rec := message.Record{Key: turn.Key(), RequestHash: in.Hash(), UserRef: turn.UserRef, CreatedAt: created, ExpiresAt: created.Add(15 * 24 * time.Hour)}
	x := message.Answer(turn, created, []message.Reply{{Type: in.Type, Payload: in.Payload}}, created.Add(850*time.Millisecond))
	x.Owner, x.ExpiresAt = "0d5a8c3e-7f21-4b96-9e4d-1a6c2f8b3e70", created.Add(30*24*time.Hour)
	return rec, x
}

// Every record and exchange carries the TTL attribute, the expiry it was given, and
// keeps it through the updates of a failing delivery.
func TestItemsCarryTheTTLAttribute(t *testing.T) {
	ctx := context.Background()
	client := emulator.DynamoDB(t).DynamoDBClient()
	name := newTable(t, client)
	s := dynamo.New(client, name)
	now := time.Now()
	rec, x := hello(now)
	if _, accepted, err := s.Accept(ctx, rec, now); err != nil || !accepted {
		t.Fatalf("Accept: got accepted %v, err %v", accepted, err)
	}
	if _, stored, err := s.PutExchange(ctx, x); err != nil || !stored {
		t.Fatalf("PutExchange: got stored %v, err %v", stored, err)
	}
	if _, err := s.Failed(ctx, rec.Key, 0, 0, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Progress(ctx, rec.Key, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.TakeOver(ctx, rec.Key, rec.CreatedAt, "sqs-2"); err != nil {
		t.Fatal(err)
	}
	grave := message.Exchange{Key: message.Key{Channel: "other", ConversationRef: "conv_x", Ref: "msg_y"}, CreatedAt: rec.CreatedAt,
		Tombstone: true, ExpiresAt: rec.CreatedAt.Add(20 * 24 * time.Hour)}
	if _, stored, err := s.PutExchange(ctx, grave); err != nil || !stored {
		t.Fatalf("PutExchange of a tombstone: got stored %v, err %v", stored, err)
	}

	out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: &name, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{
		"m#" + rec.Ref:                 rec.ExpiresAt,
		sk(x.CreatedAt, x.Ref):         x.ExpiresAt,
		sk(grave.CreatedAt, grave.Ref): grave.ExpiresAt,
	}
	if len(out.Items) != len(want) {
		t.Fatalf("got %d items, want %d", len(out.Items), len(want))
	}
	for _, item := range out.Items {
		key := item["sk"].(*types.AttributeValueMemberS).Value
		exp, ok := item["expiresAt"].(*types.AttributeValueMemberN)
		if !ok {
			t.Errorf("item %s: got no numeric expiresAt, want one", key)
			continue
		}
		if got, _ := strconv.ParseInt(exp.Value, 10, 64); got != want[key].Unix() {
			t.Errorf("item %s: expiresAt: got %d, want %d", key, got, want[key].Unix())
		}
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &name})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "expiresAt" || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
		t.Errorf("TTL: got %+v, want enabled on expiresAt", d)
	}
}

func sk(createdAt time.Time, ref string) string {
	return fmt.Sprintf("h#%013d#%s", createdAt.UnixMilli(), ref)
}

// oldItemClient counts the consistent reads a store makes and, when strip is set,
// hides the old item from conditional-check failures, as some emulators and older
// DynamoDB Local versions do.
type oldItemClient struct {
	*dynamodb.Client
	strip bool
	reads atomic.Int32
}

func (c *oldItemClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.Client.PutItem(ctx, in, opts...)
	var ccf *types.ConditionalCheckFailedException
	if c.strip && errors.As(err, &ccf) {
		ccf.Item = nil
	}
	return out, err
}

func (c *oldItemClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if aws.ToBool(in.ConsistentRead) {
		c.reads.Add(1)
	}
	return c.Client.GetItem(ctx, in, opts...)
}

// A refused conditional put answers with the item it found, which DynamoDB returns in
// the failure; without it the store reads the item, strongly consistent.
func TestRefusedPutWithoutTheOldItemFallsBackToAConsistentRead(t *testing.T) {
	ctx := context.Background()
	client := emulator.DynamoDB(t).DynamoDBClient()
	for _, c := range []struct {
		strip     bool
		wantReads int32
	}{
		{strip: false, wantReads: 0},
		{strip: true, wantReads: 1},
	} {
		t.Run(fmt.Sprintf("strip %v", c.strip), func(t *testing.T) {
			name := newTable(t, client)
			now := time.Now()
			rec, x := hello(now)
			full := dynamo.New(client, name)
			if _, accepted, err := full.Accept(ctx, rec, now); err != nil || !accepted {
				t.Fatalf("first Accept: got accepted %v, err %v", accepted, err)
			}
			if _, stored, err := full.PutExchange(ctx, x); err != nil || !stored {
				t.Fatalf("first PutExchange: got stored %v, err %v", stored, err)
			}
			wrapped := &oldItemClient{Client: client, strip: c.strip}
			s := dynamo.New(wrapped, name)

			again := rec
			again.RequestHash, again.CreatedAt = "another-hash", rec.CreatedAt.Add(time.Second)
			existing, accepted, err := s.Accept(ctx, again, now)
			if err != nil || accepted {
				t.Fatalf("second Accept: got accepted %v, err %v; want the first record", accepted, err)
			}
			if existing.RequestHash != rec.RequestHash || !existing.CreatedAt.Equal(rec.CreatedAt) || existing.UserRef != rec.UserRef {
				t.Errorf("second Accept: got %+v, want %+v", existing, rec)
			}
			if got := wrapped.reads.Swap(0); got != c.wantReads {
				t.Errorf("Accept: got %d consistent reads, want %d", got, c.wantReads)
			}

			other := x
			other.Owner, other.Entries = "sqs-other", other.Entries[:1]
			got, stored, err := s.PutExchange(ctx, other)
			if err != nil || stored {
				t.Fatalf("second PutExchange: got stored %v, err %v; want the first exchange", stored, err)
			}
			if got.Owner != x.Owner || len(got.Entries) != len(x.Entries) || got.Entries[1].ID != x.Entries[1].ID {
				t.Errorf("second PutExchange: got owner %q and %d entries, want %q and %d", got.Owner, len(got.Entries), x.Owner, len(x.Entries))
			}
			if got := wrapped.reads.Load(); got != c.wantReads {
				t.Errorf("PutExchange: got %d consistent reads, want %d", got, c.wantReads)
			}
		})
	}
}
