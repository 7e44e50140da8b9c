package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kinds of job.
const (
	KindTurn = "turn" // a user message: the bot answers it, then its answers are delivered
	KindPush = "push" // a bot message sent into a conversation through the API: delivered as it is
	// KindReplay sends one bot message again, the same webhook-id with a fresh
	// signature: an operator's replay of a delivery.
	KindReplay = "replay"
)

// Job is one accepted message on its way through the delivery queue, in its
// conversation's FIFO group: the unit the delivery side runs, retries and, when it
// cannot be done, dead-letters.
type Job struct {
	Kind string
	Key
	ConversationID string
	UserID         string
	CreatedAt      time.Time
	Message        Inbound // KindTurn: the user message
	Push           Reply   // KindPush: the bot message
	Target         Target  // KindReplay: the bot message to send again
}

// TurnJob is the job of an accepted user message.
func TurnJob(turn Turn, createdAt time.Time) Job {
	return Job{Kind: KindTurn, Key: turn.Key(), ConversationID: turn.Message.ConversationID,
		UserID: turn.Message.UserID, CreatedAt: createdAt, Message: turn.Message}
}

// DedupID is the job's queue deduplication id: its ref and the time it was accepted.
// A replay's copy carries the same (the record's time) and the queue drops it; the
// same message accepted again after its conversation was erased has a new time, so
// its job is not mistaken for the erased one's.
func (j Job) DedupID() string { return fmt.Sprintf("%s.%d", j.Ref, j.CreatedAt.UnixMilli()) }

// Turn is the bot's view of a turn job: its key holds the refs already derived.
func (j Job) Turn() Turn {
	return Turn{Channel: j.Channel, Message: j.Message, UserRef: UserRef(j.Channel, j.UserID), ConversationRef: j.ConversationRef, MessageRef: j.Ref}
}

// Queue message attributes beside a job. The body is the job itself.
const (
	AttrKind     = "parley-kind"
	AttrResend   = "parley-resend"   // "true": sent again by a replayed request; it may be a second copy
	AttrRedriven = "parley-redriven" // "true": back from the dead-letter queue; it takes the turn over

	// Dead letters only.
	AttrFailureReason = "parley-failure-reason"
	AttrAttempts      = "parley-attempts"
	AttrFailedAt      = "parley-failed-at"    // RFC 3339
	AttrOvertakenBy   = "parley-overtaken-by" // the messages delivered past it, when it held them too long
)

// jobVersion is the body's format: a function that meets a newer one dead-letters it
// with the reason rather than guessing.
const jobVersion = 1

type jobBody struct {
	V              int         `json:"v"`
	Kind           string      `json:"kind"`
	Channel        string      `json:"channel"`
	ConversationID string      `json:"conversationId"`
	UserID         string      `json:"userId"`
	Ref            string      `json:"ref"`
	CreatedAt      time.Time   `json:"createdAt"`
	Message        *jobMessage `json:"message,omitempty"`
	Push           *Reply      `json:"push,omitempty"`
	Target         *Target     `json:"target,omitempty"`
}

type jobMessage struct {
	MessageID string          `json:"messageId"`
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Payload   json.RawMessage `json:"payload"`
}

// EncodeJob is the queue message body of j.
func EncodeJob(j Job) ([]byte, error) {
	b := jobBody{V: jobVersion, Kind: j.Kind, Channel: j.Channel, ConversationID: j.ConversationID,
		UserID: j.UserID, Ref: j.Ref, CreatedAt: j.CreatedAt.UTC()}
	switch j.Kind {
	case KindTurn:
		m := j.Message
		b.Message = &jobMessage{MessageID: m.MessageID, Type: m.Type, Text: m.Text, Payload: m.Payload}
	case KindPush:
		b.Push = &j.Push
	case KindReplay:
		t := j.Target
		t.CreatedAt = t.CreatedAt.UTC()
		b.Target = &t
	default:
		return nil, fmt.Errorf("encode job: unknown kind %q", j.Kind)
	}
	return Marshal(b)
}

// ErrJob marks a queue message that is not a job this version can run.
var ErrJob = errors.New("not a Parley job")

// DecodeJob parses a queue message body.
func DecodeJob(body []byte) (Job, error) {
	var b jobBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return Job{}, fmt.Errorf("%w: %v", ErrJob, jsonErrText(err))
	}
	if b.V != jobVersion {
		return Job{}, fmt.Errorf("%w: format version %d, want %d", ErrJob, b.V, jobVersion)
	}
	j := Job{Kind: b.Kind, Key: Key{Channel: b.Channel, ConversationRef: ConversationRef(b.Channel, b.ConversationID), Ref: b.Ref},
		ConversationID: b.ConversationID, UserID: b.UserID, CreatedAt: b.CreatedAt}
	if b.Channel == "" || b.ConversationID == "" || b.Ref == "" || b.CreatedAt.IsZero() {
		return Job{}, fmt.Errorf("%w: channel, conversationId, ref and createdAt are required", ErrJob)
	}
	switch {
	case b.Kind == KindTurn && b.Message != nil:
		m := b.Message
		j.Message = Inbound{UserID: b.UserID, MessageID: m.MessageID, ConversationID: b.ConversationID, Type: m.Type, Text: m.Text, Payload: m.Payload}
		if m.MessageID == "" || b.UserID == "" {
			return Job{}, fmt.Errorf("%w: a turn needs userId and message.messageId", ErrJob)
		}
		if want := MessageRef(b.Channel, b.ConversationID, m.MessageID); b.Ref != want {
			return Job{}, fmt.Errorf("%w: ref does not match the message", ErrJob)
		}
		if err := (Reply{Type: m.Type, Payload: m.Payload}).Check(); err != nil {
			return Job{}, fmt.Errorf("%w: message: %v", ErrJob, err)
		}
	case b.Kind == KindPush && b.Push != nil:
		j.Push = *b.Push
		if err := j.Push.Check(); err != nil {
			return Job{}, fmt.Errorf("%w: push: %v", ErrJob, err)
		}
	case b.Kind == KindReplay && b.Target != nil:
		j.Target = *b.Target
		if j.Target.Ref == "" || j.Target.WebhookID == "" || j.Target.CreatedAt.IsZero() {
			return Job{}, fmt.Errorf("%w: a replay needs its target's ref, time and webhook id", ErrJob)
		}
	default:
		return Job{}, fmt.Errorf("%w: kind %q without its message", ErrJob, b.Kind)
	}
	return j, nil
}
