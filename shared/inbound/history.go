package inbound

import (
	"context"
	"strconv"

	"github.com/parley-chat/parley/shared/message"
)

const (
	defaultHistoryLimit = 20
	maxHistoryLimit     = 100
	maxCursorBytes      = 512
)

// history serves GET /v1/conversations/{conversationId}/messages: the conversation's
// messages, newest first, limit at a time, with an opaque cursor. A turn's messages
// appear once its job has run: the user message with the bot's answers. A conversation
// the channel does not have is a 404.
func (h *Handler) history(ctx context.Context, r *request) response {
	if r.badQuery {
		return fail(message.Invalidf("", "invalid_query", "the query string is malformed"), "bad_request")
	}
	limit := defaultHistoryLimit
	if v := r.query.Get("limit"); r.query.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistoryLimit {
			return fail(message.Invalidf("limit", "invalid_limit", "limit must be a whole number from 1 to %d", maxHistoryLimit), "bad_request")
		}
		limit = n
	}
	cursor := r.query.Get("cursor")
	if len(cursor) > maxCursorBytes {
		return fail(message.Invalidf("cursor", "invalid_cursor", "cursor is not one this API returned"), "bad_request")
	}
	conversationID := r.params[0]
	var entries []message.Entry
	var next string
	err := h.call(ctx, func(ctx context.Context) (err error) {
		entries, next, err = h.store.HistoryPage(ctx, r.token.Channel, message.ConversationRef(r.token.Channel, conversationID), limit, cursor)
		return err
	})
	if err != nil {
		if message.KindOf(err) == message.Invalid {
			return fail(err, "bad_request")
		}
		return fail(unavailable("store_unavailable", err), "store_failed")
	}
	if len(entries) == 0 && cursor == "" {
		// Nothing to show: a conversation whose turns have not run yet, or none at all —
		// including another channel's, which this token must not learn of.
		var found bool
		if err := h.call(ctx, func(ctx context.Context) (err error) {
			_, found, err = h.store.ConversationUser(ctx, r.token.Channel, message.ConversationRef(r.token.Channel, conversationID))
			return err
		}); err != nil {
			return fail(unavailable("store_unavailable", err), "store_failed")
		}
		if !found {
			return fail(errNoConversation, "not_found")
		}
	}
	type item struct {
		message.Entry
		ConversationID string `json:"conversationId"`
	}
	items := make([]item, len(entries))
	for i, e := range entries {
		items[i] = item{e, conversationID}
	}
	body := map[string]any{"messages": items}
	if next != "" {
		body["nextCursor"] = next
	}
	return ok(body, "history")
}
