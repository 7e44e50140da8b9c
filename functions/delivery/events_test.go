package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/runtimeapi"
	"github.com/parley-chat/parley/shared/webhook"
)

// TestMain stops the emulators the tests started.
func TestMain(m *testing.M) { emulator.Main(m) }

const (
	eventsDir = "../../events"
	// functionKey is this function's entry in events/env.json (its template.yaml id).
	functionKey = "DeliveryFunction"
	// signingSecret is what the fake Secrets Manager holds: 44 alphanumeric
	// characters, as the stack's generated secret (the base64 of a 33-byte key).
	signingSecret = "q7Xv2LmN9pR4tY8wZ3bC6dF1gH5jK0sA2eU7iO4lP9nM"
	secretARN     = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ParleySigningSecret-Ab12Cd"
)

// deliveryCase is one run of a delivery event, each after the one before on the same
// table and queues: every record received for the receives-th time, the receiver
// answering 500 to the bot messages of some records.
type deliveryCase struct {
	name     string
	receives int   // ApproximateReceiveCount of every record: 1 for a first receipt
	reject   []int // records, by position in the file, whose bot message the receiver answers 500
	failures []int // records reported as batch item failures, in order
}

// expectations covers every delivery-*.json in events/; TestEventFilesAreCovered fails
// when a file has none, or an expectation has no file.
var expectations = map[string][]deliveryCase{
	// Records: 0 the previous version's message (conv-8), 1 and 2 conv-7's turns,
	// 3 conv-8's turn.
	"delivery-batch.json": {
		// The bot answers each turn once; its answers are stored, then POSTed.
		{name: "first receipt", receives: 1},
		// The same batch again, as after a lost response: the stored answers are
		// POSTed again under the same webhook ids, and the bot does not run.
		{name: "received again", receives: 2},
		// conv-7's first answer fails: it and conv-7's second turn come back; conv-8
		// goes on.
		{name: "receiver fails one message", receives: 3, reject: []int{1}, failures: []int{1, 2}},
	},
}

// TestEventFilesAreCovered: every JSON file of events/ is env.json or belongs to a
// function by its prefix; each of this function's files has an expectation and each
// expectation a file; events/README.md describes every file.
func TestEventFilesAreCovered(t *testing.T) {
	files := eventFiles(t)
	var mine []string
	for _, f := range files {
		switch {
		case strings.HasPrefix(f, "delivery-"):
			mine = append(mine, f)
		case strings.HasPrefix(f, "inbound-"):
		default:
			t.Errorf("events/%s: name it inbound-*.json or delivery-*.json so a test runs it", f)
		}
	}
	for _, f := range mine {
		if len(expectations[f]) == 0 {
			t.Errorf("events/%s has no expectation: add it to expectations in functions/delivery/events_test.go", f)
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

// sample is one event file: the bytes Lambda would pass, the decoded event, and each
// record's job (or why it is not one).
type sample struct {
	name string
	raw  []byte
	ev   events.SQSEvent
	recs []record
}

type record struct {
	m     events.SQSMessage
	job   message.Job
	isJob bool
	err   error // why it is not a job
}

// replyID is the webhook id of the first (the echo bot's only) answer to a turn.
func (r record) replyID() string {
	return message.ReplyRef(r.job.Channel, r.job.ConversationID, r.job.Message.MessageID, 0)
}

// loadSample reads a delivery event and checks it is what an SQS FIFO event source
// mapping hands over: complete records whose digests match, and jobs grouped by their
// conversation with their ref as deduplication id, in order.
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
		t.Fatalf("events/%s is not an SQS event: %v", name, err)
	}
	groups := map[string]bool{}
	lastSeq := ""
	jobs, others := 0, 0
	for i, m := range s.ev.Records {
		where := fmt.Sprintf("events/%s record %d", name, i)
		for _, k := range []string{"MessageGroupId", "MessageDeduplicationId", "ApproximateReceiveCount", "SentTimestamp", "SequenceNumber", "SenderId", "ApproximateFirstReceiveTimestamp"} {
			if m.Attributes[k] == "" {
				t.Errorf("%s: no attribute %s", where, k)
			}
		}
		attrs := map[string]string{}
		for k, a := range m.MessageAttributes {
			if a.StringValue == nil || a.DataType != "String" {
				t.Errorf("%s: message attribute %s = %+v, want a String", where, k, a)
			}
			attrs[k] = aws.ToString(a.StringValue)
		}
		if m.Md5OfBody != md5Hex(m.Body) || m.Md5OfMessageAttributes != md5OfAttributes(attrs) {
			t.Errorf("%s: md5OfBody %s, md5OfMessageAttributes %s; not the body's and attributes' (%s, %s)", where,
				m.Md5OfBody, m.Md5OfMessageAttributes, md5Hex(m.Body), md5OfAttributes(attrs))
		}
		if m.MessageId == "" || m.ReceiptHandle == "" || m.EventSource != "aws:sqs" || !strings.HasSuffix(m.EventSourceARN, ".fifo") || m.AWSRegion == "" {
			t.Errorf("%s: messageId %q receiptHandle %q eventSource %q eventSourceARN %q awsRegion %q; want a FIFO queue's record",
				where, m.MessageId, m.ReceiptHandle, m.EventSource, m.EventSourceARN, m.AWSRegion)
		}
		// A FIFO batch holds the messages in the order they were sent.
		if seq := m.Attributes["SequenceNumber"]; seqLess(seq, lastSeq) || seq == lastSeq {
			t.Errorf("%s: sequence number %s after %s", where, seq, lastSeq)
		} else {
			lastSeq = seq
		}
		r := record{m: m}
		r.job, r.err = message.DecodeJob([]byte(m.Body))
		r.isJob = r.err == nil
		s.recs = append(s.recs, r)
		if !r.isJob {
			others++
			continue
		}
		jobs++
		j := r.job
		groups[j.ConversationRef] = true
		if g, d := m.Attributes["MessageGroupId"], m.Attributes["MessageDeduplicationId"]; g != j.ConversationRef || d != j.DedupID() {
			t.Errorf("%s: group %s, deduplication id %s; want the job's conversation %s and ref and time %s", where, g, d, j.ConversationRef, j.DedupID())
		}
		if j.Channel != message.DefaultChannel || j.Kind != message.KindTurn || j.Ref != message.MessageRef(j.Channel, j.ConversationID, j.Message.MessageID) {
			t.Errorf("%s: a %s job of channel %s, ref %s; want turns of the default channel, with their message's ref", where, j.Kind, j.Channel, j.Ref)
		}
		if !maps.Equal(attrs, map[string]string{message.AttrKind: j.Kind}) {
			t.Errorf("%s: message attributes %v, want those shared/sqsfifo sends: %s=%s", where, attrs, message.AttrKind, j.Kind)
		}
	}
	if jobs < 3 || len(groups) < 2 || others < 1 {
		t.Errorf("events/%s: %d jobs in %d conversations and %d other messages; want several jobs of several conversations, and a message that is not a job",
			name, jobs, len(groups), others)
	}
	return s
}

// received is the event as Lambda hands it over the n-th time each record is received.
func (s sample) received(t *testing.T, n int) (events.SQSEvent, []byte) {
	t.Helper()
	var ev events.SQSEvent
	if err := json.Unmarshal(s.raw, &ev); err != nil {
		t.Fatal(err)
	}
	changed := false
	for _, r := range ev.Records {
		if r.Attributes["ApproximateReceiveCount"] != fmt.Sprint(n) {
			r.Attributes["ApproximateReceiveCount"] = fmt.Sprint(n)
			changed = true
		}
	}
	if !changed {
		return ev, s.raw // the file itself, byte for byte
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return ev, raw
}

// receiver is the Response Endpoint: it records every POST and answers 500 to the
// webhook ids it is told to reject, 200 to the others.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []post
	reject map[string]bool
}

type post struct {
	header http.Header
	body   string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{reject: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, post{r.Header.Clone(), string(body)})
		reject := rc.reject[r.Header.Get(webhook.HeaderID)] || r.Method != "POST" || r.URL.Path != "/parley/responses"
		rc.mu.Unlock()
		if reject {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// reset forgets what was received and rejects the bot messages of records reject.
func (rc *receiver) reset(s sample, reject []int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got, rc.reject = nil, map[string]bool{}
	for _, i := range reject {
		rc.reject[s.recs[i].replyID()] = true
	}
}

func (rc *receiver) posts() []post {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// secretsManager is a fake Secrets Manager (JSON protocol) holding the signing secret.
type secretsManager struct {
	srv   *httptest.Server
	calls atomic.Int64
}

func newSecretsManager(t *testing.T) *secretsManager {
	sm := &secretsManager{}
	sm.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sm.calls.Add(1)
		var in struct{ SecretId string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		// The SDK signs with the function's credentials for its region.
		auth := r.Header.Get("Authorization")
		switch {
		case r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue":
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"__type":"UnknownOperationException","message":"%s"}`, r.Header.Get("X-Amz-Target"))
		case !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=local/") || !strings.Contains(auth, "/us-east-1/secretsmanager/aws4_request"):
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
		case in.SecretId != secretARN:
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
		default:
			json.NewEncoder(w).Encode(map[string]any{
				"ARN": secretARN, "Name": "ParleySigningSecret", "SecretString": signingSecret,
				"VersionId": "0d3f9c1e-5b7a-4e2d-8c6f-1a9b3e5d7f20", "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7954e9,
			})
		}
	}))
	t.Cleanup(sm.srv.Close)
	return sm
}

// dynamoCalls counts the DynamoDB operations the function makes: it stands between
// the function's SDK client and DynamoDB Local. What a run costs is also how the tests
// see the bot not run again: an answer is always stored, with a PutItem.
type dynamoCalls struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   map[string]int
}

func newDynamoCalls(t *testing.T, target string) *dynamoCalls {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	c := &dynamoCalls{n: map[string]int{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".") // DynamoDB_20120810.PutItem
		// The SDK's own retries of a call (a reset connection on a loaded machine) are
		// the same call: "amz-sdk-request: attempt=2; max=3".
		if attempt := r.Header.Get("amz-sdk-request"); attempt == "" || strings.HasPrefix(attempt, "attempt=1;") {
			c.mu.Lock()
			c.n[op]++
			c.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// take returns the counts since the last take.
func (c *dynamoCalls) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// backend is a fresh table and FIFO queue with its FIFO dead-letter queue in the
// emulators, a fake Secrets Manager and a receiver; and what the runs so far left,
// which a later run must not change.
type backend struct {
	table, queueURL, deadURL string
	sqsURL                   string
	store                    *dynamo.Store
	queue                    *sqsfifo.Queue
	sm                       *secretsManager
	rc                       *receiver
	calls                    *dynamoCalls
	historyTTL               time.Duration // env.json's PARLEY_HISTORY_TTL
	functionTimeout          time.Duration // template.yaml's, for env.json's PARLEY_BOT_TIMEOUT

	exchanges map[string]message.Exchange // by ref: as the first run stored them
	bodies    map[string]string           // by webhook id: as first POSTed
	attempts  map[string]int              // by ref: failed attempts so far
}

var backends atomic.Int64

func newBackend(t *testing.T) *backend {
	t.Helper()
	ctx := context.Background()
	d, q := emulator.DynamoDB(t), emulator.SQS(t)
	b := &backend{sqsURL: q.URL, sm: newSecretsManager(t), rc: newReceiver(t), calls: newDynamoCalls(t, d.URL),
		exchanges: map[string]message.Exchange{}, bodies: map[string]string{}, attempts: map[string]int{}}
	b.table = fmt.Sprintf("parley-delivery-events-%d-%d", time.Now().UnixNano(), backends.Add(1))
	ddb := d.DynamoDBClient()
	if err := dynamo.CreateTable(ctx, ddb, b.table); err != nil {
		t.Fatal(err)
	}
	client := q.SQSClient()
	fifo := map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"}
	dead, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(b.table + "-dead.fifo"), Attributes: fifo})
	if err != nil {
		t.Fatal(err)
	}
	main, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(b.table + ".fifo"), Attributes: fifo})
	if err != nil {
		t.Fatal(err)
	}
	b.queueURL, b.deadURL = aws.ToString(main.QueueUrl), aws.ToString(dead.QueueUrl)
	b.store = dynamo.New(ddb, b.table)
	b.queue = sqsfifo.New(client, b.queueURL, b.deadURL)
	env := envJSON(t)
	if b.historyTTL, err = time.ParseDuration(env["PARLEY_HISTORY_TTL"]); err != nil {
		t.Fatalf("events/env.json PARLEY_HISTORY_TTL: %v", err)
	}
	bot, err := time.ParseDuration(env["PARLEY_BOT_TIMEOUT"])
	if err != nil {
		t.Fatalf("events/env.json PARLEY_BOT_TIMEOUT: %v", err)
	}
	b.functionTimeout = delivery.FunctionTimeout(bot)
	return b
}

// accept stores the records of s's jobs as the inbound function did when it
// accepted them: the delivery side counts attempts in them, and reads a job whose
// record is gone as erased.
func (b *backend) accept(t *testing.T, s sample) {
	t.Helper()
	for _, r := range s.recs {
		if !r.isJob {
			continue
		}
		j := r.job
		rec := message.Record{Key: j.Key, RequestHash: j.Message.Hash(), UserRef: message.UserRef(j.Channel, j.UserID),
			CreatedAt: j.CreatedAt, ExpiresAt: j.CreatedAt.Add(inbound.MinRecordTTL)}
		if _, ok, err := b.store.Accept(context.Background(), rec, j.CreatedAt); err != nil || !ok {
			t.Fatalf("store the record of %s: accepted %v, %v", j.Ref, ok, err)
		}
	}
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
// env.json's variables pointed at b, the signing secret's ARN, and the variables
// Lambda sets, with the SDK endpoints at the emulators (DynamoDB's through the
// counting proxy) and the fake Secrets Manager.
func (b *backend) environment(t *testing.T) map[string]string {
	t.Helper()
	env := envJSON(t)
	maps.Copy(env, runtimeapi.LambdaEnv("Parley-dev-DeliveryFunction", b.calls.srv.URL, b.sqsURL))
	maps.Copy(env, map[string]string{
		"PARLEY_TABLE_NAME": b.table, "PARLEY_QUEUE_URL": b.queueURL, "PARLEY_DEAD_LETTER_QUEUE_URL": b.deadURL,
		"PARLEY_RESPONSE_ENDPOINT_URL": b.rc.srv.URL + "/parley/responses", "PARLEY_SIGNING_SECRET_ARN": secretARN,
		// The SDKs' name for Secrets Manager's endpoint variable (service id "Secrets Manager").
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": b.sm.srv.URL,
	})
	return env
}

// handler is the handler main's setup builds, in this process, in that environment.
func (b *backend) handler(t *testing.T, log *slog.Logger) *delivery.Handler {
	t.Helper()
	env := b.environment(t)
	h, err := setup(func(k string) string { return env[k] }, log)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	return h
}

// TestEventsThroughHandler runs every delivery event through the handler, wired as
// main wires it (the echo bot of events/env.json), on DynamoDB Local, local-aws-sqs,
// a fake Secrets Manager and a real HTTP receiver.
func TestEventsThroughHandler(t *testing.T) {
	b := newBackend(t)
	logs := &lockedBuffer{}
	h := b.handler(t, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{ReplaceAttr: lambdacontext.ReplaceAttr})))
	for _, name := range slices.Sorted(maps.Keys(expectations)) {
		s := loadSample(t, name)
		b.accept(t, s)
		for _, c := range expectations[name] {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				ev, _ := s.received(t, c.receives)
				b.rc.reset(s, c.reject)
				b.calls.take()
				logs.reset()
				ctx, cancel := context.WithTimeout(context.Background(), b.functionTimeout)
				defer cancel()
				res, err := h.Handle(ctx, ev)
				if err != nil {
					t.Fatalf("Handle: %v", err)
				}
				if res.BatchItemFailures == nil {
					t.Error("batchItemFailures is null; Lambda wants a list, empty when every record is done")
				}
				checkDelivery(t, b, s, c, res)
				checkLogs(t, s, c, parseLogs(t, logs.String()))
			})
		}
	}
	if n := b.sm.calls.Load(); n != 1 {
		t.Errorf("%d Secrets Manager calls, want 1", n)
	}
}

// checkDelivery compares a run's batch response, what the receiver got, the dead
// letters, the table and the DynamoDB calls with c.
func checkDelivery(t *testing.T, b *backend, s sample, c deliveryCase, res events.SQSEventResponse) {
	t.Helper()
	calls := b.calls.take()
	var gotFailures, wantFailures []string
	for _, f := range res.BatchItemFailures {
		gotFailures = append(gotFailures, f.ItemIdentifier)
	}
	for _, i := range c.failures {
		wantFailures = append(wantFailures, s.recs[i].m.MessageId)
	}
	if !slices.Equal(gotFailures, wantFailures) {
		t.Errorf("batch item failures %v, want %v", gotFailures, wantFailures)
	}

	secrets, err := webhook.ParseSecrets("whsec_" + signingSecret)
	if err != nil {
		t.Fatal(err)
	}
	posts := b.rc.posts()
	at := map[string][]int{} // webhook id -> positions among the POSTs
	for i, p := range posts {
		id := p.header.Get(webhook.HeaderID)
		at[id] = append(at[id], i)
	}
	attempted, last := 0, map[string]int{}
	for i, r := range s.recs {
		if !r.isJob {
			if slices.Contains(c.failures, i) {
				t.Errorf("record %d, not a job, is a batch item failure: it must be dead-lettered, not retried", i)
			}
			continue
		}
		j, id := r.job, r.replyID()
		if slices.Contains(c.failures, i) && !slices.Contains(c.reject, i) {
			if len(at[id]) != 0 {
				t.Errorf("record %d (%s) was POSTed after its conversation failed", i, id)
			}
			continue
		}
		attempted++
		if len(at[id]) != 1 {
			t.Errorf("record %d: %d POSTs of %s, want 1", i, len(at[id]), id)
			continue
		}
		p := posts[at[id][0]]
		want, _ := message.Marshal(message.Webhook{Type: j.Message.Type, Payload: j.Message.Payload, ConversationID: j.ConversationID,
			BotpressUserID: message.UserRef(j.Channel, j.UserID), BotpressMessageID: id, BotpressConversationID: j.ConversationRef})
		if p.body != string(want) {
			t.Errorf("record %d: the receiver got\n%s\nwant the echo\n%s", i, p.body, want)
		}
		if first, ok := b.bodies[id]; ok && p.body != first {
			t.Errorf("record %d: POSTed again as\n%s\nfirst POSTed as\n%s", i, p.body, first)
		}
		b.bodies[id] = p.body
		h := p.header
		if err := webhook.Verify(secrets, h, []byte(p.body), 0, time.Now()); err != nil {
			t.Errorf("record %d: webhook-signature %q: %v", i, h.Get(webhook.HeaderSignature), err)
		}
		if h.Get("Content-Type") != "application/json" || h.Get(webhook.HeaderInReplyTo) != j.Message.MessageID ||
			h.Get(webhook.HeaderReplyIndex) != "1" || h.Get(webhook.HeaderReplyCount) != "1" {
			t.Errorf("record %d: headers %v, want JSON, in reply to %s, 1 of 1", i, h, j.Message.MessageID)
		}
		// Each conversation in the file's order; conversations may interleave.
		if prev, ok := last[j.ConversationRef]; ok && at[id][0] < prev {
			t.Errorf("record %d: POSTed before an earlier turn of its conversation", i)
		}
		last[j.ConversationRef] = at[id][0]
	}
	if len(posts) != attempted {
		t.Errorf("the receiver got %d POSTs, want %d", len(posts), attempted)
	}
	for _, i := range c.reject {
		b.attempts[s.recs[i].job.Ref]++
	}
	checkDeadLetters(t, b, s)
	checkTable(t, b, s, c)

	// A first receipt runs the bot and stores its answer: one PutItem per turn, and
	// nothing read but the endpoint's health, once per warm function a minute (the
	// first run here). A later one reads the record and the answer (one BatchGetItem)
	// and stores nothing: the bot did not run. A failed attempt is counted in the
	// record (one UpdateItem, two when the step changed), in the message's attempt
	// log (one) and in the endpoint's health (one, and one more when its list of
	// recent failures is trimmed: once every RecentFailures failures).
	var want map[string]int
	if c.receives == 1 {
		want = map[string]int{"PutItem": attempted, "GetItem": 1}
	} else {
		want = map[string]int{"BatchGetItem": attempted}
	}
	if len(c.reject) > 0 {
		want["UpdateItem"] = calls["UpdateItem"]
		trims := (len(c.reject) + message.RecentFailures - 1) / message.RecentFailures
		if calls["UpdateItem"] < 3*len(c.reject) || calls["UpdateItem"] > 4*len(c.reject)+trims {
			t.Errorf("%d UpdateItem calls for %d failed attempts, want three or four each (and at most %d to trim the recent failures)", calls["UpdateItem"], len(c.reject), trims)
		}
	}
	if !maps.Equal(calls, want) {
		t.Errorf("DynamoDB calls %v, want %v", calls, want)
	}
}

// checkDeadLetters: each record that is not a job is in the dead-letter queue once,
// as it was, with the reason; no job is.
func checkDeadLetters(t *testing.T, b *backend, s sample) {
	t.Helper()
	dead, err := b.queue.DeadLetters(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.recs {
		var got []events.SQSMessage
		for _, d := range dead {
			if d.Body == r.m.Body {
				got = append(got, d)
			}
		}
		if r.isJob {
			if len(got) != 0 {
				t.Errorf("job %s was dead-lettered: %v", r.job.Ref, got[0].MessageAttributes)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("record %s, not a job: %d dead letters, want 1", r.m.MessageId, len(got))
			continue
		}
		d := got[0]
		failedAt, err := time.Parse(time.RFC3339, attr(d, message.AttrFailedAt))
		if attr(d, message.AttrFailureReason) != r.err.Error() || attr(d, message.AttrAttempts) != "0" || err != nil || time.Since(failedAt) > time.Hour {
			t.Errorf("dead letter %v, want reason %q, 0 attempts, failed now", d.MessageAttributes, r.err)
		}
		if !strings.Contains(r.err.Error(), message.ErrJob.Error()) {
			t.Errorf("reason %q does not say it is not a job", r.err)
		}
		for k := range r.m.MessageAttributes {
			if attr(d, k) != attr(r.m, k) {
				t.Errorf("dead letter attribute %s = %q, want the message's own %q", k, attr(d, k), attr(r.m, k))
			}
		}
		if g := d.Attributes["MessageGroupId"]; g != r.m.Attributes["MessageGroupId"] {
			t.Errorf("dead letter in group %q, want the message's %q", g, r.m.Attributes["MessageGroupId"])
		}
	}
	if n := len(dead); n != len(s.recs)-countJobs(s) {
		t.Errorf("%d dead letters, want one per record that is not a job", n)
	}
}

// checkTable: each turn has its record and one exchange — the user message and the
// echo — owned by the queue message that ran it, never changed by a later run; a
// failed attempt is counted in the record.
func checkTable(t *testing.T, b *backend, s sample, c deliveryCase) {
	t.Helper()
	for i, r := range s.recs {
		if !r.isJob {
			continue
		}
		j := r.job
		rec, recFound, x, xFound, err := b.store.Load(context.Background(), j.Key, j.CreatedAt)
		if err != nil || !recFound || !xFound {
			t.Errorf("record %d: record found %v, exchange found %v (%v)", i, recFound, xFound, err)
			continue
		}
		if rec.Attempts != b.attempts[j.Ref] {
			t.Errorf("record %d: %d failed attempts counted, want %d", i, rec.Attempts, b.attempts[j.Ref])
		}
		if slices.Contains(c.reject, i) && (rec.Step != 0 || rec.Delivered != 0 || rec.FailingSince.IsZero()) {
			t.Errorf("record %d: step %d, delivered %d, failing since %s; want the first bot message failing", i, rec.Step, rec.Delivered, rec.FailingSince)
		}
		if first, ok := b.exchanges[j.Ref]; ok {
			if !reflect.DeepEqual(x, first) {
				t.Errorf("record %d: the exchange changed:\n%+v\nwas\n%+v", i, x, first)
			}
			continue
		}
		b.exchanges[j.Ref] = x
		in := j.Message
		out := x.Outgoing()
		if x.Owner != r.m.MessageId || x.Failure != "" || x.Tombstone || x.ConversationID != j.ConversationID || x.UserID != j.UserID ||
			x.ExpiresAt.Unix() != j.CreatedAt.Add(b.historyTTL).Unix() || len(x.Entries) != 2 || len(out) != 1 {
			t.Errorf("record %d: exchange %+v, want the turn and its echo, owned by %s, expiring %s after the turn (PARLEY_HISTORY_TTL)",
				i, x, r.m.MessageId, b.historyTTL)
			continue
		}
		u, e := x.Entries[0], out[0]
		if u.ID != j.Ref || u.Direction != message.Incoming || u.MessageID != in.MessageID || !u.CreatedAt.Equal(j.CreatedAt) ||
			u.Type != in.Type || string(u.Payload) != string(in.Payload) {
			t.Errorf("record %d: user message %+v, want %s at %s", i, u, j.Ref, j.CreatedAt)
		}
		if e.ID != r.replyID() || e.Direction != message.Outgoing || e.InReplyTo != in.MessageID || e.Type != in.Type ||
			string(e.Payload) != string(in.Payload) || time.Since(e.CreatedAt) > time.Minute {
			t.Errorf("record %d: bot message %+v, want the echo %s, answered now", i, e, r.replyID())
		}
	}
}

// logLine is one JSON line of the function's log.
type logLine struct {
	Level, Message, RequestID, WebhookID, Reason string
	BotMs                                        *float64
	raw                                          string
}

func parseLogs(t *testing.T, out string) []logLine {
	t.Helper()
	var lines []logLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Errorf("log line is not JSON: %s", l)
			continue
		}
		ll.raw = l
		lines = append(lines, ll)
	}
	return lines
}

// checkLogs: one "delivered" line per bot message the receiver took, saying how long
// the bot took when it ran and never when it did not; one "dead-lettered" line with
// the reason per record that is not a job; never a message's text.
func checkLogs(t *testing.T, s sample, c deliveryCase, lines []logLine) {
	t.Helper()
	delivered := map[string]int{}
	var reasons []string
	for _, l := range lines {
		switch l.Message {
		case "delivered":
			delivered[l.WebhookID]++
			if ran := l.BotMs != nil; ran != (c.receives == 1) {
				t.Errorf("receipt %d: the bot ran: %v; want %v: %s", c.receives, ran, c.receives == 1, l.raw)
			}
		case "dead-lettered":
			reasons = append(reasons, l.Reason)
		}
		if l.BotMs != nil && c.receives > 1 {
			t.Errorf("receipt %d: the bot ran again: %s", c.receives, l.raw)
		}
		for _, r := range s.recs {
			if r.isJob && strings.Contains(l.raw, r.job.Message.Text) {
				t.Errorf("the log holds the text of %s: %s", r.job.Ref, l.raw)
			}
		}
	}
	var wantReasons []string
	for i, r := range s.recs {
		switch {
		case !r.isJob:
			wantReasons = append(wantReasons, r.err.Error())
		case slices.Contains(c.failures, i):
			if delivered[r.replyID()] != 0 {
				t.Errorf("record %d: a delivered line, but it failed", i)
			}
		case delivered[r.replyID()] != 1:
			t.Errorf("record %d: %d delivered lines, want 1", i, delivered[r.replyID()])
		}
	}
	slices.Sort(reasons)
	slices.Sort(wantReasons)
	if !slices.Equal(reasons, wantReasons) {
		t.Errorf("dead-lettered lines with reasons %q, want %q", reasons, wantReasons)
	}
}

func countJobs(s sample) int {
	n := 0
	for _, r := range s.recs {
		if r.isJob {
			n++
		}
	}
	return n
}

// seqLess compares SQS FIFO sequence numbers: decimal strings of up to 128 bits.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

// lockedBuffer is a log the handler's goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
