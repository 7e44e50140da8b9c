package message

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strconv"
)

// The botpress* identifiers are derived, not stored: a hash of the caller's ids gives
// an opaque id that is the same on every request, on every instance, without a read or
// a write. Storing a mapping would cost a DynamoDB call per id per message for nothing
// the caller could observe (see docs/design.md).
//
// Every id is scoped by its channel, so two channels may use the same conversationId
// and messageId without meeting. The default channel derives them as Parley did before
// channels existed, so the ids a deployment has already handed out stay the same.

// DefaultChannel is the channel of a deployment's own settings (PARLEY_TOKEN,
// PARLEY_RESPONSE_ENDPOINT_URL, PARLEY_BOT...), and of every token made before channels.
const DefaultChannel = "default"

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func derive(prefix, channel string, parts ...string) string {
	h := sha256.New()
	if channel != DefaultChannel && channel != "" {
		parts = append([]string{"channel", channel}, parts...)
	}
	for _, p := range parts {
		// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return prefix + idEncoding.EncodeToString(sum[:16])
}

// UserRef is the botpressUserId of the caller's userId.
func UserRef(channel, userID string) string { return derive("user_", channel, "user", userID) }

// ConversationRef is the botpressConversationId of the caller's conversationId. It is
// also the conversation's FIFO message group: its turns run one after another.
func ConversationRef(channel, conversationID string) string {
	return derive("conv_", channel, "conversation", conversationID)
}

// MessageRef is the botpressMessageId of a user message. messageId is unique within a
// conversation, so both ids make the key. It is also the turn's queue deduplication id.
func MessageRef(channel, conversationID, messageID string) string {
	return derive("msg_", channel, "message", conversationID, messageID)
}

// ReplyRef is the botpressMessageId of the index-th (0-based) bot message answering a
// user message, and its webhook-id: the same on every attempt and every redelivery.
func ReplyRef(channel, conversationID, messageID string, index int) string {
	return derive("msg_", channel, "reply", conversationID, messageID, strconv.Itoa(index))
}

// PushRef is the botpressMessageId and webhook-id of a bot message sent into a
// conversation through the API. With an Idempotency-Key it is derived from the key, so
// a retried request makes the same message; without one it is random.
func PushRef(channel, conversationID, idempotencyKey string) string {
	if idempotencyKey == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return "msg_" + idEncoding.EncodeToString(b[:])
	}
	return derive("msg_", channel, "push", conversationID, idempotencyKey)
}
