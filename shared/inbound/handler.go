package inbound

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/metrics"
)

// Store keeps what the inbound side writes and reads.
type Store interface {
	// Accept writes rec unless a live record exists under its key: one that has not
	// expired. When one exists, Accept returns it with accepted false.
	Accept(ctx context.Context, rec message.Record, now time.Time) (existing message.Record, accepted bool, err error)
	// Exchanged reports whether the delivery side has stored the exchange of rec: its
	// job has run, so sending it again would only make a copy.
	Exchanged(ctx context.Context, rec message.Record) (bool, error)
	// HistoryPage returns up to limit entries of a conversation, newest first, from
	// the cursor a previous page returned ("" for the newest), and the next cursor
	// ("" after the oldest).
	HistoryPage(ctx context.Context, channel, conversationRef string, limit int, cursor string) ([]message.Entry, string, error)
	// ConversationUser returns the caller's userId of the conversation's latest
	// message; found is false when the channel has no such conversation.
	ConversationUser(ctx context.Context, channel, conversationRef string) (userID string, found bool, err error)
	// EraseConversation removes everything of a conversation; a job that has not run
	// yet will not.
	EraseConversation(ctx context.Context, channel, conversationRef string) (message.Erased, error)
	// EraseUser erases every conversation of the channel the user took part in.
	EraseUser(ctx context.Context, channel, userRef string) (message.Erased, error)
	// DeliveryLog reads a bot message's attempt log; found is false when nothing was
	// recorded (not tried yet, or delivered at the first try).
	DeliveryLog(ctx context.Context, channel, webhookID string) (message.DeliveryLog, bool, error)
	// FindOutgoing finds the exchange of a conversation holding a bot message.
	FindOutgoing(ctx context.Context, channel, conversationRef, webhookID string) (message.Exchange, bool, error)
}

// Queue hands jobs to the delivery side.
type Queue interface {
	// Send enqueues j in its conversation's FIFO group, with its Ref as the
	// deduplication id: a copy sent within five minutes is dropped. resend marks a copy
	// sent by a replayed request, which the delivery side checks before running.
	Send(ctx context.Context, j message.Job, resend bool) error
}

// Authenticator checks an API token.
type Authenticator interface {
	// Authenticate returns the stored token for a valid one, an error of kind
	// Unauthorized for an unknown one, and any other error when it cannot tell.
	Authenticate(ctx context.Context, token string) (message.Token, error)
}

// Config tunes the handler; zero values take the defaults.
type Config struct {
	// RecordTTL is how long a messageId is remembered; at least MinRecordTTL and
	// HistoryTTL: while a message is in the history, sending it again is a replay.
	RecordTTL  time.Duration
	HistoryTTL time.Duration
	// CallTimeout bounds each store and queue call, so a hung dependency answers 503
	// rather than running into the function's or API Gateway's timeout. Default 3s.
	CallTimeout time.Duration
	// Metrics adds CloudWatch metrics (Embedded Metric Format) to the log lines.
	Metrics metrics.Recorder
	// Fault, for fault-injection tests, is called after each step of an acceptance
	// ("accepted": the record is written; "sent": the job is queued); an error it
	// returns abandons the request there, as a crash would.
	Fault func(step string) error
}

// MinRecordTTL keeps a record at least as long as the queue keeps its job (14 days),
// plus a day: the delivery side counts attempts in it and reads its absence as an
// erased conversation.
const MinRecordTTL = 15 * 24 * time.Hour

// DefaultCallTimeout is Config.CallTimeout's default.
const DefaultCallTimeout = 3 * time.Second

// resendWindow is how long after a record was written a replay may send its job again
// without checking: within SQS FIFO's five-minute deduplication window a copy is
// dropped by the queue itself.
const resendWindow = 4*time.Minute + 30*time.Second

// Handler serves the HTTP API.
type Handler struct {
	store Store
	queue Queue
	auth  Authenticator
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Handler. log receives one line per request.
func New(store Store, queue Queue, auth Authenticator, cfg Config, log *slog.Logger) *Handler {
	cfg.RecordTTL = max(cfg.RecordTTL, cfg.HistoryTTL, MinRecordTTL)
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	return &Handler{store: store, queue: queue, auth: auth, cfg: cfg, log: log, now: time.Now}
}

// request is one API request as the routes see it.
type request struct {
	method, path string
	params       []string // the path's {parameters}, unescaped
	query        url.Values
	badQuery     bool // the query string did not parse
	headers      map[string]string
	token        message.Token
	// body reads the body, at most message.MaxBodyBytes; it is called only after the
	// route and the token are known to be good.
	body func() ([]byte, error)
}

// response is an answer with its log line.
type response struct {
	status  int
	headers map[string]string
	body    []byte
	note    note
}

// note is what the log line says about a request.
type note struct {
	outcome   string
	messageID string
	err       error
}

// metricOf names the metric an outcome counts in.
var metricOf = map[string]string{"accepted": "Accepted", "replayed": "Replayed", "pushed": "Pushed"}

// route is one method and path of the API.
type route struct {
	method  string
	pattern string // segments; {name} is a parameter
	scope   string // the token scope it needs
	serve   func(h *Handler, ctx context.Context, r *request) response
}

var routes = []route{
	{"POST", "/", message.ScopeBackend, (*Handler).accept},
	{"GET", "/v1/conversations/{conversationId}/messages", message.ScopeBackend, (*Handler).history},
	{"POST", "/v1/conversations/{conversationId}/messages", message.ScopeBot, (*Handler).push},
	{"DELETE", "/v1/conversations/{conversationId}", message.ScopeBackend, (*Handler).eraseConversation},
	{"DELETE", "/v1/users/{userId}", message.ScopeBackend, (*Handler).eraseUser},
	{"GET", "/v1/deliveries/{webhookId}", message.ScopeBackend, (*Handler).delivery},
	{"POST", "/v1/deliveries/{webhookId}/replay", message.ScopeBackend, (*Handler).replayDelivery},
}

// Handle serves one API Gateway HTTP API request. It never returns an error: every
// failure is a JSON answer, so API Gateway never turns it into an opaque 500.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	r := &request{
		method:  req.RequestContext.HTTP.Method,
		path:    routePath(req),
		headers: req.Headers,
		body:    func() ([]byte, error) { return eventBody(req) },
	}
	r.query, r.badQuery = queryOf(req)
	res := h.serve(ctx, r, req.RequestContext.RequestID)
	return events.APIGatewayV2HTTPResponse{StatusCode: res.status, Headers: res.headers, Body: string(res.body)}, nil
}

func (h *Handler) serve(ctx context.Context, r *request, requestID string) response {
	start := time.Now()
	res := h.dispatch(ctx, r)
	attrs := []slog.Attr{
		// The Lambda logger adds the invocation's requestId; this is API Gateway's.
		slog.String("apiRequestId", requestID),
		slog.String("method", clip(r.method, 16)),
		slog.Int("status", res.status),
		slog.String("outcome", res.note.outcome),
		slog.Float64("latencyMs", float64(time.Since(start).Microseconds())/1000),
	}
	if r.token.Channel != "" {
		attrs = append(attrs, slog.String("channel", r.token.Channel))
	}
	if res.note.messageID != "" {
		attrs = append(attrs, slog.String("messageId", res.note.messageID))
	}
	if name := metricOf[res.note.outcome]; name != "" {
		attrs = append(attrs, h.cfg.Metrics.Attrs(time.Now(), metrics.One(name))...)
	}
	level := slog.LevelInfo
	if res.note.err != nil {
		// The cause of a 5xx: from our adapters, never the caller's text or token.
		attrs = append(attrs, slog.String("error", res.note.err.Error()))
		if res.status >= 500 {
			level = slog.LevelError
		}
	}
	h.log.LogAttrs(ctx, level, "inbound", attrs...)
	return res
}

func (h *Handler) dispatch(ctx context.Context, r *request) response {
	var allowed []string
	var match *route
	for i := range routes {
		params, ok := matchPath(routes[i].pattern, r.path)
		if !ok {
			continue
		}
		allowed = append(allowed, routes[i].method)
		if routes[i].method == r.method {
			match, r.params = &routes[i], params
		}
	}
	if len(allowed) == 0 {
		return fail(&message.Error{Kind: message.NotFound, Code: "not_found", Message: "no such path; POST messages to the root of the webhook URL"}, "not_found")
	}
	if match == nil {
		res := fail(&message.Error{Kind: message.MethodNotAllowed, Code: "method_not_allowed",
			Message: fmt.Sprintf("method %s is not allowed; use %s", clip(r.method, 16), strings.Join(allowed, " or "))}, "method_not_allowed")
		res.headers["Allow"] = strings.Join(allowed, ", ")
		return res
	}
	tok, err := h.authenticate(ctx, header(r.headers, "authorization"))
	if err != nil {
		return fail(err, "unauthorized")
	}
	if tok.Scope != match.scope {
		return fail(&message.Error{Kind: message.Forbidden, Code: "wrong_scope",
			Message: fmt.Sprintf("this token has scope %q; %s %s needs a %q token", tok.Scope, match.method, match.pattern, match.scope)}, "forbidden")
	}
	r.token = tok
	return match.serve(h, ctx, r)
}

func (h *Handler) authenticate(ctx context.Context, authorization string) (message.Token, error) {
	if authorization == "" {
		return message.Token{}, &message.Error{Kind: message.Unauthorized, Code: "missing_token", Message: "the Authorization header is missing; send Authorization: bearer <token>"}
	}
	scheme, plain, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	plain = strings.TrimSpace(plain)
	if !ok || !strings.EqualFold(scheme, "bearer") || plain == "" || strings.ContainsAny(plain, " \t") {
		return message.Token{}, &message.Error{Kind: message.Unauthorized, Code: "invalid_authorization", Message: "the Authorization header must be: bearer <token>"}
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	tok, err := h.auth.Authenticate(ctx, plain)
	if err != nil {
		if message.KindOf(err) == message.Unauthorized {
			return message.Token{}, &message.Error{Kind: message.Unauthorized, Code: "invalid_token", Message: "the token is not valid"}
		}
		return message.Token{}, &message.Error{Kind: message.Unavailable, Code: "auth_unavailable", Message: "the token could not be checked; retry later", Err: err, RetryAfter: time.Second}
	}
	// Tokens made before channels and scopes are the default channel's backend tokens.
	if tok.Channel == "" {
		tok.Channel = message.DefaultChannel
	}
	if tok.Scope == "" {
		tok.Scope = message.ScopeBackend
	}
	return tok, nil
}

// call runs one store or queue call under the call timeout.
func (h *Handler) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	return f(ctx)
}

func (h *Handler) step(name string) error {
	if h.cfg.Fault == nil {
		return nil
	}
	return h.cfg.Fault(name)
}

// matchPath matches an escaped path against a pattern and returns its parameters,
// unescaped. Paths are compared as sent: "//", "/./" and "/../" match nothing.
func matchPath(pattern, path string) ([]string, bool) {
	if pattern == "/" || path == "/" {
		return nil, pattern == path
	}
	want := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	got := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(want) != len(got) {
		return nil, false
	}
	var params []string
	for i, w := range want {
		if !strings.HasPrefix(w, "{") {
			if got[i] != w {
				return nil, false
			}
			continue
		}
		p, err := url.PathUnescape(got[i])
		if err != nil || p == "" || p == "." || p == ".." {
			return nil, false
		}
		params = append(params, p)
	}
	return params, true
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

func queryOf(req events.APIGatewayV2HTTPRequest) (url.Values, bool) {
	if req.RawQueryString != "" {
		q, err := url.ParseQuery(req.RawQueryString)
		return q, err != nil
	}
	q := url.Values{}
	for k, v := range req.QueryStringParameters {
		q.Set(k, v)
	}
	return q, false
}

var errTooLarge = &message.Error{Kind: message.TooLarge, Code: "body_too_large",
	Message: fmt.Sprintf("the request body is over the limit of %d bytes", message.MaxBodyBytes)}

func eventBody(req events.APIGatewayV2HTTPRequest) ([]byte, error) {
	if !req.IsBase64Encoded {
		if len(req.Body) > message.MaxBodyBytes {
			return nil, errTooLarge
		}
		return []byte(req.Body), nil
	}
	if base64.StdEncoding.DecodedLen(len(req.Body)) > message.MaxBodyBytes+3 {
		return nil, errTooLarge
	}
	body, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, message.Invalidf("", "invalid_encoding", "the base64-encoded request body could not be decoded")
	}
	if len(body) > message.MaxBodyBytes {
		return nil, errTooLarge
	}
	return body, nil
}

// readBody reads the body and names the outcome of a failure.
func readBody(r *request) ([]byte, *response) {
	body, err := r.body()
	if err != nil {
		outcome := "bad_request"
		if message.KindOf(err) == message.TooLarge {
			outcome = "too_large"
		}
		res := fail(err, outcome)
		return nil, &res
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
	return &message.Error{Kind: message.Unavailable, Code: code, Message: "the request could not be processed now; retry it", Err: err, RetryAfter: time.Second}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// statusOf maps an error kind to its HTTP status: the one place that does.
func statusOf(k message.Kind) int {
	switch k {
	case message.Invalid:
		return 400
	case message.Unauthorized:
		return 401
	case message.Forbidden:
		return 403
	case message.NotFound:
		return 404
	case message.MethodNotAllowed:
		return 405
	case message.Conflict:
		return 409
	case message.TooLarge:
		return 413
	case message.Unavailable:
		return 503
	default:
		return 500
	}
}

// fail answers err, logged with outcome and the error's cause.
func fail(err error, outcome string) response {
	var e *message.Error
	if !errors.As(err, &e) {
		e = &message.Error{Kind: message.Internal, Code: "internal", Message: "internal error", Err: err}
	}
	body := map[string]string{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		body["field"] = e.Field
	}
	b, _ := json.Marshal(map[string]any{"error": body})
	res := jsonResponse(statusOf(e.Kind), b)
	if (e.Kind == message.Conflict || e.Kind == message.Unavailable) && e.RetryAfter > 0 {
		res.headers["Retry-After"] = strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds())))
	}
	res.note = note{outcome: outcome, err: e.Err}
	return res
}

func jsonResponse(status int, body []byte) response {
	return response{status: status, headers: map[string]string{"Content-Type": "application/json"}, body: body}
}

// ok answers 200 with v as JSON.
func ok(v any, outcome string) response {
	b, err := message.Marshal(v)
	if err != nil {
		return fail(err, "internal")
	}
	res := jsonResponse(200, b)
	res.note.outcome = outcome
	return res
}

// Routes lists the API's routes as "METHOD /pattern", for documentation tests.
func Routes() []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.method + " " + r.pattern
	}
	return slices.Clip(out)
}
