package dynamo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/bench/awscount"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
)

// The happy path of a text message with one reply writes two items, the record and
// the exchange, and each fits in one write unit (1 KB): what the cost estimates
// assume. DynamoDB Local reports the units it charges; the sizes are also worked out
// with DynamoDB's documented rules, so a report of the wrong units cannot hide a
// growing item.
func TestHappyPathWritesOneUnitPerItem(t *testing.T) {
	ctx := context.Background()
	counter := awscount.New().TrackCapacity()
	client := dynamodb.NewFromConfig(emulator.Config(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(emulator.DynamoDB(t).URL)
		o.APIOptions = append(o.APIOptions, counter.Middleware)
	})
	name := newTable(t, client)
	s := dynamo.New(client, name)
	now := time.Now()
	rec, x := hello(now)
	putItem := awscount.Op{Service: "DynamoDB", Operation: "PutItem"}

	counter.Reset()
	if _, accepted, err := s.Accept(ctx, rec, now); err != nil || !accepted {
		t.Fatalf("Accept: got accepted %v, err %v", accepted, err)
	}
	checkOneWrite(t, "Accept", counter.Counts(), putItem)

	counter.Reset()
	if _, stored, err := s.PutExchange(ctx, x); err != nil || !stored {
		t.Fatalf("PutExchange: got stored %v, err %v", stored, err)
	}
	checkOneWrite(t, "PutExchange", counter.Counts(), putItem)

	pk := &types.AttributeValueMemberS{Value: "c#" + rec.Channel + "#" + rec.ConversationRef}
	for _, c := range []struct {
		what string
		sk   string
	}{
		{"record", "m#" + rec.Ref},
		{"exchange", sk(x.CreatedAt, x.Ref)},
	} {
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &name, ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": pk, "sk": &types.AttributeValueMemberS{Value: c.sk}}})
		if err != nil || len(out.Item) == 0 {
			t.Fatalf("get %s: got %d attributes, err %v", c.what, len(out.Item), err)
		}
		size := itemSize(t, out.Item)
		t.Logf("%s item: %d bytes, %d attributes", c.what, size, len(out.Item))
		if size > 1024 {
			t.Errorf("%s item: got %d bytes, want at most 1024 (one write unit)", c.what, size)
		}
	}
}

// checkOneWrite checks that exactly one PutItem ran and consumed exactly one unit.
func checkOneWrite(t *testing.T, what string, counts awscount.Counts, op awscount.Op) {
	t.Helper()
	got := counts[op]
	if total := counts.Total(nil); total.Calls != 1 || got.Calls != 1 || got.Failed() != 0 {
		t.Errorf("%s: got calls\n%s want one PutItem", what, counts)
	}
	if got.WriteUnits != 1.0 {
		t.Errorf("%s: got %g write units, want 1", what, got.WriteUnits)
	}
}

// itemSize is an item's size as DynamoDB bills it: each attribute's name and value in
// bytes; a number is a byte per two significant digits, plus one.
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
func itemSize(t *testing.T, item map[string]types.AttributeValue) int {
	t.Helper()
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			digits := strings.Trim(strings.NewReplacer("-", "", ".", "").Replace(v.Value), "0")
			n += (len(digits)+1)/2 + 1
		case *types.AttributeValueMemberBOOL:
			n++
		default:
			t.Fatalf("attribute %s: no size rule for %T", name, v)
		}
	}
	return n
}
