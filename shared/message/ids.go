package message

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
)

// The botpress* identifiers are derived, not stored: a hash of the caller's ids gives
// an opaque id that is the same on every request, on every instance, without a read or
// a write. Storing a mapping would cost a DynamoDB call per id per message for nothing
// the caller could observe (see docs/design.md).

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func derive(prefix string, parts ...string) string {
	h := sha256.New()
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
func UserRef(userID string) string { return derive("user_", "user", userID) }

// ConversationRef is the botpressConversationId of the caller's conversationId.
func ConversationRef(conversationID string) string {
	return derive("conv_", "conversation", conversationID)
}

// MessageRef is the botpressMessageId of a user message. messageId is unique within a
// conversation, so both ids make the key.
func MessageRef(conversationID, messageID string) string {
	return derive("msg_", "message", conversationID, messageID)
}

// ReplyRef is the botpressMessageId of the index-th (0-based) bot message answering a
// user message. It is also the webhook-id and the SQS deduplication id, so a retried
// turn re-enqueues the same ids and the queue drops the copies.
func ReplyRef(conversationID, messageID string, index int) string {
	return derive("msg_", "reply", conversationID, messageID, strconv.Itoa(index))
}
