package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/dynamo"
)

// Resources are a table, a FIFO queue and its FIFO dead-letter queue, as the stack
// deploys them.
type Resources struct {
	Table, QueueURL, DeadLetterQueueURL string
}

// Env is the local stack's variables for r.
func (r Resources) Env() []string {
	return []string{"PARLEY_TABLE_NAME=" + r.Table, "PARLEY_QUEUE_URL=" + r.QueueURL, "PARLEY_DEAD_LETTER_QUEUE_URL=" + r.DeadLetterQueueURL}
}

// CreateResources creates them, named after name, with the queue's visibility timeout
// in seconds.
func CreateResources(ctx context.Context, ddb *dynamodb.Client, sq *sqs.Client, name string, visibility int) (Resources, error) {
	r := Resources{Table: name}
	if err := dynamo.CreateTable(ctx, ddb, name); err != nil {
		return r, err
	}
	var err error
	r.QueueURL, r.DeadLetterQueueURL, err = CreateQueues(ctx, sq, name, visibility)
	return r, err
}

// CreateQueues creates the FIFO queue name.fifo and its dead-letter queue
// name-dlq.fifo, and returns their URLs. The redrive policy is only the backstop, set
// far above any retry budget: local-aws-sqs counts visibility changes as receives.
func CreateQueues(ctx context.Context, sq *sqs.Client, name string, visibility int) (queueURL, deadLetterURL string, err error) {
	dead, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq.fifo"),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"}})
	if err != nil {
		return "", "", fmt.Errorf("create dead-letter queue: %w", err)
	}
	main, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + ".fifo"), Attributes: map[string]string{
		string(sqstypes.QueueAttributeNameFifoQueue):         "true",
		string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(visibility),
		string(sqstypes.QueueAttributeNameRedrivePolicy):     `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:` + name + `-dlq.fifo","maxReceiveCount":1000}`,
	}})
	if err != nil {
		return "", "", fmt.Errorf("create queue: %w", err)
	}
	return aws.ToString(main.QueueUrl), aws.ToString(dead.QueueUrl), nil
}
