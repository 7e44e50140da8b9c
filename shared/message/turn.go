package message

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Turn is what a bot sees: one user message and its derived ids.
type Turn struct {
	Channel         string
	Message         Inbound
	UserRef         string // botpressUserId
	ConversationRef string // botpressConversationId
	MessageRef      string // botpressMessageId of the user message
}

// NewTurn derives a turn's ids from the user message.
func NewTurn(channel string, in Inbound) Turn {
	return Turn{
		Channel:         channel,
		Message:         in,
		UserRef:         UserRef(channel, in.UserID),
		ConversationRef: ConversationRef(channel, in.ConversationID),
		MessageRef:      MessageRef(channel, in.ConversationID, in.MessageID),
	}
}

// Key is where an accepted message lives: a user message of a conversation (Ref is its
// MessageRef) or a bot message sent into it through the API (Ref is its PushRef).
func (t Turn) Key() Key {
	return Key{Channel: t.Channel, ConversationRef: t.ConversationRef, Ref: t.MessageRef}
}

// Reply is one bot message: a type of Types and its payload object.
type Reply struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// Check reports a bot message a receiver could not use.
func (r Reply) Check() error {
	if !KnownType(r.Type) {
		return fmt.Errorf("unknown type %q", r.Type)
	}
	return ValidatePayload(r.Type, r.Payload)
}

// Webhook is the outgoing body of the contract: exactly these six fields.
type Webhook struct {
	Type                   string          `json:"type"`
	Payload                json.RawMessage `json:"payload"`
	ConversationID         string          `json:"conversationId"`
	BotpressUserID         string          `json:"botpressUserId"`
	BotpressMessageID      string          `json:"botpressMessageId"`
	BotpressConversationID string          `json:"botpressConversationId"`
}

// Delivery is one bot message as it is POSTed: the webhook body and its headers.
type Delivery struct {
	ID        string // webhook-id: the bot message's botpressMessageId
	Body      []byte // the Webhook, encoded
	InReplyTo string // the caller's messageId this bot message answers; "" for a push
	Index     int    // 1-based position among the answers to InReplyTo
	Count     int    // how many answers InReplyTo has; 0 for a push
}

// Key names an accepted message.
type Key struct {
	Channel         string
	ConversationRef string
	Ref             string
}

// Record is the idempotency record of one accepted message, written once by the
// inbound side with a conditional put. It also keeps the delivery's progress, which is
// written only when an attempt fails: the happy path writes it once.
type Record struct {
	Key
	RequestHash string
	UserRef     string    // so a user's data can be found and erased
	UserID      string    // the caller's userId: a bot message sent later goes to this user
	CreatedAt   time.Time // when it was accepted, to the millisecond: orders the history
	ExpiresAt   time.Time // the record is forgotten after this (DynamoDB TTL)

	Delivered    int       // bot messages delivered before the one that failed last
	Step         int       // what failed last: -1 the bot, i the i-th (0-based) bot message
	Attempts     int       // failed attempts at Step
	FailingSince time.Time // the first failed attempt, zero when none failed
}

// Token is an API token as stored: only its hash.
type Token struct {
	Hash      string // hex SHA-256 of the token
	Name      string
	Channel   string // the channel it acts for; "" is the default channel
	Scope     string // ScopeBackend or ScopeBot; "" is ScopeBackend
	CreatedAt time.Time
}

// Token scopes: a backend posts user messages and reads and erases conversations; a
// bot sends bot messages into conversations.
const (
	ScopeBackend = "backend"
	ScopeBot     = "bot"
)

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

// Exchange is one accepted message as the history keeps it and delivery sends it: a
// user message and the bot's answers to it, or one bot message sent through the API.
// The delivery side writes it once, with a conditional put, before the first POST, so
// a redelivery never runs the bot again and never changes an answer.
type Exchange struct {
	Key
	CreatedAt      time.Time // the record's: orders the conversation's history
	ConversationID string    // the caller's
	UserID         string    // the caller's
	// Entries are the user message (absent for a bot message sent through the API),
	// then the bot messages, in order.
	Entries []Entry
	// Owner is the queue message that ran the turn: another copy of it stands down.
	Owner string
	// Failure says why the turn was given up (the bot kept failing), "" otherwise.
	Failure string
	// Tombstone marks a turn whose conversation was erased while it waited in the
	// queue: when it comes, it is dropped and the tombstone with it.
	Tombstone bool
	ExpiresAt time.Time
}

// Outgoing returns the bot messages, in order.
func (x Exchange) Outgoing() []Entry {
	for i, e := range x.Entries {
		if e.Direction == Outgoing {
			return x.Entries[i:]
		}
	}
	return nil
}

// Delivery returns the i-th (0-based) bot message as it is POSTed.
func (x Exchange) Delivery(i int) (Delivery, error) {
	out := x.Outgoing()
	e := out[i]
	body, err := Marshal(Webhook{
		Type:                   e.Type,
		Payload:                e.Payload,
		ConversationID:         x.ConversationID,
		BotpressUserID:         UserRef(x.Channel, x.UserID),
		BotpressMessageID:      e.ID,
		BotpressConversationID: x.ConversationRef,
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("encode bot message %s: %w", e.ID, err)
	}
	d := Delivery{ID: e.ID, InReplyTo: e.InReplyTo, Body: body}
	if e.InReplyTo != "" {
		d.Index, d.Count = i+1, len(out)
	}
	return d, nil
}

// Answer builds the exchange of a turn the bot answered with replies at now.
func Answer(turn Turn, createdAt time.Time, replies []Reply, now time.Time) Exchange {
	in := turn.Message
	now = now.UTC().Truncate(time.Millisecond) // as stored
	x := Exchange{
		Key: turn.Key(), CreatedAt: createdAt, ConversationID: in.ConversationID, UserID: in.UserID,
		Entries: []Entry{{ID: turn.MessageRef, Direction: Incoming, Type: in.Type, Payload: in.Payload,
			UserID: in.UserID, MessageID: in.MessageID, CreatedAt: createdAt}},
	}
	for i, r := range replies {
		x.Entries = append(x.Entries, Entry{
			ID: ReplyRef(turn.Channel, in.ConversationID, in.MessageID, i), Direction: Outgoing,
			Type: r.Type, Payload: r.Payload, UserID: in.UserID, InReplyTo: in.MessageID, CreatedAt: now,
		})
	}
	return x
}

// Cursor is where a history page ended: in the exchange at (CreatedAt, Ref), after
// Skip of its entries counted newest first. It travels as an opaque string.
type Cursor struct {
	CreatedAt time.Time
	Ref       string
	Skip      int
}

// String encodes the cursor.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d|%s|%d", c.CreatedAt.UnixMilli(), c.Ref, c.Skip))
}

// ParseCursor decodes a cursor; anything String did not make is ErrCursor.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrCursor
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != 3 {
		return Cursor{}, ErrCursor
	}
	ms, err1 := strconv.ParseInt(parts[0], 10, 64)
	skip, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || ms < 0 || skip < 0 || skip > 1000 || !strings.HasPrefix(parts[1], "msg_") {
		return Cursor{}, ErrCursor
	}
	return Cursor{CreatedAt: time.UnixMilli(ms).UTC(), Ref: parts[1], Skip: skip}, nil
}

// Page cuts one history page out of exchanges listed newest first, the first of them
// being the cursor's when there is one: up to limit entries, newest first, and the
// cursor of the next page ("" when there is none). more says whether exchanges
// follow those given.
func Page(exchanges []Exchange, cur Cursor, limit int, more bool) ([]Entry, string) {
	var out []Entry
	for xi, x := range exchanges {
		skip := 0
		if xi == 0 {
			skip = cur.Skip
		}
		n := len(x.Entries)
		for i := n - 1 - skip; i >= 0; i-- {
			if len(out) == limit {
				return out, Cursor{CreatedAt: x.CreatedAt, Ref: x.Ref, Skip: n - 1 - i}.String()
			}
			out = append(out, x.Entries[i])
		}
		if len(out) == limit && (xi < len(exchanges)-1 || more) {
			if xi < len(exchanges)-1 {
				next := exchanges[xi+1]
				return out, Cursor{CreatedAt: next.CreatedAt, Ref: next.Ref}.String()
			}
			return out, Cursor{CreatedAt: x.CreatedAt, Ref: x.Ref, Skip: n}.String()
		}
	}
	return out, ""
}

// Erased says what erasing a conversation or a user removed.
type Erased struct {
	Conversations int `json:"conversations"` // conversations with anything in them
	Messages      int `json:"messages"`      // history entries: user messages and bot messages
	Pending       int `json:"pending"`       // accepted messages whose turn had not run: it will not
}

// Add sums two erasures.
func (e Erased) Add(o Erased) Erased {
	return Erased{e.Conversations + o.Conversations, e.Messages + o.Messages, e.Pending + o.Pending}
}
