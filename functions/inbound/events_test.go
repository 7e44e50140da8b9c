package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/settings"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/runtimeapi"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// TestMain stops the emulators the tests started.
func TestMain(m *testing.M) { emulator.Main(m) }

const (
	eventsDir = "../../events"
	// sampleToken is the bearer token of the sample events; the tests store its hash.
	sampleToken = "parley-sample-token"
	// functionKey is this function's entry in events/env.json (its template.yaml id).
	functionKey = "InboundFunction"
	// channel is the channel of a token made without one: every sample's.
	channel = message.DefaultChannel
)

// want is the inbound function's answer to one file of events/.
type want struct {
	file   string
	status int
	code   string            // error.code; "" for a 200
	field  string            // error.field, when one field is at fault
	header map[string]string // headers the answer must carry
	// after is the file that must have run first against the same table: the
	// duplicate and the reused id are about the message it stored.
	after string
	// replay: the answer is after's 200 body again, marked Idempotent-Replayed.
	replay bool
	// accepted: a new turn. Its record is stored and its job queued; once the job has
	// run, the turn is in the history.
	accepted bool
	// payloadText is what the accepted payload's text must be when the request's
	// payload.text was empty: the original integration fills it in with text.
	payloadText string
	// history: a history page, asked for before the queued turns ran (empty: the
	// inbound function does not run the bot) and after (every turn of the
	// conversation with its echo, newest first).
	history bool
}

// expectations covers every inbound-*.json in events/, in the order the tests run
// them, which is the order of events/README.md's table. TestEventFilesAreCovered fails
// when a file has none, or an expectation has no file.
var expectations = []want{
	{file: "inbound-text.json", status: 200, accepted: true},
	{file: "inbound-rich.json", status: 200, accepted: true},
	{file: "inbound-base64.json", status: 200, accepted: true},
	{file: "inbound-empty-payload-text.json", status: 200, accepted: true, payloadText: "And the price?"},
	{file: "inbound-missing-auth.json", status: 401, code: "missing_token"},
	{file: "inbound-bad-json.json", status: 400, code: "invalid_json"},
	{file: "inbound-wrong-path.json", status: 404, code: "not_found"},
	{file: "inbound-get.json", status: 405, code: "method_not_allowed", header: map[string]string{"Allow": "POST"}},
	{file: "inbound-duplicate.json", status: 200, after: "inbound-text.json", replay: true, header: map[string]string{"Idempotent-Replayed": "true"}},
	{file: "inbound-reused-id.json", status: 409, code: "message_id_reused", field: "messageId", after: "inbound-text.json"},
	{file: "inbound-history.json", status: 200, history: true},
}

func expectation(file string) want {
	for _, w := range expectations {
		if w.file == file {
			return w
		}
	}
	return want{}
}

// TestEventFilesAreCovered: every JSON file of events/ is env.json or belongs to a
// function by its prefix; each of this function's files has an expectation and each
// expectation a file; a file runs after the one it depends on; events/README.md
// describes every file.
func TestEventFilesAreCovered(t *testing.T) {
	files := eventFiles(t)
	var mine []string
	for _, f := range files {
		switch {
		case strings.HasPrefix(f, "inbound-"):
			mine = append(mine, f)
		case strings.HasPrefix(f, "delivery-"):
		default:
			t.Errorf("events/%s: name it inbound-*.json or delivery-*.json so a test runs it", f)
		}
	}
	seen := map[string]bool{}
	for _, w := range expectations {
		if seen[w.file] {
			t.Errorf("two expectations for events/%s", w.file)
		}
		if !slices.Contains(mine, w.file) {
			t.Errorf("expectation for events/%s, which does not exist", w.file)
		}
		if w.after != "" {
			dep := expectation(w.after)
			if !seen[w.after] || !dep.accepted || dep.after != "" {
				t.Errorf("%s runs after %s, which must come before it and be an accepted message with no dependency of its own", w.file, w.after)
			}
		}
		seen[w.file] = true
	}
	for _, f := range mine {
		if !seen[f] {
			t.Errorf("events/%s has no expectation: add it to expectations in functions/inbound/events_test.go", f)
		}
	}
	readme, err := os.ReadFile(filepath.Join(eventsDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "env.json") {
		if !bytes.Contains(readme, []byte("`"+f+"`")) {
			t.Errorf("events/README.md does not describe %s", f)
		}
	}
	// The README's table says what the files give run in its order: the tests' order.
	var rows []string
	for _, l := range strings.Split(string(readme), "\n") {
		if f, ok := strings.CutPrefix(l, "| `inbound-"); ok {
			rows = append(rows, "inbound-"+f[:strings.Index(f, "`")])
		}
	}
	var order []string
	for _, w := range expectations {
		order = append(order, w.file)
	}
	if !slices.Equal(rows, order) {
		t.Errorf("events/README.md lists the inbound events in the order %v; the tests run them in the order %v", rows, order)
	}
	if len(mine) < 10 {
		t.Errorf("%d inbound events, want at least 10", len(mine))
	}
}

// eventFiles lists the event files: every *.json of events/ but env.json.
func eventFiles(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no events in %s (%v)", eventsDir, err)
	}
	var out []string
	for _, p := range paths {
		if f := filepath.Base(p); f != "env.json" {
			out = append(out, f)
		}
	}
	return out
}

// sample is one event file: the bytes Lambda would pass and the decoded event.
type sample struct {
	name string
	raw  []byte
	ev   events.APIGatewayV2HTTPRequest
	// in is the message in the body, when the body is a valid message.
	in    message.Inbound
	valid bool
}

func loadSample(t *testing.T, name string) sample {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := sample{name: name, raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field would silently vanish
	if err := dec.Decode(&s.ev); err != nil {
		t.Fatalf("events/%s is not an HTTP API payload 2.0 event: %v", name, err)
	}
	if s.ev.Version != "2.0" || s.ev.RouteKey != "$default" || s.ev.RequestContext.Stage != "$default" ||
		s.ev.RequestContext.RequestID == "" || s.ev.RequestContext.HTTP.Method == "" || s.ev.RawPath != s.ev.RequestContext.HTTP.Path {
		t.Errorf("events/%s: version %q, routeKey %q, stage %q, requestId %q, method %q, rawPath %q, http.path %q; want a complete $default 2.0 event",
			name, s.ev.Version, s.ev.RouteKey, s.ev.RequestContext.Stage, s.ev.RequestContext.RequestID, s.ev.RequestContext.HTTP.Method, s.ev.RawPath, s.ev.RequestContext.HTTP.Path)
	}
	for k := range s.ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("events/%s: header %q: API Gateway lowercases header names", name, k)
		}
	}
	body := []byte(s.ev.Body)
	if s.ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(s.ev.Body); err != nil {
			t.Fatalf("events/%s: isBase64Encoded but the body is not base64: %v", name, err)
		}
	}
	if cl, ok := s.ev.Headers["content-length"]; ok && cl != strconv.Itoa(len(body)) {
		t.Errorf("events/%s: content-length %s, but the body is %d bytes", name, cl, len(body))
	}
	if s.in, err = message.DecodeInbound(body); err == nil {
		s.valid = true
	}
	return s
}

// turn is an accepted message as the tests follow it: the message, its ids and when
// the function said it accepted it.
type turn struct {
	file      string
	in        message.Inbound
	t         message.Turn
	createdAt time.Time
}

// receiver is the Response Endpoint the queued turns are delivered to.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []post
}

type post struct {
	header http.Header
	body   string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, post{r.Header.Clone(), string(body)})
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) posts() []post {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// backend is a fresh table (with the sample token), FIFO queue and dead-letter queue
// in the emulators, and what runs the queued turns: the delivery side, with the echo
// bot, POSTing to a receiver.
type backend struct {
	table, queueURL string
	ddbURL, sqsURL  string
	ddb             *dynamodb.Client
	store           *dynamo.Store
	queue           *sqsfifo.Queue
	delivery        *delivery.Handler
	rc              *receiver
	recordTTL       time.Duration // env.json's PARLEY_RECORD_TTL
}

var backends atomic.Int64

func newBackend(t *testing.T) *backend {
	t.Helper()
	ctx := context.Background()
	d, q := emulator.DynamoDB(t), emulator.SQS(t)
	b := &backend{ddb: d.DynamoDBClient(), ddbURL: d.URL, sqsURL: q.URL, rc: newReceiver(t)}
	b.table = fmt.Sprintf("parley-inbound-events-%d-%d", time.Now().UnixNano(), backends.Add(1))
	if err := dynamo.CreateTable(ctx, b.ddb, b.table); err != nil {
		t.Fatal(err)
	}
	client := q.SQSClient()
	fifo := map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"}
	main, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(b.table + ".fifo"), Attributes: fifo})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(b.table + "-dead.fifo"), Attributes: fifo})
	if err != nil {
		t.Fatal(err)
	}
	b.queueURL = aws.ToString(main.QueueUrl)
	b.store = dynamo.New(b.ddb, b.table)
	b.queue = sqsfifo.New(client, b.queueURL, aws.ToString(dead.QueueUrl))
	if err := b.store.PutToken(ctx, message.Token{Hash: token.Hash(sampleToken), Name: "sample", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if b.recordTTL, err = time.ParseDuration(envJSON(t)["PARLEY_RECORD_TTL"]); err != nil {
		t.Fatalf("events/env.json PARLEY_RECORD_TTL: %v", err)
	}
	// A record lives at least as long as its history.
	history := settings.HistoryTTL.Default
	if v := envJSON(t)["PARLEY_HISTORY_TTL"]; v != "" {
		history = v
	}
	if h, err := time.ParseDuration(history); err != nil {
		t.Fatalf("PARLEY_HISTORY_TTL: %v", err)
	} else {
		b.recordTTL = max(b.recordTTL, h)
	}
	sender, err := webhook.NewSender(webhook.Config{URL: b.rc.srv.URL + "/parley/responses", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ch := &delivery.Channel{ID: channel, Bot: bot.Echo{}, BotTimeout: 5 * time.Second, Sender: sender, SendTimeout: 5 * time.Second, Policy: delivery.DefaultPolicy}
	b.delivery = delivery.New(b.store, b.queue, delivery.Single(ch), delivery.Config{}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return b
}

// envJSON reads this function's variables from events/env.json.
func envJSON(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, "env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]map[string]string
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("events/env.json: %v (SAM wants {\"<LogicalId>\": {\"NAME\": \"value\"}})", err)
	}
	if keys := slices.Sorted(maps.Keys(env)); !slices.Equal(keys, []string{"DeliveryFunction", "InboundFunction"}) {
		t.Errorf("events/env.json has %v, want exactly DeliveryFunction and InboundFunction", keys)
	}
	if env[functionKey] == nil {
		t.Fatalf("events/env.json has no %s", functionKey)
	}
	return env[functionKey]
}

// environment is what the function sees in a Lambda execution environment here:
// env.json's variables pointed at b's table and queue, and the variables Lambda sets,
// with the SDK endpoints at the emulators.
func (b *backend) environment(t *testing.T) map[string]string {
	t.Helper()
	env := envJSON(t)
	env["PARLEY_TABLE_NAME"], env["PARLEY_QUEUE_URL"] = b.table, b.queueURL
	maps.Copy(env, runtimeapi.LambdaEnv("Parley-dev-InboundFunction", b.ddbURL, b.sqsURL))
	return env
}

// handler is the handler main's setup builds, in this process, in that environment.
func (b *backend) handler(t *testing.T, log *slog.Logger) *inbound.Handler {
	t.Helper()
	env := b.environment(t)
	h, err := setup(func(k string) string { return env[k] }, log)
	if err != nil {
		t.Fatalf("setup with events/env.json: %v", err)
	}
	return h
}

// TestEventsThroughHandler runs every inbound event through the handler, wired as
// main wires it, on DynamoDB Local and local-aws-sqs.
func TestEventsThroughHandler(t *testing.T) {
	b := newBackend(t)
	h := b.handler(t, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	exercise(t, b, func(s sample) events.APIGatewayV2HTTPResponse {
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(s.raw, &ev); err != nil {
			t.Fatal(err)
		}
		res, err := h.Handle(context.Background(), ev)
		if err != nil {
			t.Fatalf("%s: Handle returned an error: %v", s.name, err)
		}
		return res
	})
}

// exercise runs every event through invoke, in the order of expectations, and checks
// each answer and what it left in the table; then the queue: one job per accepted
// message, which the delivery side runs; then the history, before and after. It
// returns the answers by file.
func exercise(t *testing.T, b *backend, invoke func(s sample) events.APIGatewayV2HTTPResponse) map[string]events.APIGatewayV2HTTPResponse {
	t.Helper()
	answered := map[string]events.APIGatewayV2HTTPResponse{}
	var turns []turn
	for _, w := range expectations {
		if w.history {
			continue
		}
		s := loadSample(t, w.file)
		res := invoke(s)
		answered[w.file] = res
		if tr, ok := checkAnswer(t, w, s, res, answered); ok {
			turns = append(turns, tr)
		}
		checkRecord(t, b, w, s, turns)
	}
	// The inbound function only queues turns: until they run, the history is empty.
	for _, w := range expectations {
		if w.history {
			s := loadSample(t, w.file)
			checkHistory(t, s, invoke(s), nil)
		}
	}
	drain(t, b, turns)
	for _, w := range expectations {
		if w.history {
			s := loadSample(t, w.file)
			res := invoke(s)
			answered[w.file] = res
			checkHistory(t, s, res, turns)
		}
	}
	checkTable(t, b, turns)
	return answered
}

// checkAnswer compares res with w; answered holds the answers to the files run
// before. For a message accepted as new it returns the turn.
func checkAnswer(t *testing.T, w want, s sample, res events.APIGatewayV2HTTPResponse, answered map[string]events.APIGatewayV2HTTPResponse) (turn, bool) {
	t.Helper()
	if res.StatusCode != w.status {
		t.Errorf("%s: status %d, want %d (body %s)", s.name, res.StatusCode, w.status, res.Body)
		return turn{}, false
	}
	if ct := res.Headers["Content-Type"]; ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", s.name, ct)
	}
	for k, v := range w.header {
		if res.Headers[k] != v {
			t.Errorf("%s: header %s = %q, want %q", s.name, k, res.Headers[k], v)
		}
	}
	if w.status != 200 {
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(res.Body), &e); err != nil || e.Error.Message == "" {
			t.Errorf("%s: body %s, want {\"error\":{\"code\",\"message\"}} (%v)", s.name, res.Body, err)
		}
		if e.Error.Code != w.code || e.Error.Field != w.field {
			t.Errorf("%s: error code %q field %q, want %q %q", s.name, e.Error.Code, e.Error.Field, w.code, w.field)
		}
		return turn{}, false
	}
	if w.replay {
		if first := answered[w.after]; res.Body != first.Body {
			t.Errorf("%s: body\n%s\nwant the first answer again\n%s", s.name, res.Body, first.Body)
		}
		return turn{}, false
	}
	if _, ok := res.Headers["Idempotent-Replayed"]; ok {
		t.Errorf("%s: a first answer is marked Idempotent-Replayed", s.name)
	}
	var got struct {
		Message struct {
			ID, Type, Direction, UserID, ConversationID string
			CreatedAt                                   time.Time
			Payload                                     json.RawMessage
			Tags                                        struct{ ID string }
		}
		User, Conversation struct {
			ID   string
			Tags struct{ ID string }
		}
	}
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatalf("%s: body %s: %v", s.name, res.Body, err)
	}
	in := s.in
	tr := turn{file: s.name, in: in, t: message.NewTurn(channel, in), createdAt: got.Message.CreatedAt}
	m := got.Message
	if m.ID != tr.t.MessageRef || m.Tags.ID != in.MessageID || m.Type != in.Type || m.Direction != "incoming" ||
		m.UserID != tr.t.UserRef || m.ConversationID != tr.t.ConversationRef || !jsonEqual(m.Payload, in.Payload) {
		t.Errorf("%s: message %+v, want id %s, tag %s, type %s, payload %s", s.name, m, tr.t.MessageRef, in.MessageID, in.Type, in.Payload)
	}
	if since := time.Since(m.CreatedAt); since < 0 || since > time.Minute || !m.CreatedAt.Equal(m.CreatedAt.Truncate(time.Millisecond)) {
		t.Errorf("%s: createdAt %s, want the time of the request, to the millisecond as stored", s.name, m.CreatedAt)
	}
	if w.payloadText != "" {
		var p struct{ Text string }
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Text != w.payloadText {
			t.Errorf("%s: payload %s, want its empty text filled in with %q", s.name, m.Payload, w.payloadText)
		}
	}
	if got.User.ID != tr.t.UserRef || got.User.Tags.ID != in.UserID {
		t.Errorf("%s: user %+v, want %s tagged %s", s.name, got.User, tr.t.UserRef, in.UserID)
	}
	if got.Conversation.ID != tr.t.ConversationRef || got.Conversation.Tags.ID != in.ConversationID {
		t.Errorf("%s: conversation %+v, want %s tagged %s", s.name, got.Conversation, tr.t.ConversationRef, in.ConversationID)
	}
	return tr, true
}

// checkRecord: an accepted message leaves its record, with the hash of the request and
// the time of the answer; a replay or a reused id leaves the first one's untouched; a
// refused request leaves nothing.
func checkRecord(t *testing.T, b *backend, w want, s sample, turns []turn) {
	t.Helper()
	if !s.valid {
		return
	}
	key := message.NewTurn(channel, s.in).Key()
	rec, found, _, _, err := b.store.Load(context.Background(), key, time.Time{})
	if err != nil {
		t.Errorf("%s: read record: %v", s.name, err)
		return
	}
	owner := s.name
	if w.after != "" {
		owner = w.after
	}
	i := slices.IndexFunc(turns, func(tr turn) bool { return tr.file == owner })
	if i < 0 {
		if found {
			t.Errorf("%s: answered %d but left a record %+v", s.name, w.status, rec)
		}
		return
	}
	tr := turns[i]
	switch {
	case !found:
		t.Errorf("%s: no record of %s", s.name, tr.t.MessageRef)
	case rec.RequestHash != tr.in.Hash() || !rec.CreatedAt.Equal(tr.createdAt) || rec.UserRef != tr.t.UserRef:
		t.Errorf("%s: record hash %s, createdAt %s, user %s; want %s's: %s, %s, %s", s.name, rec.RequestHash, rec.CreatedAt, rec.UserRef,
			owner, tr.in.Hash(), tr.createdAt, tr.t.UserRef)
	case rec.ExpiresAt.Unix() != tr.createdAt.Add(b.recordTTL).Unix():
		t.Errorf("%s: record expires %s, want %s after %s (PARLEY_RECORD_TTL, at least PARLEY_HISTORY_TTL)", s.name, rec.ExpiresAt, b.recordTTL, tr.createdAt)
	case rec.Attempts != 0 || rec.Delivered != 0 || !rec.FailingSince.IsZero():
		t.Errorf("%s: record %+v carries delivery progress; the inbound side writes none", s.name, rec)
	}
}

// drain receives the queued jobs, checks that they are exactly one per accepted
// message and what the inbound function sends, and runs them as the delivery function
// would: the echo bot answers each, and the receiver gets the echoes.
func drain(t *testing.T, b *backend, turns []turn) {
	t.Helper()
	ctx := context.Background()
	byRef := map[string]turn{}
	for _, tr := range turns {
		byRef[tr.t.MessageRef] = tr
	}
	seen := map[string]bool{}
	for round := 0; round < 10; round++ {
		msgs, err := b.queue.Receive(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			j, err := message.DecodeJob([]byte(m.Body))
			tr, ok := byRef[j.Ref]
			if err != nil || !ok || seen[j.Ref] {
				t.Errorf("unexpected message on the queue (%v, seen before %v): %s", err, seen[j.Ref], m.Body)
				continue
			}
			seen[j.Ref] = true
			want, err := message.EncodeJob(message.TurnJob(tr.t, tr.createdAt))
			if err != nil {
				t.Fatal(err)
			}
			if m.Body != string(want) {
				t.Errorf("%s: job\n%s\nwant\n%s", tr.file, m.Body, want)
			}
			if g, d := m.Attributes["MessageGroupId"], m.Attributes["MessageDeduplicationId"]; g != tr.t.ConversationRef || d != message.TurnJob(tr.t, tr.createdAt).DedupID() {
				t.Errorf("%s: group %q, deduplication id %q; want the conversation %s and the message and its time %s", tr.file, g, d, tr.t.ConversationRef, message.TurnJob(tr.t, tr.createdAt).DedupID())
			}
			if attr(m, message.AttrKind) != message.KindTurn || attr(m, message.AttrResend) != "" || attr(m, message.AttrRedriven) != "" {
				t.Errorf("%s: attributes %v, want only %s=%s", tr.file, m.MessageAttributes, message.AttrKind, message.KindTurn)
			}
		}
		failed, acked, err := b.delivery.Run(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		var done []string
		for _, m := range msgs {
			if failed[m.MessageId] {
				t.Errorf("the delivery side failed job %s: %s", m.MessageId, m.Body)
			} else if !acked[m.MessageId] {
				done = append(done, m.ReceiptHandle)
			}
		}
		if err := b.queue.Ack(ctx, done); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != len(turns) {
		t.Errorf("%d jobs on the queue, want %d: one per accepted message, none for a replay (SQS drops its copy)", len(seen), len(turns))
	}
	posts := b.rc.posts()
	if len(posts) != len(turns) {
		t.Errorf("the receiver got %d POSTs, want one echo per accepted message: %d", len(posts), len(turns))
	}
	last := map[string]int{}
	for _, tr := range turns {
		id := message.ReplyRef(channel, tr.in.ConversationID, tr.in.MessageID, 0)
		i := slices.IndexFunc(posts, func(p post) bool { return p.header.Get(webhook.HeaderID) == id })
		if i < 0 {
			t.Errorf("%s: its echo %s was not delivered", tr.file, id)
			continue
		}
		want, _ := message.Marshal(message.Webhook{Type: tr.in.Type, Payload: tr.in.Payload, ConversationID: tr.in.ConversationID,
			BotpressUserID: tr.t.UserRef, BotpressMessageID: id, BotpressConversationID: tr.t.ConversationRef})
		if posts[i].body != string(want) {
			t.Errorf("%s: the receiver got\n%s\nwant the echo\n%s", tr.file, posts[i].body, want)
		}
		if prev, ok := last[tr.t.ConversationRef]; ok && i < prev {
			t.Errorf("%s: delivered before an earlier message of its conversation", tr.file)
		}
		last[tr.t.ConversationRef] = i
	}
	if dead, err := b.queue.DeadLetters(ctx, 10); err != nil || len(dead) != 0 {
		t.Errorf("%d dead letters (%v), want none", len(dead), err)
	}
}

// historyEntry is one message of a history page.
type historyEntry struct {
	ID, Direction, Type, UserID, MessageID, InReplyTo, ConversationID string
	Payload                                                           json.RawMessage
	CreatedAt                                                         time.Time
}

// checkHistory: the page holds the conversation's turns that ran, newest first, each
// user message after its echo; before any ran, none.
func checkHistory(t *testing.T, s sample, res events.APIGatewayV2HTTPResponse, turns []turn) {
	t.Helper()
	if res.StatusCode != 200 {
		t.Errorf("%s: status %d, want 200 (body %s)", s.name, res.StatusCode, res.Body)
		return
	}
	var page struct {
		Messages   []historyEntry
		NextCursor *string
	}
	if err := json.Unmarshal([]byte(res.Body), &page); err != nil || !strings.Contains(res.Body, `"messages":[`) {
		t.Fatalf("%s: history %s (%v), want {\"messages\":[...]}", s.name, res.Body, err)
	}
	conv, _ := strings.CutPrefix(s.ev.RawPath, "/v1/conversations/")
	conv, _ = strings.CutSuffix(conv, "/messages")
	var mine []turn
	for _, tr := range turns {
		if tr.in.ConversationID == conv {
			mine = append(mine, tr)
		}
	}
	// Exchanges sort by their key: the time of the record, then the ref.
	slices.SortFunc(mine, func(a, b turn) int {
		return -cmp.Or(a.createdAt.Compare(b.createdAt), cmp.Compare(a.t.MessageRef, b.t.MessageRef))
	})
	var want []historyEntry
	for _, tr := range mine {
		in := tr.in
		want = append(want,
			historyEntry{ID: message.ReplyRef(channel, in.ConversationID, in.MessageID, 0), Direction: "outgoing", Type: in.Type,
				UserID: in.UserID, InReplyTo: in.MessageID, ConversationID: conv, Payload: in.Payload},
			historyEntry{ID: tr.t.MessageRef, Direction: "incoming", Type: in.Type, UserID: in.UserID, MessageID: in.MessageID,
				ConversationID: conv, Payload: in.Payload, CreatedAt: tr.createdAt})
	}
	limit, _ := strconv.Atoi(s.ev.QueryStringParameters["limit"])
	if len(want) > limit {
		t.Fatalf("%s: %d messages in conversation %s, more than the page of %d this test expects", s.name, len(want), conv, limit)
	}
	if len(page.Messages) != len(want) || page.NextCursor != nil {
		t.Errorf("%s: %d messages (next cursor %v), want %d and no next page:\n%s", s.name, len(page.Messages), page.NextCursor, len(want), res.Body)
		return
	}
	for i, g := range page.Messages {
		w := want[i]
		sent := g.CreatedAt
		if w.Direction == "outgoing" {
			// The bot answered when the job ran: after the message, before now.
			if sent.Before(page.Messages[i+1].CreatedAt) || sent.After(time.Now()) {
				t.Errorf("%s: message %d answered at %s, before the message it answers", s.name, i, sent)
			}
			w.CreatedAt = sent
		}
		if !jsonEqual(g.Payload, w.Payload) || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("%s: message %d payload %s at %s, want %s at %s", s.name, i, g.Payload, g.CreatedAt, w.Payload, w.CreatedAt)
		}
		g.Payload, w.Payload, g.CreatedAt, w.CreatedAt = nil, nil, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: message %d is %+v, want %+v", s.name, i, g, w)
		}
	}
}

// checkTable: the items are the token, one record per accepted message and, once its
// job ran, one exchange: nothing for a refused request or a replay. Keys as
// shared/dynamo lays them out: the conversation's partition, "m#<ref>" and
// "h#<createdAt ms>#<ref>".
func checkTable(t *testing.T, b *backend, turns []turn) {
	t.Helper()
	out, err := b.ddb.Scan(context.Background(), &dynamodb.ScanInput{TableName: &b.table, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]string{}
	for _, tr := range turns {
		pk := "c#" + channel + "#" + tr.t.ConversationRef
		want[[2]string{pk, "m#" + tr.t.MessageRef}] = "record"
		want[[2]string{pk, fmt.Sprintf("h#%013d#%s", tr.createdAt.UnixMilli(), tr.t.MessageRef)}] = "exchange"
	}
	tokens := 0
	for _, item := range out.Items {
		pk, _ := item["pk"].(*dynamotypes.AttributeValueMemberS)
		sk, _ := item["sk"].(*dynamotypes.AttributeValueMemberS)
		switch {
		case pk == nil || sk == nil:
			t.Errorf("item without string keys: %v", item)
		case pk.Value == "token" && sk.Value == token.Hash(sampleToken):
			tokens++
		case want[[2]string{pk.Value, sk.Value}] != "":
			delete(want, [2]string{pk.Value, sk.Value})
		default:
			t.Errorf("unexpected item %s / %s", pk.Value, sk.Value)
		}
	}
	if tokens != 1 {
		t.Errorf("%d token items, want the sample token", tokens)
	}
	for k, what := range want {
		t.Errorf("no %s %s / %s", what, k[0], k[1])
	}
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
