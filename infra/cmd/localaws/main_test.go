package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/infra/deploy"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/token"
)

func TestMain(m *testing.M) { emulator.Main(m) }

// TestEnvJSON: what events/env.json names is what local-aws makes, as SAM's containers
// reach it: the table, the queues by their URLs (the emulator finds a queue by its
// path, whatever the host the URL names), the inbox. Run against the real emulators,
// on free ports.
func TestEnvJSON(t *testing.T) {
	raw, err := os.ReadFile("../../../events/env.json")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]map[string]string
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, q := emulator.DynamoDB(t), emulator.SQS(t)
	queueURL, deadURL, err := prepare(ctx, d.URL, q.URL)
	if err != nil {
		t.Fatal(err)
	}
	sq, ddb := q.SQSClient(), d.DynamoDBClient()
	at := func(u, port string) string { return "http://" + dockerHost + ":" + port + must(url.Parse(u)).Path }
	sqsPortText := strconv.Itoa(sqsPort)
	for fn, vars := range env {
		if got := vars["PARLEY_TABLE_NAME"]; got != tableName {
			t.Errorf("%s PARLEY_TABLE_NAME: got %q, want %q", fn, got, tableName)
		}
		if got, want := vars["PARLEY_QUEUE_URL"], at(queueURL, sqsPortText); got != want {
			t.Errorf("%s PARLEY_QUEUE_URL: got %q, want %q", fn, got, want)
		}
		// The emulator takes env.json's URL as it is.
		if _, err := sq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(vars["PARLEY_QUEUE_URL"]), MessageBody: aws.String("x"),
			MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(fn)}); err != nil {
			t.Errorf("%s PARLEY_QUEUE_URL: %v", fn, err)
		}
	}
	dv := env[deploy.Delivery.ID]
	if got, want := dv["PARLEY_DEAD_LETTER_QUEUE_URL"], at(deadURL, sqsPortText); got != want {
		t.Errorf("PARLEY_DEAD_LETTER_QUEUE_URL: got %q, want %q", got, want)
	}
	if got, want := dv["PARLEY_RESPONSE_ENDPOINT_URL"], "http://"+dockerHost+":"+strconv.Itoa(inboxPort)+"/parley/responses"; got != want {
		t.Errorf("PARLEY_RESPONSE_ENDPOINT_URL: got %q, want %q", got, want)
	}

	// The sample events' token is there.
	if _, ok, err := dynamo.New(ddb, tableName).LookupToken(ctx, token.Hash(sampleToken)); err != nil || !ok {
		t.Errorf("sample token: found %v, %v", ok, err)
	}
	// And the table is the one the stack deploys: package deploy's keys and TTL
	// attribute are the ones shared/dynamo makes.
	desc, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, k := range desc.Table.KeySchema {
		keys[string(k.KeyType)] = aws.ToString(k.AttributeName)
	}
	if keys["HASH"] != deploy.PartitionKey || keys["RANGE"] != deploy.SortKey {
		t.Errorf("table keys: shared/dynamo makes %v, package deploy deploys %s, %s", keys, deploy.PartitionKey, deploy.SortKey)
	}
	ttl, err := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tableName)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(ttl.TimeToLiveDescription.AttributeName); got != deploy.TTLAttribute {
		t.Errorf("TTL attribute: shared/dynamo sets %q, package deploy %q", got, deploy.TTLAttribute)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
