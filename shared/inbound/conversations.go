package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

var errNoConversation = &message.Error{Kind: message.NotFound, Code: "conversation_not_found", Field: "conversationId",
	Message: "no such conversation in this channel"}

// push serves POST /v1/conversations/{conversationId}/messages with a bot token: one
// bot message sent into the conversation at any time — an http bot answering later
// than its turn, a human agent taking over, a reminder. It is queued in the
// conversation's order after the turns already accepted, delivered and signed like an
// answer, kept in the history, and de-duplicated on an optional Idempotency-Key.
func (h *Handler) push(ctx context.Context, r *request) response {
	key := header(r.headers, "idempotency-key")
	if len(key) > maxIdempotencyKey || !printable(key) {
		return fail(&message.Error{Kind: message.Invalid, Code: "invalid_idempotency_key", Field: "Idempotency-Key",
			Message: fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters", maxIdempotencyKey)}, "bad_request")
	}
	body, bad := readBody(r)
	if bad != nil {
		return *bad
	}
	reply, err := message.DecodeBotMessage(body)
	if err != nil {
		return fail(err, "bad_request")
	}
	ch, conversationID := r.token.Channel, r.params[0]
	convRef := message.ConversationRef(ch, conversationID)
	var userID string
	var found bool
	if err := h.call(ctx, func(ctx context.Context) (err error) {
		userID, found, err = h.store.ConversationUser(ctx, ch, convRef)
		return err
	}); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	if !found {
		return fail(errNoConversation, "not_found")
	}
	now := h.now().UTC().Truncate(time.Millisecond)
	sum := sha256.Sum256(append([]byte(reply.Type+"\n"), reply.Payload...))
	rec := message.Record{
		Key:         message.Key{Channel: ch, ConversationRef: convRef, Ref: message.PushRef(ch, conversationID, key)},
		RequestHash: hex.EncodeToString(sum[:]), UserRef: message.UserRef(ch, userID), UserID: userID,
		CreatedAt: now, ExpiresAt: now.Add(h.cfg.RecordTTL),
	}
	job := func(createdAt time.Time) message.Job {
		return message.Job{Kind: message.KindPush, Key: rec.Key, ConversationID: conversationID, UserID: userID, CreatedAt: createdAt, Push: reply}
	}
	answer := func(createdAt time.Time) map[string]any {
		at := createdAt.UTC().Format(time.RFC3339Nano)
		m := map[string]any{"id": rec.Ref, "createdAt": at, "updatedAt": at, "type": reply.Type, "payload": reply.Payload,
			"direction": "outgoing", "userId": rec.UserRef, "conversationId": convRef, "tags": map[string]string{"id": conversationID}}
		return map[string]any{"message": m}
	}
	var existing message.Record
	var accepted bool
	if err := h.call(ctx, func(ctx context.Context) (err error) {
		existing, accepted, err = h.store.Accept(ctx, rec, now)
		return err
	}); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	if accepted {
		return h.send(ctx, job(now), false, answer(now), "pushed")
	}
	if existing.RequestHash != rec.RequestHash {
		return fail(&message.Error{Kind: message.Conflict, Code: "idempotency_key_reused", Field: "Idempotency-Key",
			Message: "Idempotency-Key was already used for a different message in this conversation; use a new key"}, "conflict")
	}
	return h.resend(ctx, existing, now, job(existing.CreatedAt), answer(existing.CreatedAt))
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// eraseConversation serves DELETE /v1/conversations/{conversationId}: its history,
// its records and its pending answers go; queued turns are not run and nothing more is
// delivered. Idempotent: erasing again removes nothing and answers the same way.
func (h *Handler) eraseConversation(ctx context.Context, r *request) response {
	ch, conversationID := r.token.Channel, r.params[0]
	var e message.Erased
	if err := h.erase(ctx, func(ctx context.Context) (err error) {
		e, err = h.store.EraseConversation(ctx, ch, message.ConversationRef(ch, conversationID))
		return err
	}); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	return ok(map[string]any{"conversationId": conversationID, "erased": e}, "erased")
}

// eraseUser serves DELETE /v1/users/{userId}: every conversation of the channel the
// user took part in, erased whole.
func (h *Handler) eraseUser(ctx context.Context, r *request) response {
	ch, userID := r.token.Channel, r.params[0]
	var e message.Erased
	if err := h.erase(ctx, func(ctx context.Context) (err error) {
		e, err = h.store.EraseUser(ctx, ch, message.UserRef(ch, userID))
		return err
	}); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	return ok(map[string]any{"userId": userID, "erased": e}, "erased")
}

// erase runs an erasure with the time it needs: many calls, not one.
func (h *Handler) erase(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, EraseTimeout)
	defer cancel()
	err := f(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("erasure did not finish in %s; call again to go on: %w", EraseTimeout, err)
	}
	return err
}

// EraseTimeout bounds one erasure request, within the function's timeout.
const EraseTimeout = 20 * time.Second
