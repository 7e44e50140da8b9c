// Package delivery runs the delivery queue's jobs: an SQS event handler with partial
// batch responses. The same Handler runs in the Lambda and in the local stack's poller.
//
// A job is one accepted message. A turn's job runs the bot (once: its answers are
// stored, in one conditional write, before the first POST, so a redelivery, a crash or
// a copy never runs it again and never changes an answer), then POSTs each answer to
// its channel's Response Endpoint; a bot message sent through the API is POSTed as it
// is; a replay POSTs one stored message again.
//
// The jobs of one conversation (one FIFO group) run one after another; when one fails,
// it and the rest of its group in the batch are held back together, so order holds.
// Groups run concurrently, and a group that is done is acknowledged at once, so a slow
// conversation does not hold up the others. Retries are spaced by the visibility
// timeout (exponential backoff with jitter, a receiver's Retry-After up to the maximum
// delay), never by sleeping in the function; when the attempt budget is spent, or a
// failing job has held its conversation longer than the hold limit, it goes to the
// dead-letter queue with the reason, never dropped. A 410, or a long streak of
// failures, disables the endpoint: its jobs wait, uncounted, until it is enabled.
//
// handler.go runs a batch; job.go runs one job up to its answer; settle.go delivers
// and settles failures; operations.go keeps endpoint health, attempt logs and limits.
package delivery
