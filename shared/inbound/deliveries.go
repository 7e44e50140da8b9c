package inbound

import (
	"context"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// delivery serves GET /v1/deliveries/{webhookId}: a bot message's attempt log and
// status. Nothing is recorded for a message delivered at the first try, so it is
// "unknown" — and so is one not tried yet.
func (h *Handler) delivery(ctx context.Context, r *request) response {
	id := r.params[0]
	var l message.DeliveryLog
	var found bool
	if err := h.call(ctx, func(ctx context.Context) (err error) {
		l, found, err = h.store.DeliveryLog(ctx, r.token.Channel, id)
		return err
	}); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	if !found {
		l = message.DeliveryLog{WebhookID: id, Status: message.StatusUnknown, Attempts: []message.Attempt{}}
	}
	return ok(l, "delivery")
}

// replayDelivery serves POST /v1/deliveries/{webhookId}/replay: the bot message is
// sent again — the same webhook-id, a fresh signature — in its conversation's order.
// It is found by its attempt log, or, for one delivered at the first try, in the
// history of the conversation ?conversationId= names.
func (h *Handler) replayDelivery(ctx context.Context, r *request) response {
	if r.badQuery {
		return fail(message.Invalidf("", "invalid_query", "the query string is malformed"), "bad_request")
	}
	ch, id := r.token.Channel, r.params[0]
	var l message.DeliveryLog
	var found bool
	if err := h.call(ctx, func(ctx context.Context) (err error) {
		l, found, err = h.store.DeliveryLog(ctx, ch, id)
		return err
	}); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	var x message.Exchange
	conversationID := r.query.Get("conversationId")
	if conversationID != "" {
		if err := h.call(ctx, func(ctx context.Context) (err error) {
			x, found, err = h.store.FindOutgoing(ctx, ch, message.ConversationRef(ch, conversationID), id)
			return err
		}); err != nil {
			return fail(unavailable("store_unavailable", err), "store_failed")
		}
	} else if found {
		x = message.Exchange{Key: l.Key, CreatedAt: l.CreatedAt, ConversationID: l.ConversationID}
	}
	if !found {
		return fail(&message.Error{Kind: message.NotFound, Code: "delivery_not_found", Field: "webhookId",
			Message: "no such bot message in this channel; for one delivered at the first try, pass ?conversationId= to find it in the history"}, "not_found")
	}
	now := h.now().UTC().Truncate(time.Millisecond)
	rec := message.Record{Key: message.Key{Channel: ch, ConversationRef: x.ConversationRef, Ref: message.PushRef(ch, "replay", "")},
		CreatedAt: now, ExpiresAt: now.Add(h.cfg.RecordTTL)}
	if err := h.call(ctx, func(ctx context.Context) error { _, _, err := h.store.Accept(ctx, rec, now); return err }); err != nil {
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	j := message.Job{Kind: message.KindReplay, Key: rec.Key, ConversationID: x.ConversationID, CreatedAt: now,
		Target: message.Target{Ref: x.Ref, CreatedAt: x.CreatedAt, WebhookID: id}}
	return h.send(ctx, j, false, map[string]any{"webhookId": id, "status": "queued"}, "replay")
}
