package inbound

import (
	"context"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// accept serves POST /: one conditional write that de-duplicates the message and
// remembers what to replay, one send of its turn to the conversation's FIFO group,
// and the answer. The bot runs later, on the delivery side.
//
// A crash between the write and the send leaves a record whose job was never sent;
// the caller's retry finds the record and sends the job then. The send is repeated on
// every replay whose job has not run yet: within five minutes of the first the queue
// drops the copy, and after that the delivery side recognises it.
func (h *Handler) accept(ctx context.Context, r *request) response {
	body, bad := readBody(r)
	if bad != nil {
		return *bad
	}
	in, err := message.DecodeInbound(body)
	if err != nil {
		return fail(err, "bad_request")
	}
	turn := message.NewTurn(r.token.Channel, in)
	now := h.now().UTC().Truncate(time.Millisecond) // as stored
	rec := message.Record{
		Key: turn.Key(), RequestHash: in.Hash(), UserRef: turn.UserRef, UserID: in.UserID,
		CreatedAt: now, ExpiresAt: now.Add(h.cfg.RecordTTL),
	}
	var existing message.Record
	var accepted bool
	err = h.call(ctx, func(ctx context.Context) (err error) {
		existing, accepted, err = h.store.Accept(ctx, rec, now)
		return err
	})
	if err != nil {
		res := fail(unavailable("store_unavailable", err), "store_failed")
		res.note.messageID = in.MessageID
		return res
	}
	if !accepted {
		var res response
		if existing.RequestHash != rec.RequestHash {
			res = fail(&message.Error{Kind: message.Conflict, Code: "message_id_reused", Field: "messageId",
				Message: "messageId was already used for a different message in this conversation; use a new messageId"}, "conflict")
		} else {
			res = h.resend(ctx, existing, now, message.TurnJob(turn, existing.CreatedAt), acceptedBody(turn, existing.CreatedAt))
		}
		res.note.messageID = in.MessageID
		return res
	}
	res := h.send(ctx, message.TurnJob(turn, rec.CreatedAt), false, acceptedBody(turn, rec.CreatedAt), "accepted")
	res.note.messageID = in.MessageID
	return res
}

// resend answers a replay — the same message again — with the first answer, and sends
// its job again when it may not have run: always within the queue's deduplication
// window (a copy is dropped there), and after it only when no exchange shows it ran.
func (h *Handler) resend(ctx context.Context, existing message.Record, now time.Time, j message.Job, body map[string]any) response {
	again := now.Sub(existing.CreatedAt) < resendWindow
	if !again {
		var ran bool
		if err := h.call(ctx, func(ctx context.Context) (err error) { ran, err = h.store.Exchanged(ctx, existing); return err }); err != nil {
			return fail(unavailable("store_unavailable", err), "store_failed")
		}
		again = !ran
	}
	res := ok(body, "replayed")
	if again {
		res = h.send(ctx, j, true, body, "replayed")
	}
	if res.status == 200 {
		res.headers["Idempotent-Replayed"] = "true"
	}
	return res
}

// send hands the job to the queue and answers 200 with body.
func (h *Handler) send(ctx context.Context, j message.Job, resend bool, body map[string]any, outcome string) response {
	if err := h.step("accepted"); err != nil {
		return fail(unavailable("crashed", err), "crashed")
	}
	if err := h.call(ctx, func(ctx context.Context) error { return h.queue.Send(ctx, j, resend) }); err != nil {
		// The record stays: the caller's retry finds it and sends the job then.
		return fail(unavailable("queue_unavailable", err), "queue_failed")
	}
	if err := h.step("sent"); err != nil {
		return fail(unavailable("crashed", err), "crashed")
	}
	return ok(body, outcome)
}

// acceptedBody is the 200 answer: the message, user and conversation, shaped like the
// Botpress objects the original returned, with the derived ids. Parley keeps no user or
// conversation objects, so their times are the message's.
func acceptedBody(turn message.Turn, createdAt time.Time) map[string]any {
	in := turn.Message
	at := createdAt.UTC().Format(time.RFC3339Nano)
	type obj = map[string]any
	return obj{
		"message": obj{
			"id": turn.MessageRef, "createdAt": at, "updatedAt": at, "type": in.Type, "payload": in.Payload,
			"direction": "incoming", "userId": turn.UserRef, "conversationId": turn.ConversationRef,
			"tags": obj{"id": in.MessageID},
		},
		"user":         obj{"id": turn.UserRef, "createdAt": at, "updatedAt": at, "tags": obj{"id": in.UserID}},
		"conversation": obj{"id": turn.ConversationRef, "createdAt": at, "updatedAt": at, "channel": "channel", "tags": obj{"id": in.ConversationID}},
	}
}
