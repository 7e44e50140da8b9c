package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// A bot message's attempt log is one item, pk "d#<channel>#<webhookId>", written only
// when an attempt failed. A channel endpoint's health is one item in partition
// "health", sk the channel's id, written only when attempts fail (and once when they
// stop failing).

const (
	healthPK       = "health"
	attrStatus     = "s"
	attrAttemptLog = "a"
	attrConvRef    = "cr"
	attrRef        = "r"
	attrFailures   = "n"
	attrSince      = "since"
	attrDisabled   = "disabled"
	attrDisabledAt = "disabledAt"
	attrReason     = "reason"
	attrRecent     = "recent"
)

func logKey(channel, webhookID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str("d#" + channel + "#" + webhookID), attrSK: str("log")}
}

func healthKey(channel string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(healthPK), attrSK: str(channel)}
}

func attemptValue(a message.Attempt) types.AttributeValue {
	b, _ := json.Marshal(a)
	return str(string(b))
}

func attemptsOf(item map[string]types.AttributeValue, k string) []message.Attempt {
	l, _ := item[k].(*types.AttributeValueMemberL)
	if l == nil {
		return nil
	}
	out := make([]message.Attempt, 0, len(l.Value))
	for _, v := range l.Value {
		var a message.Attempt
		if s, ok := v.(*types.AttributeValueMemberS); ok && json.Unmarshal([]byte(s.Value), &a) == nil {
			out = append(out, a)
		}
	}
	return out
}

// LogAttempt implements delivery.Store: one UpdateItem that appends the attempt.
// Past message.MaxLoggedAttempts one more removes the oldest but the first ten.
func (s *Store) LogAttempt(ctx context.Context, l message.DeliveryLog, a message.Attempt, expiresAt time.Time) error {
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: logKey(l.Key.Channel, l.WebhookID),
		UpdateExpression: aws.String("SET #a = list_append(if_not_exists(#a, :empty), :new), #s = :s, #cr = :cr, #r = :r, #at = :at, #cid = :cid, #exp = :exp"),
		ExpressionAttributeNames: map[string]string{"#a": attrAttemptLog, "#s": attrStatus, "#cr": attrConvRef, "#r": attrRef,
			"#at": attrCreatedAt, "#cid": attrConversationID, "#exp": attrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}},
			":new":   &types.AttributeValueMemberL{Value: []types.AttributeValue{attemptValue(a)}},
			":s":     str(l.Status), ":cr": str(l.Key.ConversationRef), ":r": str(l.Key.Ref),
			":at": num(l.CreatedAt.UnixMilli()), ":cid": str(l.ConversationID), ":exp": num(expiresAt.Unix()),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return fmt.Errorf("log attempt of %s: %w", l.WebhookID, err)
	}
	if n := len(attemptsOf(out.Attributes, attrAttemptLog)); n > message.MaxLoggedAttempts {
		_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: logKey(l.Key.Channel, l.WebhookID),
			UpdateExpression: aws.String("REMOVE #a[10]"), ExpressionAttributeNames: map[string]string{"#a": attrAttemptLog},
		})
		if err != nil {
			return fmt.Errorf("trim attempt log of %s: %w", l.WebhookID, err)
		}
	}
	return nil
}

// DeliveryLog implements inbound.Store.
func (s *Store) DeliveryLog(ctx context.Context, channel, webhookID string) (message.DeliveryLog, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: logKey(channel, webhookID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return message.DeliveryLog{}, false, fmt.Errorf("get attempt log of %s: %w", webhookID, err)
	}
	if len(out.Item) == 0 {
		return message.DeliveryLog{}, false, nil
	}
	l := message.DeliveryLog{WebhookID: webhookID, ConversationID: getStr(out.Item, attrConversationID), Status: getStr(out.Item, attrStatus), Attempts: attemptsOf(out.Item, attrAttemptLog),
		Key: message.Key{Channel: channel, ConversationRef: getStr(out.Item, attrConvRef), Ref: getStr(out.Item, attrRef)}}
	if ms, ok := getNum(out.Item, attrCreatedAt); ok {
		l.CreatedAt = time.UnixMilli(ms).UTC()
	}
	return l, true, nil
}

// FindOutgoing implements inbound.Store: the exchange of a conversation that holds the
// bot message webhookID, by reading the conversation's exchanges.
func (s *Store) FindOutgoing(ctx context.Context, channel, conversationRef, webhookID string) (message.Exchange, bool, error) {
	p := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName: &s.table, KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :h)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(partitionKey(channel, conversationRef)), ":h": str("h#")},
		ScanIndexForward:          aws.Bool(false),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return message.Exchange{}, false, fmt.Errorf("query conversation: %w", err)
		}
		for _, item := range page.Items {
			if x, ok := decodeExchange(item); ok && !x.Tombstone {
				for _, e := range x.Outgoing() {
					if e.ID == webhookID {
						return x, true, nil
					}
				}
			}
		}
	}
	return message.Exchange{}, false, nil
}

// Health implements delivery.Store and admin.Store.
func (s *Store) Health(ctx context.Context, channel string) (message.Health, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: healthKey(channel), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return message.Health{}, fmt.Errorf("get health of %s: %w", channel, err)
	}
	return decodeHealth(channel, out.Item), nil
}

func decodeHealth(channel string, item map[string]types.AttributeValue) message.Health {
	h := message.Health{Channel: channel, Reason: getStr(item, attrReason), Recent: attemptsOf(item, attrRecent)}
	n, _ := getNum(item, attrFailures)
	h.Failures = int(n)
	if ms, ok := getNum(item, attrSince); ok {
		h.Since = time.UnixMilli(ms).UTC()
	}
	if ms, ok := getNum(item, attrDisabledAt); ok {
		h.DisabledAt = time.UnixMilli(ms).UTC()
	}
	if v, ok := item[attrDisabled].(*types.AttributeValueMemberBOOL); ok {
		h.Disabled = v.Value
	}
	if h.Recent == nil {
		h.Recent = []message.Attempt{}
	}
	return h
}

// EndpointFailed implements delivery.Store: one UpdateItem counts the failure; one
// more disables the endpoint when the rule says so, or trims the recent failures.
func (s *Store) EndpointFailed(ctx context.Context, channel string, a message.Attempt, gone bool, rule message.DisableRule, now time.Time) (message.Health, error) {
	names := map[string]string{"#n": attrFailures, "#since": attrSince, "#recent": attrRecent}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: healthKey(channel),
		UpdateExpression:         aws.String("ADD #n :one SET #since = if_not_exists(#since, :now), #recent = list_append(if_not_exists(#recent, :empty), :a)"),
		ExpressionAttributeNames: names,
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":now": num(a.At.UnixMilli()),
			":empty": &types.AttributeValueMemberL{Value: []types.AttributeValue{}}, ":a": &types.AttributeValueMemberL{Value: []types.AttributeValue{attemptValue(a)}}},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return message.Health{}, fmt.Errorf("count failure of %s: %w", channel, err)
	}
	h := decodeHealth(channel, out.Attributes)
	if len(h.Recent) > 2*message.RecentFailures {
		remove := "REMOVE "
		for i := range message.RecentFailures {
			if i > 0 {
				remove += ", "
			}
			remove += fmt.Sprintf("#recent[%d]", i)
		}
		if _, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: &s.table, Key: healthKey(channel),
			UpdateExpression: aws.String(remove), ExpressionAttributeNames: map[string]string{"#recent": attrRecent}}); err != nil {
			return h, fmt.Errorf("trim failures of %s: %w", channel, err)
		}
	}
	if len(h.Recent) > message.RecentFailures {
		h.Recent = h.Recent[len(h.Recent)-message.RecentFailures:]
	}
	if h.Disabled || !(gone || rule.Disables(h, now)) {
		return h, nil
	}
	reason := fmt.Sprintf("%d failed attempts in a row since %s, the last: %s", h.Failures, h.Since.Format(time.RFC3339), a.Reason)
	if gone {
		reason = "the endpoint answered 410 Gone"
	}
	_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: healthKey(channel),
		UpdateExpression:         aws.String("SET #d = :true, #at = :at, #r = :r"),
		ConditionExpression:      aws.String("attribute_not_exists(#d) OR #d = :false"),
		ExpressionAttributeNames: map[string]string{"#d": attrDisabled, "#at": attrDisabledAt, "#r": attrReason},
		ExpressionAttributeValues: map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true},
			":false": &types.AttributeValueMemberBOOL{Value: false}, ":at": num(a.At.UnixMilli()), ":r": str(reason)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return h, fmt.Errorf("disable %s: %w", channel, err)
	}
	if err == nil {
		h.Disabled, h.DisabledAt, h.Reason = true, a.At, reason
	}
	return h, nil
}

// EndpointRecovered implements delivery.Store.
func (s *Store) EndpointRecovered(ctx context.Context, channel string) error {
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: healthKey(channel),
		UpdateExpression:          aws.String("SET #n = :zero REMOVE #since"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND (attribute_not_exists(#d) OR #d = :false)"),
		ExpressionAttributeNames:  map[string]string{"#n": attrFailures, "#since": attrSince, "#d": attrDisabled},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":false": &types.AttributeValueMemberBOOL{Value: false}},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("end failure streak of %s: %w", channel, err)
	}
	return nil
}

// EnableEndpoint implements admin.Store: the endpoint gets attempts again, its streak
// starts over; the recent failures stay for the record.
func (s *Store) EnableEndpoint(ctx context.Context, channel string) error {
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: healthKey(channel),
		UpdateExpression:          aws.String("SET #d = :false, #n = :zero REMOVE #since, #at, #r"),
		ExpressionAttributeNames:  map[string]string{"#d": attrDisabled, "#n": attrFailures, "#since": attrSince, "#at": attrDisabledAt, "#r": attrReason},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":false": &types.AttributeValueMemberBOOL{Value: false}},
	})
	if err != nil {
		return fmt.Errorf("enable %s: %w", channel, err)
	}
	return nil
}
