package dynamo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// A conversation's history is one partition, pk "hist#<botpressConversationId>", sorted
// by sk = Entry.SortKey (time, position in the turn, id): a Query reads it in order in
// either direction, and TTL on expiresAt forgets it.

const (
	attrID        = "id"
	attrDirection = "direction"
	attrType      = "type"
	attrPayload   = "payload"
	attrUserID    = "userId"
	attrMessageID = "messageId"
	attrInReplyTo = "inReplyTo"
	maxBatchWrite = 25
)

func historyPK(conversationRef string) types.AttributeValue { return str("hist#" + conversationRef) }

// AppendHistory writes entries with BatchWriteItem, 25 at a time, retrying what
// DynamoDB leaves unprocessed. The keys are deterministic, so a retried write
// overwrites with the same item.
func (s *Store) AppendHistory(ctx context.Context, conversationRef string, entries []message.Entry, expiresAt time.Time) error {
	for chunk := range slices.Chunk(entries, maxBatchWrite) {
		var reqs []types.WriteRequest
		for _, e := range chunk {
			item := map[string]types.AttributeValue{
				attrPK: historyPK(conversationRef), attrSK: str(e.SortKey()),
				attrID: str(e.ID), attrDirection: str(e.Direction), attrType: str(e.Type), attrPayload: str(string(e.Payload)),
				attrUserID: str(e.UserID), attrCreatedAt: num(e.CreatedAt.UnixMilli()), attrExpiresAt: num(expiresAt.Unix()),
			}
			if e.MessageID != "" {
				item[attrMessageID] = str(e.MessageID)
			}
			if e.InReplyTo != "" {
				item[attrInReplyTo] = str(e.InReplyTo)
			}
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		}
		pending := map[string][]types.WriteRequest{s.table: reqs}
		for attempt := 0; len(pending[s.table]) > 0; attempt++ {
			if attempt == 5 {
				return fmt.Errorf("append history: %d items left unprocessed", len(pending[s.table]))
			}
			if attempt > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
				}
			}
			out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return fmt.Errorf("append history: %w", err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}

// RecentHistory returns the last limit entries of a conversation, oldest first.
func (s *Store) RecentHistory(ctx context.Context, conversationRef string, limit int) ([]message.Entry, error) {
	entries, _, err := s.queryHistory(ctx, conversationRef, limit, "", time.Now())
	slices.Reverse(entries)
	return entries, err
}

// HistoryPage returns up to limit entries, newest first, older than the sort key
// after (from the start when empty), and the key for the next page ("" at the end).
func (s *Store) HistoryPage(ctx context.Context, conversationRef string, limit int, after string) ([]message.Entry, string, error) {
	return s.queryHistory(ctx, conversationRef, limit, after, time.Now())
}

func (s *Store) queryHistory(ctx context.Context, conversationRef string, limit int, after string, now time.Time) ([]message.Entry, string, error) {
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk"),
		// TTL deletes lazily: hide what has expired but is still there.
		FilterExpression:          aws.String("#exp >= :now"),
		ExpressionAttributeNames:  map[string]string{"#exp": attrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": historyPK(conversationRef), ":now": num(now.Unix())},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit + 1)),
	}
	if after != "" {
		in.ExclusiveStartKey = map[string]types.AttributeValue{attrPK: historyPK(conversationRef), attrSK: str(after)}
	}
	var out []message.Entry
	for {
		page, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("query history: %w", err)
		}
		for _, item := range page.Items {
			out = append(out, decodeEntry(item))
		}
		if len(out) > limit || len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	if len(out) > limit {
		return out[:limit], out[limit-1].SortKey(), nil
	}
	return out, "", nil
}

func decodeEntry(item map[string]types.AttributeValue) message.Entry {
	e := message.Entry{
		ID: getStr(item, attrID), Direction: getStr(item, attrDirection), Type: getStr(item, attrType),
		Payload: json.RawMessage(getStr(item, attrPayload)), UserID: getStr(item, attrUserID),
		MessageID: getStr(item, attrMessageID), InReplyTo: getStr(item, attrInReplyTo),
	}
	if ms, ok := getNum(item, attrCreatedAt); ok {
		e.CreatedAt = time.UnixMilli(ms).UTC()
	}
	// The sort key carries the position in the turn.
	var ms int64
	fmt.Sscanf(getStr(item, attrSK), "%013d.%03d#", &ms, &e.Seq)
	return e
}
