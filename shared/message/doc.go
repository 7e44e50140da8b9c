// Package message is Parley's domain: the inbound user message of the Messaging API
// wire contract, the bot's replies, the outgoing webhook body, the idempotency record
// and the error kinds every transport maps to a status. It imports nothing from AWS.
package message
