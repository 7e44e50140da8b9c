// Package dynamo is the DynamoDB adapter: one table keyed by pk and sk, with TTL on
// expiresAt. A conversation is one partition, pk "c#<channel>#<botpressConversationId>",
// holding
//
//   - a record per accepted message, sk "m#<ref>": written once by the inbound side with
//     a conditional put that de-duplicates, and again only when a delivery attempt
//     fails;
//   - an exchange per accepted message whose job has run, sk "h#<createdAt ms>#<ref>":
//     the user message and the bot's answers, written once by the delivery side with a
//     conditional put before the first POST. Sorted by time, they are the history.
//
// Tokens live in partition "token", channels in partition "channel".
package dynamo

import (
	"context"
	"encoding/json"
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
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Attribute names. Short ones for what every message writes: an item's size rounds up
// to the next kilobyte of write capacity.
const (
	attrPK        = "pk"
	attrSK        = "sk"
	attrExpiresAt = "expiresAt" // Unix seconds: the TTL attribute
	attrUser      = "u"         // botpressUserId: what erasing a user looks for
	attrUserID    = "uid"       // the caller's userId

	// Records.
	attrHash         = "h"
	attrCreatedAt    = "at" // Unix milliseconds
	attrDelivered    = "d"
	attrStep         = "st"
	attrAttempts     = "n"
	attrFailingSince = "fs" // Unix milliseconds

	// Exchanges.
	attrConversationID = "cid"
	attrEntries        = "e"
	attrOwner          = "o"
	attrFailure        = "f"
	attrTombstone      = "t"

	// Tokens and channels.
	attrName    = "name"
	attrCreated = "createdAt" // RFC 3339
	attrChannel = "channel"
	attrScope   = "scope"
)

// Store is the DynamoDB store.
type Store struct {
	client Client
	table  string
	now    func() time.Time
}

// New returns a Store on table.
func New(client Client, table string) *Store {
	return &Store{client: client, table: table, now: time.Now}
}

func partitionKey(channel, conversationRef string) string {
	return "c#" + channel + "#" + conversationRef
}

func recordKey(k message.Key) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(partitionKey(k.Channel, k.ConversationRef)), attrSK: str("m#" + k.Ref)}
}

func exchangeSK(createdAt time.Time, ref string) string {
	return fmt.Sprintf("h#%013d#%s", createdAt.UnixMilli(), ref)
}

func exchangeKey(k message.Key, createdAt time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(partitionKey(k.Channel, k.ConversationRef)), attrSK: str(exchangeSK(createdAt, k.Ref))}
}

// Accept implements inbound.Store with one conditional PutItem: no record, or an
// expired one (TTL deletes lazily, up to days late). A refused put returns the old
// item for free (ReturnValuesOnConditionCheckFailure).
func (s *Store) Accept(ctx context.Context, rec message.Record, now time.Time) (message.Record, bool, error) {
	item := recordKey(rec.Key)
	item[attrHash] = str(rec.RequestHash)
	item[attrUser] = str(rec.UserRef)
	item[attrUserID] = str(rec.UserID)
	item[attrCreatedAt] = num(rec.CreatedAt.UnixMilli())
	item[attrExpiresAt] = num(rec.ExpiresAt.Unix())
	// A record deleted between our failed put and the read that follows is gone; the
	// put is tried again, a few times at most.
	for range 3 {
		_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           &s.table,
			Item:                                item,
			ConditionExpression:                 aws.String("attribute_not_exists(pk) OR #exp < :now"),
			ExpressionAttributeNames:            map[string]string{"#exp": attrExpiresAt},
			ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(now.Unix())},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			return message.Record{}, true, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return message.Record{}, false, fmt.Errorf("put record %s: %w", rec.Ref, err)
		}
		if len(ccf.Item) > 0 {
			return decodeRecord(rec.Key, ccf.Item), false, nil
		}
		// Some emulators leave Item empty: read it.
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: recordKey(rec.Key), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return message.Record{}, false, fmt.Errorf("get record %s: %w", rec.Ref, err)
		}
		if len(out.Item) > 0 {
			return decodeRecord(rec.Key, out.Item), false, nil
		}
	}
	return message.Record{}, false, fmt.Errorf("put record %s: the record kept changing", rec.Ref)
}

// Exchanged implements inbound.Store with one key read.
func (s *Store) Exchanged(ctx context.Context, rec message.Record) (bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, Key: exchangeKey(rec.Key, rec.CreatedAt), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String(attrPK),
	})
	if err != nil {
		return false, fmt.Errorf("get exchange %s: %w", rec.Ref, err)
	}
	return len(out.Item) > 0, nil
}

// Load implements delivery.Store with one BatchGetItem of both items.
func (s *Store) Load(ctx context.Context, key message.Key, createdAt time.Time) (message.Record, bool, message.Exchange, bool, error) {
	keys := []map[string]types.AttributeValue{recordKey(key), exchangeKey(key, createdAt)}
	var rec message.Record
	var x message.Exchange
	var recFound, xFound bool
	for attempt := 0; len(keys) > 0; attempt++ {
		if attempt == 5 {
			return rec, false, x, false, fmt.Errorf("load %s: keys left unprocessed", key.Ref)
		}
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return rec, false, x, false, err
			}
		}
		out, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			s.table: {Keys: keys, ConsistentRead: aws.Bool(true)},
		}})
		if err != nil {
			return rec, false, x, false, fmt.Errorf("load %s: %w", key.Ref, err)
		}
		for _, item := range out.Responses[s.table] {
			if sk := getStr(item, attrSK); len(sk) > 1 && sk[0] == 'm' {
				rec, recFound = decodeRecord(key, item), true
			} else {
				x, xFound = decodeExchange(item)
			}
		}
		keys = out.UnprocessedKeys[s.table].Keys
	}
	return rec, recFound, x, xFound, nil
}

// PutExchange implements delivery.Store: a conditional PutItem that replaces only a
// failed exchange (a redriven turn's).
func (s *Store) PutExchange(ctx context.Context, x message.Exchange) (message.Exchange, bool, error) {
	item, err := encodeExchange(x)
	if err != nil {
		return message.Exchange{}, false, err
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           &s.table,
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk) OR attribute_exists(#f)"),
		ExpressionAttributeNames:            map[string]string{"#f": attrFailure},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return message.Exchange{}, true, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return message.Exchange{}, false, fmt.Errorf("put exchange %s: %w", x.Ref, err)
	}
	old := ccf.Item
	if len(old) == 0 {
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: exchangeKey(x.Key, x.CreatedAt), ConsistentRead: aws.Bool(true)})
		if err != nil {
			return message.Exchange{}, false, fmt.Errorf("get exchange %s: %w", x.Ref, err)
		}
		old = out.Item
	}
	existing, _ := decodeExchange(old)
	return existing, false, nil
}

// TakeOver implements delivery.Store.
func (s *Store) TakeOver(ctx context.Context, key message.Key, createdAt time.Time, owner string) error {
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: recordKey(key),
		UpdateExpression:         aws.String("REMOVE #st, #n, #fs"),
		ConditionExpression:      aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames: map[string]string{"#st": attrStep, "#n": attrAttempts, "#fs": attrFailingSince},
	})
	if err := goneErr("reset record "+key.Ref, err); err != nil {
		return err
	}
	_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: exchangeKey(key, createdAt),
		UpdateExpression:          aws.String("SET #o = :o"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#o": attrOwner},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": str(owner)},
	})
	if err := goneErr("take over exchange "+key.Ref, err); err != nil && !errors.Is(err, message.ErrGone) {
		return err
	}
	return nil
}

// Failed implements delivery.Store: one UpdateItem that adds one to the step's count,
// and a second when the step changed since the last failure.
func (s *Store) Failed(ctx context.Context, key message.Key, step, delivered int, now time.Time) (message.Record, error) {
	names := map[string]string{"#n": attrAttempts, "#d": attrDelivered, "#fs": attrFailingSince, "#st": attrStep}
	values := map[string]types.AttributeValue{":one": num(1), ":d": num(int64(delivered)), ":now": num(now.UnixMilli()), ":st": num(int64(step))}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: recordKey(key),
		UpdateExpression:          aws.String("ADD #n :one SET #d = :d, #fs = if_not_exists(#fs, :now)"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND #st = :st"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		out, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: recordKey(key),
			UpdateExpression:          aws.String("SET #st = :st, #n = :one, #d = :d, #fs = if_not_exists(#fs, :now)"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
			ReturnValues:              types.ReturnValueAllNew,
		})
	}
	if err := goneErr("count attempt of "+key.Ref, err); err != nil {
		return message.Record{}, err
	}
	return decodeRecord(key, out.Attributes), nil
}

// Progress implements delivery.Store.
func (s *Store) Progress(ctx context.Context, key message.Key, delivered int) error {
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: recordKey(key),
		UpdateExpression:          aws.String("SET #d = :d"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames:  map[string]string{"#d": attrDelivered},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": num(int64(delivered))},
	})
	return goneErr("note progress of "+key.Ref, err)
}

// DropTombstone implements delivery.Store.
func (s *Store) DropTombstone(ctx context.Context, x message.Exchange) error {
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: exchangeKey(x.Key, x.CreatedAt),
		ConditionExpression:       aws.String("#t = :true"),
		ExpressionAttributeNames:  map[string]string{"#t": attrTombstone},
		ExpressionAttributeValues: map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}},
	})
	if err := goneErr("drop tombstone "+x.Ref, err); err != nil && !errors.Is(err, message.ErrGone) {
		return err
	}
	return nil
}

// goneErr maps a failed condition on a record's existence to message.ErrGone.
func goneErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return message.ErrGone
	}
	return fmt.Errorf("%s: %w", op, err)
}

func decodeRecord(key message.Key, item map[string]types.AttributeValue) message.Record {
	r := message.Record{Key: key, RequestHash: getStr(item, attrHash), UserRef: getStr(item, attrUser), UserID: getStr(item, attrUserID)}
	if ms, ok := getNum(item, attrCreatedAt); ok {
		r.CreatedAt = time.UnixMilli(ms).UTC()
	}
	if sec, ok := getNum(item, attrExpiresAt); ok {
		r.ExpiresAt = time.Unix(sec, 0).UTC()
	}
	d, _ := getNum(item, attrDelivered)
	st, _ := getNum(item, attrStep)
	n, _ := getNum(item, attrAttempts)
	r.Delivered, r.Step, r.Attempts = int(d), int(st), int(n)
	if ms, ok := getNum(item, attrFailingSince); ok {
		r.FailingSince = time.UnixMilli(ms).UTC()
	}
	return r
}

// storedEntry is an entry as an exchange keeps it: short keys, since every message
// pays for its bytes in write capacity.
type storedEntry struct {
	ID        string          `json:"i"`
	Direction string          `json:"d"`
	Type      string          `json:"t"`
	Payload   json.RawMessage `json:"p"`
	UserID    string          `json:"u,omitempty"`
	MessageID string          `json:"m,omitempty"`
	InReplyTo string          `json:"r,omitempty"`
	CreatedAt int64           `json:"c"` // Unix milliseconds
}

func encodeExchange(x message.Exchange) (map[string]types.AttributeValue, error) {
	item := exchangeKey(x.Key, x.CreatedAt)
	item[attrExpiresAt] = num(x.ExpiresAt.Unix())
	if x.Tombstone { // says nothing about whom it was for
		item[attrTombstone] = &types.AttributeValueMemberBOOL{Value: true}
		return item, nil
	}
	item[attrUser] = str(message.UserRef(x.Channel, x.UserID))
	entries := make([]storedEntry, len(x.Entries))
	for i, e := range x.Entries {
		entries[i] = storedEntry{ID: e.ID, Direction: e.Direction[:1], Type: e.Type, Payload: e.Payload, MessageID: e.MessageID,
			InReplyTo: e.InReplyTo, CreatedAt: e.CreatedAt.UnixMilli()}
		if e.UserID != x.UserID {
			entries[i].UserID = e.UserID
		}
	}
	b, err := message.Marshal(entries)
	if err != nil {
		return nil, fmt.Errorf("encode exchange %s: %w", x.Ref, err)
	}
	item[attrEntries] = str(string(b))
	item[attrConversationID] = str(x.ConversationID)
	item[attrUserID] = str(x.UserID)
	item[attrOwner] = str(x.Owner)
	if x.Failure != "" {
		item[attrFailure] = str(x.Failure)
	}
	return item, nil
}

// decodeExchange reads an exchange item; ok is false for an item that is not one.
func decodeExchange(item map[string]types.AttributeValue) (message.Exchange, bool) {
	var x message.Exchange
	var ms int64
	var ref string
	sk := getStr(item, attrSK)
	if _, err := fmt.Sscanf(sk, "h#%013d#", &ms); err != nil || len(sk) < 17 {
		return x, false
	}
	ref = sk[16:]
	pk := getStr(item, attrPK)
	channel, convRef := splitPartition(pk)
	x.Key = message.Key{Channel: channel, ConversationRef: convRef, Ref: ref}
	x.CreatedAt = time.UnixMilli(ms).UTC()
	if sec, ok := getNum(item, attrExpiresAt); ok {
		x.ExpiresAt = time.Unix(sec, 0).UTC()
	}
	if v, ok := item[attrTombstone].(*types.AttributeValueMemberBOOL); ok && v.Value {
		x.Tombstone = true
		return x, true
	}
	x.ConversationID, x.UserID = getStr(item, attrConversationID), getStr(item, attrUserID)
	x.Owner, x.Failure = getStr(item, attrOwner), getStr(item, attrFailure)
	var entries []storedEntry
	if err := json.Unmarshal([]byte(getStr(item, attrEntries)), &entries); err != nil {
		return x, false
	}
	for _, e := range entries {
		dir := message.Incoming
		if e.Direction == "o" {
			dir = message.Outgoing
		}
		uid := e.UserID
		if uid == "" {
			uid = x.UserID
		}
		x.Entries = append(x.Entries, message.Entry{ID: e.ID, Direction: dir, Type: e.Type, Payload: e.Payload, UserID: uid,
			MessageID: e.MessageID, InReplyTo: e.InReplyTo, CreatedAt: time.UnixMilli(e.CreatedAt).UTC()})
	}
	return x, true
}

// splitPartition undoes partitionKey: "c#<channel>#<ref>", the ref having no '#'.
func splitPartition(pk string) (channel, conversationRef string) {
	rest := pk
	if len(rest) > 2 && rest[:2] == "c#" {
		rest = rest[2:]
	}
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i] == '#' {
			return rest[:i], rest[i+1:]
		}
	}
	return "", rest
}

func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(25<<attempt) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
