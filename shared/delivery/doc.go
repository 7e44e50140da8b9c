// Package delivery POSTs queued bot messages to the Response Endpoint URL: an SQS
// event handler with partial batch responses. The same Handler runs in the Lambda and
// in the local stack's worker.
//
// Messages of one conversation (one FIFO group) go one after another; when one fails,
// it and the rest of its group in the batch are reported as failures, so order holds.
// Groups run concurrently and do not hold each other up. Retries are spaced by setting
// the failed message's visibility timeout (exponential backoff with jitter, honouring
// Retry-After), never by sleeping in the function; when the attempt budget is spent,
// or the receiver answers with a permanent status, the message goes to the dead-letter
// queue with the reason, never dropped.
package delivery
