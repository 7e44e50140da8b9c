package dynamo

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// HistoryPage implements inbound.Store: one Query, newest exchange first, from the
// cursor's exchange (inclusive) down; an exchange holds a user message and its
// answers, so limit exchanges always fill a page of limit entries.
func (s *Store) HistoryPage(ctx context.Context, channel, conversationRef string, limit int, cursor string) ([]message.Entry, string, error) {
	var cur message.Cursor
	upper := "h#~"
	if cursor != "" {
		var err error
		if cur, err = message.ParseCursor(cursor); err != nil {
			return nil, "", err
		}
		upper = exchangeSK(cur.CreatedAt, cur.Ref)
	}
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		// TTL deletes lazily: hide what has expired but is still there, and the
		// tombstones of erased conversations.
		FilterExpression:         aws.String("#exp >= :now AND attribute_not_exists(#t)"),
		ExpressionAttributeNames: map[string]string{"#exp": attrExpiresAt, "#t": attrTombstone},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(partitionKey(channel, conversationRef)), ":lo": str("h#"), ":hi": str(upper), ":now": num(s.now().Unix()),
		},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(int32(limit + 1)),
	}
	var xs []message.Exchange
	entries := 0
	more := false
	for {
		page, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("query history: %w", err)
		}
		for _, item := range page.Items {
			if x, ok := decodeExchange(item); ok {
				xs = append(xs, x)
				entries += len(x.Entries)
			}
		}
		more = len(page.LastEvaluatedKey) > 0
		if !more || entries-cur.Skip > limit {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	if cur.Ref != "" && (len(xs) == 0 || xs[0].Ref != cur.Ref) {
		cur.Skip = 0 // the cursor's exchange expired or was erased: go on from the next
	}
	out, next := message.Page(xs, cur, limit, more)
	return out, next, nil
}

// RecentHistory returns the last limit entries of a conversation, oldest first: what
// the llm bot reads.
func (s *Store) RecentHistory(ctx context.Context, channel, conversationRef string, limit int) ([]message.Entry, error) {
	entries, _, err := s.HistoryPage(ctx, channel, conversationRef, limit, "")
	slices.Reverse(entries)
	return entries, err
}
