package dynamo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/shared/message"
)

// Tokens live in one partition, pk "token", sk the token's SHA-256: a key read to
// check one, a query to list them.
const tokenPK = "token"

func tokenKey(hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(tokenPK), attrSK: str(hash)}
}

// PutToken stores a token hash; it fails rather than overwrite one.
func (s *Store) PutToken(ctx context.Context, t message.Token) error {
	item := tokenKey(t.Hash)
	item[attrName] = str(t.Name)
	item[attrCreated] = str(t.CreatedAt.UTC().Format(time.RFC3339))
	if t.Channel != "" {
		item[attrChannel] = str(t.Channel)
	}
	if t.Scope != "" {
		item[attrScope] = str(t.Scope)
	}
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err != nil {
		return fmt.Errorf("put token %s: %w", t.ID(), err)
	}
	return nil
}

// LookupToken implements token.Lookup.
func (s *Store) LookupToken(ctx context.Context, hash string) (message.Token, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: tokenKey(hash)})
	if err != nil {
		return message.Token{}, false, fmt.Errorf("get token: %w", err)
	}
	if len(out.Item) == 0 {
		return message.Token{}, false, nil
	}
	return decodeToken(out.Item), true, nil
}

// ListTokens lists the stored tokens, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]message.Token, error) {
	toks, err := s.queryTokens(ctx, "")
	slices.SortFunc(toks, func(a, b message.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return toks, err
}

// DeleteTokens deletes the tokens whose hash starts with id (at least 8 hex digits)
// and returns how many it deleted.
func (s *Store) DeleteTokens(ctx context.Context, id string) (int, error) {
	if len(id) < 8 {
		return 0, fmt.Errorf("token id %q is too short: give at least 8 characters", id)
	}
	toks, err := s.queryTokens(ctx, id)
	if err != nil {
		return 0, err
	}
	for i, t := range toks {
		if _, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: tokenKey(t.Hash)}); err != nil {
			return i, fmt.Errorf("delete token %s: %w", t.ID(), err)
		}
	}
	return len(toks), nil
}

func (s *Store) queryTokens(ctx context.Context, prefix string) ([]message.Token, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(tokenPK)},
		ConsistentRead:            aws.Bool(true),
	}
	if prefix != "" {
		in.KeyConditionExpression = aws.String("pk = :pk AND begins_with(sk, :p)")
		in.ExpressionAttributeValues[":p"] = str(prefix)
	}
	var out []message.Token
	p := dynamodb.NewQueryPaginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query tokens: %w", err)
		}
		for _, item := range page.Items {
			out = append(out, decodeToken(item))
		}
	}
	return out, nil
}

func decodeToken(item map[string]types.AttributeValue) message.Token {
	t := message.Token{Hash: getStr(item, attrSK), Name: getStr(item, attrName), Channel: getStr(item, attrChannel), Scope: getStr(item, attrScope)}
	t.CreatedAt, _ = time.Parse(time.RFC3339, getStr(item, attrCreated))
	return t
}

// CreateTable creates a table with Parley's schema — the one infra/ deploys — and
// waits for it. The local stack and the tests use it against DynamoDB Local.
func CreateTable(ctx context.Context, client *dynamodb.Client, name string) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &name,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	if err := dynamodb.NewTableExistsWaiter(client).Wait(ctx, &dynamodb.DescribeTableInput{TableName: &name}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               &name,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrExpiresAt), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("enable TTL on %s: %w", name, err)
	}
	return nil
}
