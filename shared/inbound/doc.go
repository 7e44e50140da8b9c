// Package inbound is Parley's HTTP API as an API Gateway HTTP API (payload 2.0)
// handler: POST / (the Messaging API's user message), a conversation's history, bot
// messages sent into a conversation, erasure, and a delivery's attempt log and replay.
// The same Handler runs in the Lambda, behind the local stack's net/http server and in
// the tests.
//
// POST / accepts and hands off, nothing more: one conditional write de-duplicates the
// message on (channel, conversationId, messageId) and remembers what to replay, one send
// puts its turn in the conversation's FIFO group, and the answer goes back before the
// bot runs. A crash between the two leaves a record without a job: the caller's retry
// finds the record and sends the job then; the queue drops a copy sent within five
// minutes, and the delivery side recognises a later one.
package inbound
