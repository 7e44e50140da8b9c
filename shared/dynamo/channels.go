package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// Channels live in one partition, pk "channel", sk the channel's id, the settings as
// one JSON document. The signing secrets are in it: the table is encrypted at rest
// (docs/design.md, Secrets); an llm key is not — only the name of its secret.
const channelPK = "channel"

const (
	attrDoc = "doc"
	// attrRules keeps a rules bot's intents file byte for byte, beside the document:
	// inside it, encoding/json would compact the file and escape its <, > and &, and
	// the operator would get back something else than what they gave.
	attrRules = "rules"
)

func channelKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(channelPK), attrSK: str(id)}
}

// PutChannel implements admin.Store.
func (s *Store) PutChannel(ctx context.Context, c message.Channel, create bool) error {
	rules := c.Bot.Rules
	c.Bot.Rules = nil
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	item := channelKey(c.ID)
	item[attrDoc] = str(string(doc))
	if len(rules) > 0 {
		item[attrRules] = &types.AttributeValueMemberB{Value: rules}
	}
	cond := "attribute_exists(pk)"
	if create {
		cond = "attribute_not_exists(pk)"
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item, ConditionExpression: aws.String(cond)})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf) && create:
		return message.ErrExists
	case errors.As(err, &ccf):
		return message.ErrNotFound
	case err != nil:
		return fmt.Errorf("put channel %s: %w", c.ID, err)
	}
	return nil
}

// GetChannel implements admin.Store and channel.Store.
func (s *Store) GetChannel(ctx context.Context, id string) (message.Channel, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: channelKey(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return message.Channel{}, false, fmt.Errorf("get channel %s: %w", id, err)
	}
	if len(out.Item) == 0 {
		return message.Channel{}, false, nil
	}
	c, err := decodeChannel(out.Item)
	return c, err == nil, err
}

func decodeChannel(item map[string]types.AttributeValue) (message.Channel, error) {
	var c message.Channel
	if err := json.Unmarshal([]byte(getStr(item, attrDoc)), &c); err != nil {
		return c, fmt.Errorf("channel %s: %w", getStr(item, attrSK), err)
	}
	if b, ok := item[attrRules].(*types.AttributeValueMemberB); ok {
		c.Bot.Rules = json.RawMessage(b.Value)
	}
	return c, nil
}

// ListChannels implements admin.Store: the channels, oldest first.
func (s *Store) ListChannels(ctx context.Context) ([]message.Channel, error) {
	var out []message.Channel
	p := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName: &s.table, KeyConditionExpression: aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(channelPK)}, ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query channels: %w", err)
		}
		for _, item := range page.Items {
			c, err := decodeChannel(item)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b message.Channel) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeleteChannel implements admin.Store.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	if _, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: channelKey(id)}); err != nil {
		return fmt.Errorf("delete channel %s: %w", id, err)
	}
	return nil
}
