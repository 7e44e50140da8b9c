// Package inbound accepts user messages: the Messaging API's POST / as an API Gateway
// HTTP API (payload 2.0) handler. The same Handler runs in the Lambda, behind the local
// stack's net/http server and in the tests.
//
// Each message is processed at most once per (conversationId, messageId), with an
// idempotency record in the Powertools style: a conditional put takes an in-progress
// lease, the bot runs, its messages are enqueued, and the record is completed with the
// response to replay. A crash anywhere leaves either no record or a lease that expires,
// after which a retry redoes the turn; the bot messages carry deterministic ids, so the
// FIFO queue drops the copies a redo enqueues again.
package inbound
