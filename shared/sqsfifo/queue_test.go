package sqsfifo_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/queuetest"
)

func TestMain(m *testing.M) { emulator.Main(m) }

var queues atomic.Int64

// newQueue creates a FIFO queue and its FIFO dead-letter queue in local-aws-sqs, set
// up as infra/ deploys them.
func newQueue(t *testing.T, visibility time.Duration, maxReceives int) *sqsfifo.Queue {
	t.Helper()
	client := emulator.SQS(t).SQSClient()
	ctx := context.Background()
	n := queues.Add(1)
	dead, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(fmt.Sprintf("parley-dead-%d.fifo", n)),
		Attributes: map[string]string{string(types.QueueAttributeNameFifoQueue): "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dead.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	main, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(fmt.Sprintf("parley-%d.fifo", n)),
		Attributes: map[string]string{
			string(types.QueueAttributeNameFifoQueue):         "true",
			string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibility / time.Second)),
			string(types.QueueAttributeNameRedrivePolicy): fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%s}`,
				attrs.Attributes[string(types.QueueAttributeNameQueueArn)], strconv.Itoa(maxReceives)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sqsfifo.New(client, aws.ToString(main.QueueUrl), aws.ToString(dead.QueueUrl))
}

func TestQueueContract(t *testing.T) {
	// local-aws-sqs 2.0.2 hands out a FIFO group's next message while the head is in
	// flight, counts a visibility change as a receive, and forgets a deduplication id
	// when its message is deleted; SQS does none of these.
	quirks := queuetest.Quirks{NoGroupLock: true, VisibilityChangeCounts: true, DedupOnlyWhileQueued: true}
	queuetest.Run(t, quirks, func(t *testing.T, visibility time.Duration) queuetest.Queue {
		return newQueue(t, visibility, queuetest.MaxReceives)
	})
}
