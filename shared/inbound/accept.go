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
		Key: turn.Key(), RequestHash: in.Hash(), UserRef: turn.UserRef,
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
		res := h.replay(ctx, turn, existing, rec, now)
		res.note.messageID = in.MessageID
		return res
	}
	res := h.send(ctx, message.TurnJob(turn, rec.CreatedAt), false, turn, rec.CreatedAt, "accepted")
	res.note.messageID = in.MessageID
	return res
}

func (h *Handler) replay(ctx context.Context, turn message.Turn, existing, rec message.Record, now time.Time) response {
	if existing.RequestHash != rec.RequestHash {
		return fail(&message.Error{Kind: message.Conflict, Code: "message_id_reused", Field: "messageId",
			Message: "messageId was already used for a different message in this conversation; use a new messageId"}, "conflict")
	}
	resend := now.Sub(existing.CreatedAt) < resendWindow
	if !resend {
		// Past the queue's deduplication window a copy would not be dropped: send one
		// only if the job has not run, which it nearly always has.
		var ran bool
		if err := h.call(ctx, func(ctx context.Context) (err error) { ran, err = h.store.Exchanged(ctx, existing); return err }); err != nil {
			return fail(unavailable("store_unavailable", err), "store_failed")
		}
		resend = !ran
	}
	if !resend {
		return replayed(acceptedBody(turn, existing.CreatedAt))
	}
	res := h.send(ctx, message.TurnJob(turn, existing.CreatedAt), true, turn, existing.CreatedAt, "replayed")
	if res.status == 200 {
		res.headers["Idempotent-Replayed"] = "true"
	}
	return res
}

// send hands the job to the queue and answers 200 with the accepted body.
func (h *Handler) send(ctx context.Context, j message.Job, resend bool, turn message.Turn, createdAt time.Time, outcome string) response {
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
	return ok(acceptedBody(turn, createdAt), outcome)
}

func replayed(body map[string]any) response {
	res := ok(body, "replayed")
	res.headers["Idempotent-Replayed"] = "true"
	return res
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
