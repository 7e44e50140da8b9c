package inmem_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/testkit/queuetest"
	"github.com/parley-chat/parley/shared/testkit/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return inmem.NewStore() })
}

func TestQueueContract(t *testing.T) {
	queuetest.Run(t, queuetest.Quirks{}, func(t *testing.T, visibility time.Duration) queuetest.Queue {
		return inmem.NewQueue(inmem.QueueConfig{MaxReceives: queuetest.MaxReceives, VisibilityTimeout: visibility})
	})
}
