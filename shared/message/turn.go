package message

import (
	"encoding/json"
	"time"
)

// Turn is what a bot sees: one user message and its derived ids.
type Turn struct {
	Message         Inbound
	UserRef         string // botpressUserId
	ConversationRef string // botpressConversationId
	MessageRef      string // botpressMessageId of the user message
}

// Reply is one bot message: a type of Types and its payload object.
type Reply struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// Webhook is the outgoing body of CONTRACT.md §2: exactly these six fields.
type Webhook struct {
	Type                   string          `json:"type"`
	Payload                json.RawMessage `json:"payload"`
	ConversationID         string          `json:"conversationId"`
	BotpressUserID         string          `json:"botpressUserId"`
	BotpressMessageID      string          `json:"botpressMessageId"`
	BotpressConversationID string          `json:"botpressConversationId"`
}

// Delivery is one bot message handed to the delivery queue: the exact webhook body and
// what delivery needs beside it.
type Delivery struct {
	ID        string // webhook-id and queue deduplication id: ReplyRef
	GroupID   string // the conversation: messages of one group are delivered in order
	InReplyTo string // the caller's messageId this bot message answers
	Index     int    // 1-based position among the answers to InReplyTo
	Count     int    // how many answers InReplyTo has
	Body      []byte // the Webhook, encoded
}

// Status of an idempotency record.
type Status string

// Record statuses (Powertools semantics).
const (
	InProgress Status = "INPROGRESS"
	Completed  Status = "COMPLETED"
)

// Record is the idempotency record of one user message, keyed by its MessageRef.
type Record struct {
	Key         string
	Status      Status
	RequestHash string
	LeaseID     string    // who holds an in-progress record
	LeaseUntil  time.Time // an in-progress record may be taken over after this
	ExpiresAt   time.Time // the record is forgotten after this (DynamoDB TTL)
	Response    []byte    // the 200 body to replay, once completed
}

// Token is an API token as stored: only its hash.
type Token struct {
	Hash      string // hex SHA-256 of the token
	Name      string
	CreatedAt time.Time
}

// ID is the short public handle of a token, used to list and revoke it.
func (t Token) ID() string {
	if len(t.Hash) < 12 {
		return t.Hash
	}
	return t.Hash[:12]
}
