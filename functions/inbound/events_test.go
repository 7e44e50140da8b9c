package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/runtimeapi"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
)

// TestMain stops the emulators the tests started.
func TestMain(m *testing.M) { emulator.Main(m) }

const (
	eventsDir = "../../events"
	// sampleToken is the bearer token of the sample events; the tests store its hash.
	sampleToken = "parley-sample-token"
	// functionKey is this function's entry in events/env.json (its template.yaml id).
	functionKey = "InboundFunction"
)

// want is the inbound function's answer to one file of events/.
type want struct {
	status int
	code   string            // error.code; "" for a 200
	field  string            // error.field, when one field is at fault
	header map[string]string // headers the answer must carry
	// after is the file that must have run first against the same table: the
	// duplicate and the reused id are about the message it stored.
	after string
	// replay: the answer is after's 200 body again, marked Idempotent-Replayed.
	replay bool
	// enqueued: the echo bot's answer to this message reaches the delivery queue.
	enqueued bool
	// listed: a history page of at least this many messages, after's among them.
	listed int
}

// expectations covers every inbound-*.json in events/; TestEventFilesAreCovered fails
// when a file has none, or an expectation has no file.
var expectations = map[string]want{
	"inbound-text.json":         {status: 200, enqueued: true},
	"inbound-rich.json":         {status: 200, enqueued: true},
	"inbound-base64.json":       {status: 200, enqueued: true},
	"inbound-duplicate.json":    {status: 200, after: "inbound-text.json", replay: true, header: map[string]string{"Idempotent-Replayed": "true"}},
	"inbound-reused-id.json":    {status: 409, code: "message_id_reused", field: "messageId", after: "inbound-text.json"},
	"inbound-missing-auth.json": {status: 401, code: "missing_token"},
	"inbound-bad-json.json":     {status: 400, code: "invalid_json"},
	"inbound-wrong-path.json":   {status: 404, code: "not_found"},
	"inbound-get.json":          {status: 405, code: "method_not_allowed", header: map[string]string{"Allow": "POST"}},
	"inbound-history.json":      {status: 200, after: "inbound-text.json", listed: 2},
}

// TestEventFilesAreCovered: every JSON file of events/ is env.json or belongs to a
// function by its prefix; each of this function's files has an expectation and each
// expectation a file; events/README.md describes every file.
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
	for _, f := range mine {
		if _, ok := expectations[f]; !ok {
			t.Errorf("events/%s has no expectation: add it to expectations in %s", f, "functions/inbound/events_test.go")
		}
	}
	for f := range expectations {
		if !slices.Contains(mine, f) {
			t.Errorf("expectation for events/%s, which does not exist", f)
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
	if len(mine) < 9 {
		t.Errorf("%d inbound events, want at least 9", len(mine))
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

// plan orders the files so that each runs after the one it depends on, each once.
func plan(t *testing.T) []string {
	t.Helper()
	var first, then []string
	for f, w := range expectations {
		if w.after == "" {
			first = append(first, f)
			continue
		}
		if dep, ok := expectations[w.after]; !ok || dep.after != "" || dep.status != 200 {
			t.Fatalf("%s runs after %s, which must be an expected 200 with no dependency of its own", f, w.after)
		}
		then = append(then, f)
	}
	slices.Sort(first)
	slices.Sort(then)
	return append(first, then...)
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
	if s.in, err = message.DecodeInbound(body); err == nil {
		s.valid = true
	}
	return s
}

// backend is a fresh table (with the sample token) and FIFO queue in the emulators.
type backend struct {
	table, queueURL string
	ddbURL, sqsURL  string
	ddb             *dynamodb.Client
	sqs             *sqs.Client
	store           *dynamo.Store
	queue           *sqsfifo.Queue
}

var backends atomic.Int64

func newBackend(t *testing.T) *backend {
	t.Helper()
	ctx := context.Background()
	d, q := emulator.DynamoDB(t), emulator.SQS(t)
	b := &backend{ddb: d.DynamoDBClient(), sqs: q.SQSClient(), ddbURL: d.URL, sqsURL: q.URL}
	b.table = fmt.Sprintf("parley-inbound-events-%d-%d", time.Now().UnixNano(), backends.Add(1))
	if err := dynamo.CreateTable(ctx, b.ddb, b.table); err != nil {
		t.Fatal(err)
	}
	out, err := b.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(b.table + ".fifo"),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.queueURL = aws.ToString(out.QueueUrl)
	b.store = dynamo.New(b.ddb, b.table)
	b.queue = sqsfifo.New(b.sqs, b.queueURL, "")
	if err := b.store.PutToken(ctx, message.Token{Hash: token.Hash(sampleToken), Name: "sample", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
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
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&env); err != nil {
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
	answered := map[string]events.APIGatewayV2HTTPResponse{}
	for _, name := range plan(t) {
		s := loadSample(t, name)
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(s.raw, &ev); err != nil {
			t.Fatal(err)
		}
		res, err := h.Handle(context.Background(), ev)
		if err != nil {
			t.Fatalf("%s: Handle returned an error: %v", name, err)
		}
		answered[name] = res
		checkAnswer(t, s, res, answered)
		checkRecord(t, b, s)
	}
	checkQueue(t, b)
	checkTable(t, b)
}

// checkAnswer compares res with the expectation for s; answered holds the answers to
// the files run before.
func checkAnswer(t *testing.T, s sample, res events.APIGatewayV2HTTPResponse, answered map[string]events.APIGatewayV2HTTPResponse) {
	t.Helper()
	w := expectations[s.name]
	if res.StatusCode != w.status {
		t.Errorf("%s: status %d, want %d (body %s)", s.name, res.StatusCode, w.status, res.Body)
		return
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
		return
	}
	if w.listed > 0 {
		// The page holds after's message preceded by its echo, newest first; other
		// samples of the same conversation may be there too, by the order they ran.
		var page struct {
			Messages []struct{ Direction, MessageID, InReplyTo, ConversationID string }
		}
		if err := json.Unmarshal([]byte(res.Body), &page); err != nil {
			t.Fatalf("%s: history %s: %v", s.name, res.Body, err)
		}
		first := loadSample(t, w.after).in
		i := slices.IndexFunc(page.Messages, func(m struct{ Direction, MessageID, InReplyTo, ConversationID string }) bool {
			return m.Direction == "incoming" && m.MessageID == first.MessageID
		})
		if len(page.Messages) < w.listed || i < 1 || page.Messages[i-1].InReplyTo != first.MessageID || page.Messages[i-1].Direction != "outgoing" {
			t.Errorf("%s: history %s, want at least %d messages with %s preceded by its echo", s.name, res.Body, w.listed, first.MessageID)
		}
		return
	}
	if w.replay {
		if first := answered[w.after]; res.Body != first.Body {
			t.Errorf("%s: body\n%s\nwant the first answer again\n%s", s.name, res.Body, first.Body)
		}
		return
	}
	if _, ok := res.Headers["Idempotent-Replayed"]; ok {
		t.Errorf("%s: a first answer is marked Idempotent-Replayed", s.name)
	}
	var got struct {
		Message struct {
			ID, Type, Direction string
			Payload             json.RawMessage
			Tags                struct{ ID string }
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
	if got.Message.ID != message.MessageRef(in.ConversationID, in.MessageID) || got.Message.Tags.ID != in.MessageID ||
		got.Message.Type != in.Type || got.Message.Direction != "incoming" || !jsonEqual(got.Message.Payload, in.Payload) {
		t.Errorf("%s: message %+v, want id %s, tag %s, type %s, payload %s", s.name, got.Message,
			message.MessageRef(in.ConversationID, in.MessageID), in.MessageID, in.Type, in.Payload)
	}
	if got.User.ID != message.UserRef(in.UserID) || got.User.Tags.ID != in.UserID {
		t.Errorf("%s: user %+v, want %s tagged %s", s.name, got.User, message.UserRef(in.UserID), in.UserID)
	}
	if got.Conversation.ID != message.ConversationRef(in.ConversationID) || got.Conversation.Tags.ID != in.ConversationID {
		t.Errorf("%s: conversation %+v, want %s tagged %s", s.name, got.Conversation, message.ConversationRef(in.ConversationID), in.ConversationID)
	}
}

// checkRecord: an accepted message leaves a completed record of itself; a refused one
// leaves nothing, or the earlier message's record untouched.
func checkRecord(t *testing.T, b *backend, s sample) {
	t.Helper()
	if !s.valid {
		return
	}
	w := expectations[s.name]
	rec, found, err := b.store.Record(context.Background(), message.MessageRef(s.in.ConversationID, s.in.MessageID))
	switch {
	case err != nil:
		t.Errorf("%s: read record: %v", s.name, err)
	case w.status == 200 || w.after != "":
		if !found || rec.Status != message.Completed {
			t.Errorf("%s: record found %v status %q, want a completed record", s.name, found, rec.Status)
		}
		if sameMessage := rec.RequestHash == s.in.Hash(); sameMessage != (w.status == 200) {
			t.Errorf("%s: the record holds this message: %v, want %v", s.name, sameMessage, w.status == 200)
		}
	case found:
		t.Errorf("%s: answered %d but left a record %+v", s.name, w.status, rec)
	}
}

// checkQueue: the queue holds exactly one echo of each enqueued message: the
// six-field webhook body, grouped by conversation, with the delivery attributes.
func checkQueue(t *testing.T, b *backend) {
	t.Helper()
	ctx := context.Background()
	want := map[string]message.Inbound{} // webhook id -> message
	for name, w := range expectations {
		if w.enqueued {
			s := loadSample(t, name)
			want[message.ReplyRef(s.in.ConversationID, s.in.MessageID, 0)] = s.in
		}
	}
	got := map[string]bool{}
	for range 20 {
		msgs, err := b.queue.Receive(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			_ = b.queue.Delete(ctx, m.ReceiptHandle) // FIFO: let the group's next one out
			id := attr(m, "parley-webhook-id")
			in, ok := want[id]
			if !ok || got[id] {
				t.Errorf("unexpected message on the queue (id %s, seen before %v): %s", id, got[id], m.Body)
				continue
			}
			got[id] = true
			body, _ := message.Marshal(message.Webhook{
				Type: in.Type, Payload: in.Payload, ConversationID: in.ConversationID,
				BotpressUserID: message.UserRef(in.UserID), BotpressMessageID: id,
				BotpressConversationID: message.ConversationRef(in.ConversationID),
			})
			if m.Body != string(body) {
				t.Errorf("queued body\n%s\nwant\n%s", m.Body, body)
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(m.Body), &fields); err != nil || len(fields) != 6 {
				t.Errorf("queued body has %d fields, want the six of the contract: %s", len(fields), m.Body)
			}
			if g := m.Attributes["MessageGroupId"]; g != message.ConversationRef(in.ConversationID) {
				t.Errorf("%s: MessageGroupId %q, want the conversation %s", id, g, message.ConversationRef(in.ConversationID))
			}
			if attr(m, "parley-in-reply-to") != in.MessageID || attr(m, "parley-reply-index") != "1" || attr(m, "parley-reply-count") != "1" {
				t.Errorf("%s: attributes %+v, want in-reply-to %s, 1 of 1", id, m.MessageAttributes, in.MessageID)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d messages on the queue, want %d (one per accepted message, none for a replay)", len(got), len(want))
	}
}

// checkTable: one record per accepted message, and otherwise only the token and the
// conversations' history.
func checkTable(t *testing.T, b *backend) {
	t.Helper()
	out, err := b.ddb.Scan(context.Background(), &dynamodb.ScanInput{TableName: &b.table, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, w := range expectations {
		if w.status == 200 && !w.replay && w.listed == 0 {
			accepted++
		}
	}
	records := 0
	for _, item := range out.Items {
		pk, _ := item["pk"].(*dynamotypes.AttributeValueMemberS)
		sk, _ := item["sk"].(*dynamotypes.AttributeValueMemberS)
		switch {
		case pk == nil || sk == nil:
			t.Errorf("item without string keys: %v", item)
		case sk.Value == "idempotency":
			records++
		case pk.Value == "token" || strings.HasPrefix(pk.Value, "hist#"):
		default:
			t.Errorf("unexpected item %s/%s", pk.Value, sk.Value)
		}
	}
	if records != accepted {
		t.Errorf("%d idempotency records, want %d: one per accepted message, none for a refused one", records, accepted)
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
