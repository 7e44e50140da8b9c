package dynamo_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopAll()
	os.Exit(code)
}

var tables atomic.Int64

// newTable creates a fresh table with the deployed schema in DynamoDB Local.
func newTable(t *testing.T) *dynamo.Store {
	t.Helper()
	client := emulator.DynamoDB(t).DynamoDBClient()
	name := fmt.Sprintf("parley-test-%d", tables.Add(1))
	if err := dynamo.CreateTable(context.Background(), client, name); err != nil {
		t.Fatal(err)
	}
	return dynamo.New(client, name)
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return newTable(t) })
}
