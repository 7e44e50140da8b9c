package inbound

import (
	"context"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

const (
	historyPrefix       = "/v1/conversations/"
	historySuffix       = "/messages"
	defaultHistoryLimit = 20
	maxHistoryLimit     = 100
)

// historyRoute matches /v1/conversations/{conversationId}/messages and returns the
// unescaped conversationId.
func historyRoute(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, historyPrefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, historySuffix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	id, err := url.PathUnescape(id)
	return id, err == nil && id != ""
}

// listHistory answers GET /v1/conversations/{conversationId}/messages: the
// conversation's messages, newest first, limit at a time, with an opaque cursor.
func (h *Handler) listHistory(ctx context.Context, conversationID string, params map[string]string, rawQuery string) (events.APIGatewayV2HTTPResponse, note) {
	if params == nil && rawQuery != "" {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return errorResponse(message.Invalidf("", "invalid_query", "the query string is malformed")), note{outcome: "bad_request"}
		}
		params = map[string]string{}
		for k := range q {
			params[k] = q.Get(k)
		}
	}
	limit := defaultHistoryLimit
	if v, ok := params["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistoryLimit {
			return errorResponse(message.Invalidf("limit", "invalid_limit", "limit must be a whole number from 1 to %d", maxHistoryLimit)), note{outcome: "bad_request"}
		}
		limit = n
	}
	after := ""
	if c := params["cursor"]; c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || !strings.Contains(string(b), "#") {
			return errorResponse(message.Invalidf("cursor", "invalid_cursor", "cursor is not one this API returned")), note{outcome: "bad_request"}
		}
		after = string(b)
	}
	entries, next, err := h.cfg.History.HistoryPage(ctx, message.ConversationRef(conversationID), limit, after)
	if err != nil {
		return errorResponse(unavailable("store_unavailable", err)), note{outcome: "store_failed", err: err}
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
		body["nextCursor"] = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	b, err := message.Marshal(body)
	if err != nil {
		return errorResponse(err), note{outcome: "internal", err: err}
	}
	return jsonResponse(200, b), note{outcome: "history"}
}
