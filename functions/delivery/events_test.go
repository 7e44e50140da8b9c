package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/runtimeapi"
	"github.com/parley-chat/parley/shared/sqsfifo"
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
	// functionTimeout is the delivery function's timeout in template.yaml.
	functionTimeout = 120 * time.Second
)

// deliveryCase is one run of a delivery event: the receiver rejects some records'
// webhooks with a 500, and the handler reports some records to retry.
type deliveryCase struct {
	name     string
	reject   []int // records, by position in the file, the receiver answers 500
	failures []int // records reported as batch item failures, in order
}

// expectations covers every delivery-*.json in events/; TestEventFilesAreCovered fails
// when a file has none, or an expectation has no file.
var expectations = map[string][]deliveryCase{
	"delivery-batch.json": {
		{name: "receiver answers 2xx"},
		// conv-8's first message fails: it and conv-8's second come back; conv-7 and
		// conv-9 are delivered all the same.
		{name: "receiver fails one message", reject: []int{1}, failures: []int{1, 4}},
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

// sample is one event file: the bytes Lambda would pass and the decoded event.
type sample struct {
	name string
	raw  []byte
	ev   events.SQSEvent
}

// loadSample reads a delivery event and checks it is what the inbound function and
// an SQS FIFO event source mapping would make of bot messages.
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
	groups := map[string]events.SQSMessage{} // conversation -> its last record so far
	for i, r := range s.ev.Records {
		where := fmt.Sprintf("events/%s record %d", name, i)
		for _, k := range []string{"MessageGroupId", "MessageDeduplicationId", "ApproximateReceiveCount", "SentTimestamp"} {
			if r.Attributes[k] == "" {
				t.Errorf("%s: no attribute %s", where, k)
			}
		}
		for _, k := range []string{delivery.AttrWebhookID, delivery.AttrInReplyTo, delivery.AttrReplyIndex, delivery.AttrReplyCount} {
			if a := r.MessageAttributes[k]; a.StringValue == nil || *a.StringValue == "" || a.DataType != "String" {
				t.Errorf("%s: message attribute %s = %+v, want a String", where, k, a)
			}
		}
		if sum := md5.Sum([]byte(r.Body)); r.Md5OfBody != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: md5OfBody %s is not the body's", where, r.Md5OfBody)
		}
		if r.MessageId == "" || r.ReceiptHandle == "" || r.EventSource != "aws:sqs" || !strings.HasSuffix(r.EventSourceARN, ".fifo") || r.AWSRegion == "" {
			t.Errorf("%s: messageId %q receiptHandle %q eventSource %q eventSourceARN %q awsRegion %q; want a FIFO queue's record",
				where, r.MessageId, r.ReceiptHandle, r.EventSource, r.EventSourceARN, r.AWSRegion)
		}
		var w message.Webhook
		var fields map[string]json.RawMessage
		if json.Unmarshal([]byte(r.Body), &fields) != nil || len(fields) != 6 || json.Unmarshal([]byte(r.Body), &w) != nil {
			t.Errorf("%s: body is not the six-field webhook of CONTRACT.md §2: %s", where, r.Body)
			continue
		}
		if id := attr(r, delivery.AttrWebhookID); w.BotpressMessageID != id || r.Attributes["MessageDeduplicationId"] != id {
			t.Errorf("%s: botpressMessageId %s, webhook id %s, deduplication id %s: want one id", where, w.BotpressMessageID, id, r.Attributes["MessageDeduplicationId"])
		}
		if g := r.Attributes["MessageGroupId"]; g != message.ConversationRef(w.ConversationID) || g != w.BotpressConversationID {
			t.Errorf("%s: MessageGroupId %s, want the conversation %s", where, g, message.ConversationRef(w.ConversationID))
		}
		g := r.Attributes["MessageGroupId"]
		if prev, ok := groups[g]; ok {
			// A FIFO batch holds a conversation's messages in the order they were sent.
			if seqLess(r.Attributes["SequenceNumber"], prev.Attributes["SequenceNumber"]) ||
				(attr(r, delivery.AttrInReplyTo) == attr(prev, delivery.AttrInReplyTo) && number(attr(r, delivery.AttrReplyIndex)) <= number(attr(prev, delivery.AttrReplyIndex))) {
				t.Errorf("%s: out of order in conversation %s", where, g)
			}
		}
		groups[g] = r
	}
	if len(s.ev.Records) < 2 || len(groups) < 2 {
		t.Errorf("events/%s: %d records in %d conversations, want several of several", name, len(s.ev.Records), len(groups))
	}
	return s
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
		reject := rc.reject[r.Header.Get("webhook-id")] || r.Method != "POST" || r.URL.Path != "/parley/responses"
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

// reset forgets what was received and rejects the webhooks of records reject.
func (rc *receiver) reset(s sample, reject []int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got, rc.reject = nil, map[string]bool{}
	for _, i := range reject {
		rc.reject[attr(s.ev.Records[i], delivery.AttrWebhookID)] = true
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

// backend is a fresh table and FIFO queue with its FIFO dead-letter queue in the
// emulators, a fake Secrets Manager and a receiver.
type backend struct {
	table, queueURL, deadURL string
	ddbURL, sqsURL           string
	ddb                      *dynamodb.Client
	store                    *dynamo.Store
	queue                    *sqsfifo.Queue
	sm                       *secretsManager
	rc                       *receiver
}

var backends atomic.Int64

func newBackend(t *testing.T) *backend {
	t.Helper()
	ctx := context.Background()
	d, q := emulator.DynamoDB(t), emulator.SQS(t)
	b := &backend{ddb: d.DynamoDBClient(), ddbURL: d.URL, sqsURL: q.URL, sm: newSecretsManager(t), rc: newReceiver(t)}
	b.table = fmt.Sprintf("parley-delivery-events-%d-%d", time.Now().UnixNano(), backends.Add(1))
	if err := dynamo.CreateTable(ctx, b.ddb, b.table); err != nil {
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
	b.store = dynamo.New(b.ddb, b.table)
	b.queue = sqsfifo.New(client, b.queueURL, b.deadURL)
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
// env.json's variables pointed at b, the signing secret's ARN, and the variables
// Lambda sets, with the SDK endpoints at the emulators and the fake Secrets Manager.
func (b *backend) environment(t *testing.T) map[string]string {
	t.Helper()
	env := envJSON(t)
	maps.Copy(env, runtimeapi.LambdaEnv("Parley-dev-DeliveryFunction", b.ddbURL, b.sqsURL))
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
// main wires it, on DynamoDB Local, local-aws-sqs, a fake Secrets Manager and a real
// HTTP receiver.
func TestEventsThroughHandler(t *testing.T) {
	b := newBackend(t)
	h := b.handler(t, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	for _, name := range slices.Sorted(maps.Keys(expectations)) {
		s := loadSample(t, name)
		for _, c := range expectations[name] {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				b.rc.reset(s, c.reject)
				var ev events.SQSEvent
				if err := json.Unmarshal(s.raw, &ev); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), functionTimeout)
				defer cancel()
				res, err := h.Handle(ctx, ev)
				if err != nil {
					t.Fatalf("Handle: %v", err)
				}
				checkDelivery(t, b, s, c, res)
			})
		}
	}
	if n := b.sm.calls.Load(); n != 1 {
		t.Errorf("%d Secrets Manager calls, want 1", n)
	}
}

// checkDelivery compares the batch response and what the receiver got with c.
func checkDelivery(t *testing.T, b *backend, s sample, c deliveryCase, res events.SQSEventResponse) {
	t.Helper()
	recs := s.ev.Records
	var gotFailures, wantFailures []string
	for _, f := range res.BatchItemFailures {
		gotFailures = append(gotFailures, f.ItemIdentifier)
	}
	for _, i := range c.failures {
		wantFailures = append(wantFailures, recs[i].MessageId)
	}
	if !slices.Equal(gotFailures, wantFailures) {
		t.Errorf("batch item failures %v, want %v", gotFailures, wantFailures)
	}

	secrets, err := webhook.ParseSecrets("whsec_" + signingSecret)
	if err != nil {
		t.Fatal(err)
	}
	posts := b.rc.posts()
	byID := map[string][]post{}
	var order []string
	for _, p := range posts {
		id := p.header.Get("webhook-id")
		byID[id] = append(byID[id], p)
		order = append(order, id)
	}
	for i, r := range recs {
		id := attr(r, delivery.AttrWebhookID)
		attempted := !slices.Contains(c.failures, i) || slices.Contains(c.reject, i)
		got := byID[id]
		if !attempted {
			if len(got) != 0 {
				t.Errorf("record %d (%s) was POSTed after its conversation failed", i, id)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("record %d (%s): %d POSTs, want 1", i, id, len(got))
			continue
		}
		p := got[0]
		if p.body != r.Body {
			t.Errorf("record %d: the receiver got\n%s\nwant the queued body byte for byte\n%s", i, p.body, r.Body)
		}
		h := p.header
		if err := webhook.Verify(secrets, h, []byte(p.body), 0, time.Now()); err != nil {
			t.Errorf("record %d: webhook-signature %q: %v", i, h.Get("webhook-signature"), err)
		}
		if h.Get("Content-Type") != "application/json" || h.Get(webhook.HeaderInReplyTo) != attr(r, delivery.AttrInReplyTo) ||
			h.Get(webhook.HeaderReplyIndex) != attr(r, delivery.AttrReplyIndex) || h.Get(webhook.HeaderReplyCount) != attr(r, delivery.AttrReplyCount) {
			t.Errorf("record %d: headers %v, want JSON, in reply to %s, %s of %s", i, h,
				attr(r, delivery.AttrInReplyTo), attr(r, delivery.AttrReplyIndex), attr(r, delivery.AttrReplyCount))
		}
	}
	if want := len(recs) - len(c.failures) + len(c.reject); len(posts) != want {
		t.Errorf("the receiver got %d POSTs, want %d", len(posts), want)
	}
	// Each conversation in the file's order; conversations may interleave.
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	last := map[string]int{}
	for _, r := range recs {
		id, g := attr(r, delivery.AttrWebhookID), r.Attributes["MessageGroupId"]
		p, ok := pos[id]
		if !ok {
			continue
		}
		if prev, seen := last[g]; seen && p < prev {
			t.Errorf("conversation %s delivered out of order: %v", g, order)
		}
		last[g] = p
	}
	ctx := context.Background()
	for _, i := range c.reject {
		// The failed attempt was counted in the table: the next failure is the second.
		if n, err := b.store.Failed(ctx, recs[i].MessageId, time.Now()); err != nil || n != 2 {
			t.Errorf("record %d: attempts after one more failure = %d (%v), want 2", i, n, err)
		}
	}
	if dead, err := b.queue.DeadLetters(ctx, 10); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %d (%v), want none: a 500 is retried", len(dead), err)
	}
}

// seqLess compares SQS FIFO sequence numbers: decimal strings of up to 128 bits.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func number(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}
