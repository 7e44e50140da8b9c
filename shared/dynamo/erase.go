package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// maxBatchWrite is the most requests one BatchWriteItem takes.
const maxBatchWrite = 25

// tombstoneTTL keeps a tombstone as long as the queue may keep the job it waits for.
const tombstoneTTL = 15 * 24 * time.Hour

// ConversationUser implements inbound.Store: the caller's userId of a conversation's
// latest exchange, or of one of its records when no turn has run yet.
func (s *Store) ConversationUser(ctx context.Context, channel, conversationRef string) (string, bool, error) {
	for _, span := range [][2]string{{"h#", "h#~"}, {"m#", "m#~"}} {
		in := &dynamodb.QueryInput{
			TableName:              &s.table,
			KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(partitionKey(channel, conversationRef)), ":lo": str(span[0]), ":hi": str(span[1]),
			},
			ScanIndexForward: aws.Bool(false),
			Limit:            aws.Int32(5),
			ConsistentRead:   aws.Bool(true),
		}
		page, err := s.client.Query(ctx, in)
		if err != nil {
			return "", false, fmt.Errorf("query conversation: %w", err)
		}
		for _, item := range page.Items {
			if uid := getStr(item, attrUserID); uid != "" {
				return uid, true, nil
			}
		}
	}
	return "", false, nil
}

// EraseConversation implements inbound.Store: every item of the conversation goes.
// An accepted message whose job has not run gets a tombstone where its exchange would
// be, so the job, when it comes, stores nothing and delivers nothing — and removes the
// tombstone.
func (s *Store) EraseConversation(ctx context.Context, channel, conversationRef string) (message.Erased, error) {
	var e message.Erased
	var items []map[string]types.AttributeValue
	p := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName: &s.table, KeyConditionExpression: aws.String("pk = :pk"), ConsistentRead: aws.Bool(true),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(partitionKey(channel, conversationRef))},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return e, fmt.Errorf("query conversation: %w", err)
		}
		items = append(items, page.Items...)
	}
	// Exchanges by sort key, which is time and ref: a message accepted again after an
	// erasure (its record was gone) is a new job, of a new time, that the tombstone of
	// the first does not stop.
	exchanged, tombstone := map[string]bool{}, map[string]bool{}
	var logs []map[string]types.AttributeValue
	for _, item := range items {
		if x, ok := decodeExchange(item); ok {
			exchanged[getStr(item, attrSK)] = true
			if x.Tombstone {
				tombstone[getStr(item, attrSK)] = true
			} else {
				e.Messages += len(x.Entries)
				e.Conversations = 1
				for _, o := range x.Outgoing() {
					logs = append(logs, logKey(channel, o.ID)) // attempt logs, where there are any
				}
			}
		}
	}
	var deletes []map[string]types.AttributeValue
	for _, item := range items {
		sk := getStr(item, attrSK)
		if tombstone[sk] {
			continue // it waits for its job still
		}
		e.Conversations = 1
		key := map[string]types.AttributeValue{attrPK: item[attrPK], attrSK: item[attrSK]}
		if ref, isRecord := strings.CutPrefix(sk, "m#"); isRecord {
			rec := decodeRecord(message.Key{Channel: channel, ConversationRef: conversationRef, Ref: ref}, item)
			if !exchanged[exchangeSK(rec.CreatedAt, ref)] {
				stored, err := s.tombstone(ctx, rec)
				if err != nil {
					return e, err
				}
				if stored {
					e.Pending++
				} else {
					// The job stored its exchange meanwhile: it goes too.
					deletes = append(deletes, exchangeKey(rec.Key, rec.CreatedAt))
				}
			}
		}
		deletes = append(deletes, key)
	}
	return e, s.deleteAll(ctx, append(deletes, logs...))
}

// tombstone writes the tombstone of a job that has not run, unless its exchange
// appeared meanwhile.
func (s *Store) tombstone(ctx context.Context, rec message.Record) (bool, error) {
	item, _ := encodeExchange(message.Exchange{Key: rec.Key, CreatedAt: rec.CreatedAt, Tombstone: true,
		ExpiresAt: s.now().Add(tombstoneTTL)})
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tombstone %s: %w", rec.Ref, err)
	}
	return true, nil
}

// deleteAll deletes keys with BatchWriteItem, 25 at a time, retrying what DynamoDB
// leaves unprocessed.
func (s *Store) deleteAll(ctx context.Context, keys []map[string]types.AttributeValue) error {
	for chunk := range slices.Chunk(keys, maxBatchWrite) {
		reqs := make([]types.WriteRequest, len(chunk))
		for i, k := range chunk {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
		}
		pending := map[string][]types.WriteRequest{s.table: reqs}
		for attempt := 0; len(pending[s.table]) > 0; attempt++ {
			if attempt == 6 {
				return fmt.Errorf("erase: %d items left unprocessed", len(pending[s.table]))
			}
			if attempt > 0 {
				if err := pause(ctx, attempt); err != nil {
					return err
				}
			}
			out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return fmt.Errorf("erase: %w", err)
			}
			pending = out.UnprocessedItems
		}
	}
	return nil
}

// eraseSegments is how many parallel Scan segments look for a user's conversations.
const eraseSegments = 4

// EraseUser implements inbound.Store: every conversation of the channel that holds a
// record or an exchange of the user is erased whole. Finding them is a Scan of the
// table (a user's conversations have no index: one would cost a write on every
// message for a request that comes rarely), in parallel segments.
func (s *Store) EraseUser(ctx context.Context, channel, userRef string) (message.Erased, error) {
	prefix := "c#" + channel + "#"
	found := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, eraseSegments)
	for seg := range eraseSegments {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{
				TableName: &s.table, Segment: aws.Int32(int32(seg)), TotalSegments: aws.Int32(eraseSegments),
				// Strongly consistent: a conversation written a moment ago is erased too.
				ConsistentRead:            aws.Bool(true),
				FilterExpression:          aws.String("begins_with(pk, :p) AND #u = :u"),
				ProjectionExpression:      aws.String("pk"),
				ExpressionAttributeNames:  map[string]string{"#u": attrUser},
				ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(prefix), ":u": str(userRef)},
			})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					errs[seg] = fmt.Errorf("scan for the user's conversations: %w", err)
					return
				}
				mu.Lock()
				for _, item := range page.Items {
					found[getStr(item, attrPK)] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var total message.Erased
	if err := errors.Join(errs...); err != nil {
		return total, err
	}
	for pk := range found {
		_, convRef := splitPartition(pk)
		e, err := s.EraseConversation(ctx, channel, convRef)
		if err != nil {
			return total, err
		}
		total = total.Add(e)
	}
	return total, nil
}
