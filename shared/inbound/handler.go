package inbound

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// Records stores idempotency records with conditional writes.
type Records interface {
	// Acquire writes rec unless a live record exists for rec.Key: one that has not
	// expired and is completed or in progress under an unexpired lease. When it
	// exists, Acquire returns it with acquired false.
	Acquire(ctx context.Context, rec message.Record, now time.Time) (existing message.Record, acquired bool, err error)
	// Complete marks the record completed with the response to replay, if leaseID
	// still holds it; otherwise it returns message.ErrLeaseLost.
	Complete(ctx context.Context, key, leaseID string, response []byte, expiresAt time.Time) error
	// Release deletes the record if leaseID still holds it, so a retry can run.
	Release(ctx context.Context, key, leaseID string) error
}

// Queue hands bot messages to delivery.
type Queue interface {
	// Send enqueues all messages, in order. Messages whose ID was sent recently are
	// dropped as duplicates.
	Send(ctx context.Context, msgs []message.Delivery) error
}

// Bot answers a turn with zero or more messages before ctx's deadline.
type Bot interface {
	Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error)
}

// Authenticator checks an API token.
type Authenticator interface {
	// Authenticate returns nil for a valid token, an error of kind Unauthorized for
	// an unknown one, and any other error when it cannot tell.
	Authenticate(ctx context.Context, token string) error
}

// History keeps every accepted user message and every bot message per conversation.
type History interface {
	AppendHistory(ctx context.Context, conversationRef string, entries []message.Entry, expiresAt time.Time) error
	HistoryPage(ctx context.Context, conversationRef string, limit int, after string) ([]message.Entry, string, error)
}

// Config tunes the handler; zero values take the defaults.
type Config struct {
	// History, when set, records each turn after it completes and serves
	// GET /v1/conversations/{conversationId}/messages.
	History    History
	HistoryTTL time.Duration // default 30 days
	RecordTTL  time.Duration // how long a messageId is remembered; default 7 days
	BotTimeout time.Duration // default 10s
	// Lease is how long an in-progress record blocks duplicates before a retry may take
	// over. It must outlast the bot and the enqueue; default BotTimeout + 10s.
	Lease time.Duration
}

// Handler serves the inbound contract.
type Handler struct {
	records Records
	queue   Queue
	bot     Bot
	auth    Authenticator
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	// crash, when set by tests, is called between the steps of a turn; returning an
	// error aborts the turn there as a crash would, leaving the record as it is.
	crash func(step string) error
}

// maxRetryAfter caps the Retry-After of a 409 in_progress.
const maxRetryAfter = 2 * time.Second

// New returns a Handler. log receives one line per request.
func New(records Records, queue Queue, bot Bot, auth Authenticator, cfg Config, log *slog.Logger) *Handler {
	if cfg.RecordTTL <= 0 {
		cfg.RecordTTL = 7 * 24 * time.Hour
	}
	if cfg.BotTimeout <= 0 {
		cfg.BotTimeout = 10 * time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = cfg.BotTimeout + 10*time.Second
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = 30 * 24 * time.Hour
	}
	return &Handler{records: records, queue: queue, bot: bot, auth: auth, cfg: cfg, log: log, now: time.Now}
}

// Handle serves one API Gateway HTTP API request. It never returns an error: every
// failure is a JSON answer, so API Gateway never turns it into an opaque 500.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := time.Now()
	res, note := h.serve(ctx, req)
	attrs := []slog.Attr{
		// The Lambda logger adds the invocation's requestId; this is API Gateway's.
		slog.String("apiRequestId", req.RequestContext.RequestID),
		slog.String("method", req.RequestContext.HTTP.Method),
		slog.Int("status", res.StatusCode),
		slog.String("outcome", note.outcome),
		slog.Float64("latencyMs", float64(time.Since(start).Microseconds())/1000),
	}
	if note.messageID != "" {
		attrs = append(attrs, slog.String("messageId", note.messageID))
	}
	if note.replies > 0 {
		attrs = append(attrs, slog.Int("replies", note.replies))
	}
	level := slog.LevelInfo
	if note.err != nil {
		// The cause of a 5xx: from our adapters, never the caller's text or token.
		attrs = append(attrs, slog.String("error", note.err.Error()))
		if res.StatusCode >= 500 {
			level = slog.LevelError
		}
	}
	h.log.LogAttrs(ctx, level, "inbound", attrs...)
	return res, nil
}

// note is what the log line says about a request.
type note struct {
	outcome   string
	messageID string
	replies   int
	err       error
}

func (h *Handler) serve(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, note) {
	path := routePath(req)
	method := req.RequestContext.HTTP.Method
	conversationID, isHistory := historyRoute(path)
	isHistory = isHistory && h.cfg.History != nil
	allow := "POST"
	if isHistory {
		allow = "GET"
	}
	if path != "/" && !isHistory {
		return errorResponse(&message.Error{Kind: message.NotFound, Code: "not_found", Message: "no such path; POST messages to the root of the webhook URL"}), note{outcome: "not_found"}
	}
	if method != allow {
		res := errorResponse(&message.Error{Kind: message.MethodNotAllowed, Code: "method_not_allowed", Message: fmt.Sprintf("method %s is not allowed; use %s", clipMethod(method), allow)})
		res.Headers["Allow"] = allow
		return res, note{outcome: "method_not_allowed"}
	}
	if err := h.authenticate(ctx, header(req.Headers, "authorization")); err != nil {
		return errorResponse(err), note{outcome: "unauthorized", err: causeOf(err)}
	}
	if isHistory {
		return h.listHistory(ctx, conversationID, req.QueryStringParameters, req.RawQueryString)
	}
	body, err := requestBody(req)
	if err != nil {
		outcome := "bad_request"
		if message.KindOf(err) == message.TooLarge {
			outcome = "too_large"
		}
		return errorResponse(err), note{outcome: outcome}
	}
	in, err := message.DecodeInbound(body)
	if err != nil {
		return errorResponse(err), note{outcome: "bad_request"}
	}
	return h.accept(ctx, in)
}

func (h *Handler) authenticate(ctx context.Context, authorization string) error {
	if authorization == "" {
		return &message.Error{Kind: message.Unauthorized, Code: "missing_token", Message: "the Authorization header is missing; send Authorization: bearer <token>"}
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return &message.Error{Kind: message.Unauthorized, Code: "invalid_authorization", Message: "the Authorization header must be: bearer <token>"}
	}
	if err := h.auth.Authenticate(ctx, token); err != nil {
		if message.KindOf(err) == message.Unauthorized {
			return &message.Error{Kind: message.Unauthorized, Code: "invalid_token", Message: "the token is not valid"}
		}
		return &message.Error{Kind: message.Unavailable, Code: "auth_unavailable", Message: "the token could not be checked; retry later", Err: err}
	}
	return nil
}

func (h *Handler) accept(ctx context.Context, in message.Inbound) (events.APIGatewayV2HTTPResponse, note) {
	n := note{messageID: in.MessageID}
	now := h.now()
	turn := message.Turn{
		Message:         in,
		UserRef:         message.UserRef(in.UserID),
		ConversationRef: message.ConversationRef(in.ConversationID),
		MessageRef:      message.MessageRef(in.ConversationID, in.MessageID),
	}
	rec := message.Record{
		Key:         turn.MessageRef,
		Status:      message.InProgress,
		RequestHash: in.Hash(),
		LeaseID:     newLeaseID(),
		LeaseUntil:  now.Add(h.cfg.Lease),
		ExpiresAt:   now.Add(h.cfg.RecordTTL),
	}
	existing, acquired, err := h.records.Acquire(ctx, rec, now)
	if err != nil {
		n.outcome, n.err = "store_failed", err
		return errorResponse(unavailable("store_unavailable", err)), n
	}
	if !acquired {
		return h.duplicate(existing, rec, now, n)
	}

	fail := func(outcome string, e *message.Error) (events.APIGatewayV2HTTPResponse, note) {
		// Release the lease so the caller's retry can run the turn at once. If the
		// release fails too, the lease expires on its own.
		if err := h.records.Release(context.WithoutCancel(ctx), rec.Key, rec.LeaseID); err != nil && !errors.Is(err, message.ErrLeaseLost) {
			e.Err = errors.Join(e.Err, fmt.Errorf("release lease: %w", err))
		}
		n.outcome, n.err = outcome, e.Err
		return errorResponse(e), n
	}
	if err := h.step("leased"); err != nil {
		n.outcome, n.err = "crashed", err
		return errorResponse(unavailable("crashed", err)), n
	}

	botCtx, cancel := context.WithTimeout(ctx, h.cfg.BotTimeout)
	replies, err := h.bot.Reply(botCtx, turn)
	cancel()
	if err == nil {
		err = checkReplies(replies)
	}
	if err != nil {
		var busy *message.BotBusyError
		if errors.As(err, &busy) {
			return fail("bot_busy", &message.Error{Kind: message.Unavailable, Code: "bot_unavailable", RetryAfter: busy.RetryAfter,
				Message: "the bot is overloaded or rate limited; retry with the same messageId later", Err: err})
		}
		msg := "the bot failed to answer; retry with the same messageId"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "the bot did not answer in time; retry with the same messageId"
		}
		return fail("bot_failed", &message.Error{Kind: message.BotFailed, Code: "bot_failed", Message: msg, Err: err})
	}
	deliveries, err := deliveriesFor(turn, replies)
	if err != nil {
		return fail("bot_failed", &message.Error{Kind: message.BotFailed, Code: "bot_failed", Message: "the bot answered with a message that cannot be sent", Err: err})
	}
	if len(deliveries) > 0 {
		if err := h.queue.Send(ctx, deliveries); err != nil {
			return fail("queue_failed", unavailable("queue_unavailable", err))
		}
	}
	n.replies = len(deliveries)
	if err := h.step("enqueued"); err != nil {
		n.outcome, n.err = "crashed", err
		return errorResponse(unavailable("crashed", err)), n
	}

	body, err := acceptedBody(turn, now)
	if err != nil {
		return fail("internal", &message.Error{Kind: message.Internal, Code: "internal", Message: "internal error", Err: err})
	}
	if err := h.records.Complete(ctx, rec.Key, rec.LeaseID, body, rec.ExpiresAt); err != nil {
		if errors.Is(err, message.ErrLeaseLost) {
			// A retry took over after our lease ran out and redoes the same turn; the
			// queue de-duplicates what both of us enqueued. Our answer is still true.
			n.outcome, n.err = "accepted_lease_lost", err
			return jsonResponse(200, body), n
		}
		// The messages are enqueued but the record is not completed: answer 5xx so the
		// caller retries; after the lease the retry redoes the turn and the queue
		// drops the re-enqueued copies.
		n.outcome, n.err = "store_failed", err
		return errorResponse(unavailable("store_unavailable", err)), n
	}
	n.outcome = "accepted"
	if err := h.recordHistory(ctx, turn, deliveries, now); err != nil {
		// The turn is done and answered; only its history entry is missing.
		n.outcome, n.err = "accepted_history_failed", err
	}
	return jsonResponse(200, body), n
}

// recordHistory appends the turn — the user message and the bot's — to the
// conversation's history. It runs once per turn, after the record is completed.
func (h *Handler) recordHistory(ctx context.Context, turn message.Turn, deliveries []message.Delivery, now time.Time) error {
	if h.cfg.History == nil {
		return nil
	}
	in := turn.Message
	entries := []message.Entry{{ID: turn.MessageRef, Direction: message.Incoming, Type: in.Type, Payload: in.Payload,
		UserID: in.UserID, MessageID: in.MessageID, CreatedAt: now}}
	for i, d := range deliveries {
		var w message.Webhook
		if err := json.Unmarshal(d.Body, &w); err != nil {
			return fmt.Errorf("history: decode reply %d: %w", i, err)
		}
		entries = append(entries, message.Entry{ID: d.ID, Direction: message.Outgoing, Type: w.Type, Payload: w.Payload,
			UserID: in.UserID, InReplyTo: in.MessageID, CreatedAt: now, Seq: i + 1})
	}
	return h.cfg.History.AppendHistory(ctx, turn.ConversationRef, entries, now.Add(h.cfg.HistoryTTL))
}

func (h *Handler) duplicate(existing, rec message.Record, now time.Time, n note) (events.APIGatewayV2HTTPResponse, note) {
	if existing.RequestHash != rec.RequestHash {
		n.outcome = "conflict"
		return errorResponse(&message.Error{Kind: message.Conflict, Code: "message_id_reused", Field: "messageId",
			Message: "messageId was already used for a different message in this conversation; use a new messageId"}), n
	}
	if existing.Status == message.Completed {
		n.outcome = "replayed"
		res := jsonResponse(200, existing.Response)
		res.Headers["Idempotent-Replayed"] = "true"
		return res, n
	}
	// Most turns finish in well under a second: ask for a retry soon, not at the end of
	// the lease, which only matters when the first attempt crashed.
	wait := min(max(existing.LeaseUntil.Sub(now), time.Second), maxRetryAfter)
	n.outcome = "in_progress"
	return errorResponse(&message.Error{Kind: message.Conflict, Code: "in_progress", Field: "messageId", RetryAfter: wait,
		Message: "a message with this messageId is still being processed; retry after the delay in Retry-After"}), n
}

func (h *Handler) step(name string) error {
	if h.crash == nil {
		return nil
	}
	return h.crash(name)
}

func checkReplies(replies []message.Reply) error {
	for i, r := range replies {
		if !message.KnownType(r.Type) {
			return fmt.Errorf("reply %d: unknown type %q", i, r.Type)
		}
		if err := message.ValidatePayload(r.Type, r.Payload); err != nil {
			return fmt.Errorf("reply %d: %w", i, err)
		}
	}
	return nil
}

func deliveriesFor(turn message.Turn, replies []message.Reply) ([]message.Delivery, error) {
	out := make([]message.Delivery, 0, len(replies))
	for i, r := range replies {
		id := message.ReplyRef(turn.Message.ConversationID, turn.Message.MessageID, i)
		body, err := message.Marshal(message.Webhook{
			Type:                   r.Type,
			Payload:                r.Payload,
			ConversationID:         turn.Message.ConversationID,
			BotpressUserID:         turn.UserRef,
			BotpressMessageID:      id,
			BotpressConversationID: turn.ConversationRef,
		})
		if err != nil {
			return nil, fmt.Errorf("encode reply %d: %w", i, err)
		}
		out = append(out, message.Delivery{
			ID: id, GroupID: turn.ConversationRef, InReplyTo: turn.Message.MessageID,
			Index: i + 1, Count: len(replies), Body: body,
		})
	}
	return out, nil
}

// acceptedBody is the 200 answer: the message, user and conversation, shaped like the
// Botpress objects the original returned, with the derived ids.
func acceptedBody(turn message.Turn, now time.Time) ([]byte, error) {
	in := turn.Message
	created := now.UTC().Format(time.RFC3339Nano)
	type obj = map[string]any
	return message.Marshal(obj{
		"message": obj{
			"id": turn.MessageRef, "createdAt": created, "type": in.Type, "payload": in.Payload,
			"direction": "incoming", "userId": turn.UserRef, "conversationId": turn.ConversationRef,
			"tags": obj{"id": in.MessageID},
		},
		"user":         obj{"id": turn.UserRef, "tags": obj{"id": in.UserID}},
		"conversation": obj{"id": turn.ConversationRef, "channel": "channel", "tags": obj{"id": in.ConversationID}},
	})
}

// routePath is the request path without the stage prefix API Gateway adds for named
// stages.
func routePath(req events.APIGatewayV2HTTPRequest) string {
	p := req.RawPath
	if p == "" {
		p = req.RequestContext.HTTP.Path
	}
	if stage := req.RequestContext.Stage; stage != "" && stage != "$default" {
		if rest, ok := strings.CutPrefix(p, "/"+stage); ok && (rest == "" || rest[0] == '/') {
			p = rest
		}
	}
	if p == "" {
		p = "/"
	}
	return p
}

func requestBody(req events.APIGatewayV2HTTPRequest) ([]byte, error) {
	tooLarge := &message.Error{Kind: message.TooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("the request body is over the limit of %d bytes", message.MaxBodyBytes)}
	if !req.IsBase64Encoded {
		if len(req.Body) > message.MaxBodyBytes {
			return nil, tooLarge
		}
		return []byte(req.Body), nil
	}
	if base64.StdEncoding.DecodedLen(len(req.Body)) > message.MaxBodyBytes+3 {
		return nil, tooLarge
	}
	body, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, message.Invalidf("", "invalid_encoding", "the base64-encoded request body could not be decoded")
	}
	if len(body) > message.MaxBodyBytes {
		return nil, tooLarge
	}
	return body, nil
}

// header finds a header by name; API Gateway lowercases names, other callers may not.
func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func unavailable(code string, err error) *message.Error {
	return &message.Error{Kind: message.Unavailable, Code: code, Message: "the message could not be processed now; retry with the same messageId", Err: err}
}

func causeOf(err error) error {
	var e *message.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err
	}
	return nil
}

func newLeaseID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func clipMethod(m string) string {
	if len(m) > 16 {
		return m[:16]
	}
	return m
}

// statusOf maps an error kind to its HTTP status: the one place that does.
func statusOf(k message.Kind) int {
	switch k {
	case message.Invalid:
		return 400
	case message.Unauthorized:
		return 401
	case message.NotFound:
		return 404
	case message.MethodNotAllowed:
		return 405
	case message.Conflict:
		return 409
	case message.TooLarge:
		return 413
	case message.BotFailed:
		return 502
	case message.Unavailable:
		return 503
	default:
		return 500
	}
}

func errorResponse(err error) events.APIGatewayV2HTTPResponse {
	var e *message.Error
	if !errors.As(err, &e) {
		e = &message.Error{Kind: message.Internal, Code: "internal", Message: "internal error"}
	}
	body := map[string]string{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		body["field"] = e.Field
	}
	b, _ := json.Marshal(map[string]any{"error": body})
	res := jsonResponse(statusOf(e.Kind), b)
	if (e.Kind == message.Conflict || e.Kind == message.Unavailable) && e.RetryAfter > 0 {
		res.Headers["Retry-After"] = strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds())))
	}
	return res
}

func jsonResponse(status int, body []byte) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(body),
	}
}
