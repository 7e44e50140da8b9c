// Package dynamo is the DynamoDB adapter: idempotency records with conditional writes
// and API token hashes, in one table keyed by pk and sk, with TTL on expiresAt.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// Client is the part of the DynamoDB API the store uses.
type Client interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Attribute names. The table's keys are pk and sk (both strings); TTL is on expiresAt.
const (
	attrPK         = "pk"
	attrSK         = "sk"
	attrStatus     = "status"
	attrHash       = "requestHash"
	attrLeaseID    = "leaseId"
	attrLeaseUntil = "leaseUntil" // Unix milliseconds
	attrExpiresAt  = "expiresAt"  // Unix seconds: the TTL attribute
	attrResponse   = "response"
	attrName       = "name"
	attrCreatedAt  = "createdAt"

	attrAttempts = "attempts"

	recordSK   = "idempotency"
	tokenPK    = "token"
	attemptsSK = "attempts"
	// Attempt counts outlive the queue's 14-day retention.
	attemptsTTL = 15 * 24 * time.Hour
)

// Store is the DynamoDB store.
type Store struct {
	client Client
	table  string
}

// New returns a Store on table.
func New(client Client, table string) *Store { return &Store{client: client, table: table} }

func recordKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(key), attrSK: str(recordSK)}
}

// Acquire implements inbound.Records with one conditional PutItem. The condition is
// Powertools': no record, or an expired one (TTL deletes lazily, up to days late), or
// an in-progress one whose lease ran out.
func (s *Store) Acquire(ctx context.Context, rec message.Record, now time.Time) (message.Record, bool, error) {
	item := recordKey(rec.Key)
	item[attrStatus] = str(string(rec.Status))
	item[attrHash] = str(rec.RequestHash)
	item[attrLeaseID] = str(rec.LeaseID)
	item[attrLeaseUntil] = num(rec.LeaseUntil.UnixMilli())
	item[attrExpiresAt] = num(rec.ExpiresAt.Unix())
	// A record deleted between our failed put and the read that follows is gone; the
	// put is tried again, a few times at most.
	for range 3 {
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           &s.table,
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(pk) OR #exp < :now OR (#status = :inprogress AND #lease < :nowMs)"),
			ExpressionAttributeNames: map[string]string{
				"#exp": attrExpiresAt, "#status": attrStatus, "#lease": attrLeaseUntil,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":now": num(now.Unix()), ":nowMs": num(now.UnixMilli()), ":inprogress": str(string(message.InProgress)),
			},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			return message.Record{}, true, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return message.Record{}, false, fmt.Errorf("put record %s: %w", rec.Key, err)
		}
		if len(ccf.Item) > 0 {
			return decodeRecord(rec.Key, ccf.Item)
		}
		// Some emulators (and older DynamoDB Local) leave Item empty: read it.
		old, found, err := s.Record(ctx, rec.Key)
		if err != nil {
			return message.Record{}, false, err
		}
		if found {
			return old, false, nil
		}
	}
	return message.Record{}, false, fmt.Errorf("put record %s: the record kept changing", rec.Key)
}

// Complete implements inbound.Records.
func (s *Store) Complete(ctx context.Context, key, leaseID string, response []byte, expiresAt time.Time) error {
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      recordKey(key),
		UpdateExpression:         aws.String("SET #status = :completed, #resp = :resp, #exp = :exp REMOVE #leaseId, #lease"),
		ConditionExpression:      aws.String("#leaseId = :lease AND #status = :inprogress"),
		ExpressionAttributeNames: map[string]string{"#status": attrStatus, "#resp": attrResponse, "#exp": attrExpiresAt, "#leaseId": attrLeaseID, "#lease": attrLeaseUntil},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":completed": str(string(message.Completed)), ":resp": str(string(response)), ":exp": num(expiresAt.Unix()),
			":lease": str(leaseID), ":inprogress": str(string(message.InProgress)),
		},
	})
	return leaseErr("complete record "+key, err)
}

// Release implements inbound.Records.
func (s *Store) Release(ctx context.Context, key, leaseID string) error {
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       recordKey(key),
		ConditionExpression:       aws.String("#leaseId = :lease AND #status = :inprogress"),
		ExpressionAttributeNames:  map[string]string{"#status": attrStatus, "#leaseId": attrLeaseID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":lease": str(leaseID), ":inprogress": str(string(message.InProgress))},
	})
	return leaseErr("release record "+key, err)
}

// Record reads a record with a strongly consistent read.
func (s *Store) Record(ctx context.Context, key string) (message.Record, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: recordKey(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return message.Record{}, false, fmt.Errorf("get record %s: %w", key, err)
	}
	if len(out.Item) == 0 {
		return message.Record{}, false, nil
	}
	r, _, err := decodeRecord(key, out.Item)
	return r, err == nil, err
}

func leaseErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return message.ErrLeaseLost
	}
	return fmt.Errorf("%s: %w", op, err)
}

func decodeRecord(key string, item map[string]types.AttributeValue) (message.Record, bool, error) {
	r := message.Record{
		Key:         key,
		Status:      message.Status(getStr(item, attrStatus)),
		RequestHash: getStr(item, attrHash),
		LeaseID:     getStr(item, attrLeaseID),
		Response:    []byte(getStr(item, attrResponse)),
	}
	if ms, ok := getNum(item, attrLeaseUntil); ok {
		r.LeaseUntil = time.UnixMilli(ms)
	}
	if s, ok := getNum(item, attrExpiresAt); ok {
		r.ExpiresAt = time.Unix(s, 0)
	}
	if r.Status != message.InProgress && r.Status != message.Completed {
		return r, false, fmt.Errorf("record %s: unknown status %q", key, r.Status)
	}
	return r, false, nil
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func getStr(item map[string]types.AttributeValue, k string) string {
	if v, ok := item[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getNum(item map[string]types.AttributeValue, k string) (int64, bool) {
	v, ok := item[k].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	return n, err == nil
}

// Failed implements delivery.Attempts: one UpdateItem that adds one and returns the sum.
func (s *Store) Failed(ctx context.Context, messageID string, now time.Time) (int, error) {
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       map[string]types.AttributeValue{attrPK: str("sqs#" + messageID), attrSK: str(attemptsSK)},
		UpdateExpression:          aws.String("ADD #n :one SET #exp = :exp"),
		ExpressionAttributeNames:  map[string]string{"#n": attrAttempts, "#exp": attrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":exp": num(now.Add(attemptsTTL).Unix())},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, fmt.Errorf("count attempt of %s: %w", messageID, err)
	}
	n, ok := getNum(out.Attributes, attrAttempts)
	if !ok {
		return 0, fmt.Errorf("count attempt of %s: no count returned", messageID)
	}
	return int(n), nil
}
