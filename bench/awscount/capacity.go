package awscount

import (
	"errors"
	"math"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// askCapacity sets ReturnConsumedCapacity on the DynamoDB inputs the adapters use,
// unless the caller asked for something already.
func askCapacity(params any) {
	set := func(v *types.ReturnConsumedCapacity) {
		if *v == "" {
			*v = types.ReturnConsumedCapacityTotal
		}
	}
	switch in := params.(type) {
	case *dynamodb.PutItemInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.UpdateItemInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.DeleteItemInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.GetItemInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.QueryInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.ScanInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.BatchWriteItemInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.BatchGetItemInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.TransactWriteItemsInput:
		set(&in.ReturnConsumedCapacity)
	case *dynamodb.TransactGetItemsInput:
		set(&in.ReturnConsumedCapacity)
	}
}

// consumedUnits is the capacity a DynamoDB output reports; 0 for anything else.
func consumedUnits(result any) float64 {
	one := func(c *types.ConsumedCapacity) float64 {
		if c == nil || c.CapacityUnits == nil {
			return 0
		}
		return *c.CapacityUnits
	}
	many := func(cs []types.ConsumedCapacity) float64 {
		var n float64
		for i := range cs {
			n += one(&cs[i])
		}
		return n
	}
	switch out := result.(type) {
	case *dynamodb.PutItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.GetItemOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.QueryOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.ScanOutput:
		return one(out.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		return many(out.ConsumedCapacity)
	case *dynamodb.BatchGetItemOutput:
		return many(out.ConsumedCapacity)
	case *dynamodb.TransactWriteItemsOutput:
		return many(out.ConsumedCapacity)
	case *dynamodb.TransactGetItemsOutput:
		return many(out.ConsumedCapacity)
	}
	return 0
}

// sizedWriteUnits works out the write units of a call from the items it carries; see
// Stat.SizedWriteUnits. err is the call's outcome.
func sizedWriteUnits(params any, err error) float64 {
	switch in := params.(type) {
	case *dynamodb.PutItemInput:
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			// Billed on the existing item, at least one unit.
			return UnitsFor(ItemSize(ccf.Item))
		}
		if err != nil {
			return 0
		}
		return UnitsFor(ItemSize(in.Item))
	case *dynamodb.BatchWriteItemInput:
		if err != nil {
			return 0
		}
		var n float64
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				if r.PutRequest != nil {
					n += UnitsFor(ItemSize(r.PutRequest.Item))
				}
			}
		}
		return n
	}
	return 0
}

// UnitsFor is the write capacity units of writing an item of size bytes: one per
// kilobyte begun, at least one.
func UnitsFor(size int) float64 {
	return math.Max(1, math.Ceil(float64(size)/1024))
}

// ItemSize is an item's size as DynamoDB counts it (Developer Guide, "Item sizes and
// formats"): each attribute's name in UTF-8 bytes plus its value — a string's UTF-8
// bytes, a number's 1 byte plus 1 per two significant digits, a binary's bytes, 1 for
// a boolean or null, and 3 bytes plus the elements (and 1 byte each) for a list or map.
func ItemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return numberSize(x.Value)
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range x.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range x.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range x.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize is 1 byte plus 1 per two significant digits; leading and trailing zeros
// do not count.
func numberSize(s string) int {
	mantissa, _, _ := strings.Cut(strings.ToLower(s), "e")
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, mantissa)
	digits = strings.Trim(digits, "0")
	return 1 + (len(digits)+1)/2
}
