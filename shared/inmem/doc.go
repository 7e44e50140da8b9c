// Package inmem holds the embedded store and queue of the local stack. They keep the
// semantics the code relies on in AWS — DynamoDB's conditional writes, SQS FIFO's
// per-group order, visibility timeout, deduplication window and dead letters — and
// pass the same contract tests as the DynamoDB and SQS adapters.
package inmem
