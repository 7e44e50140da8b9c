package message

import (
	"encoding/json"
	"fmt"
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

// Direction of a history entry, as in the Botpress message objects.
const (
	Incoming = "incoming" // from the user
	Outgoing = "outgoing" // from the bot
)

// Entry is one message of a conversation's history.
type Entry struct {
	ID        string          `json:"id"` // botpressMessageId
	Direction string          `json:"direction"`
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	UserID    string          `json:"userId"`              // the caller's userId
	MessageID string          `json:"messageId,omitempty"` // incoming: the caller's messageId
	InReplyTo string          `json:"inReplyTo,omitempty"` // outgoing: the caller's messageId it answers
	CreatedAt time.Time       `json:"createdAt"`
	// Seq orders the entries of one turn: 0 for the user message, then the replies.
	Seq int `json:"-"`
}

// SortKey orders entries in a conversation: by time, then by position in the turn.
// It is also the opaque pagination cursor's content.
func (e Entry) SortKey() string {
	return fmt.Sprintf("%013d.%03d#%s", e.CreatedAt.UnixMilli(), e.Seq, e.ID)
}

// Text is what a language model reads of an entry: the text, or for other types
// the payload's text when it has one, else the type.
func (e Entry) Text() string {
	var p struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(e.Payload, &p) == nil && p.Text != "" {
		return p.Text
	}
	return "[" + e.Type + "]"
}
