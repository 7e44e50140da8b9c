package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
)

// update rewrites events/delivery-batch.json from the code:
//
//	go test ./functions/delivery -run TestBatchFile -update
var update = flag.Bool("update", false, "rewrite events/"+batchFile+" from the code")

const batchFile = "delivery-batch.json"

// Where the sample batch comes from: the stack's delivery queue (events/env.json's
// PARLEY_QUEUE_URL) and the inbound function's role.
const (
	queueARN = "arn:aws:sqs:us-east-1:123456789012:Parley-dev-DeliveryQueue-EXAMPLE.fifo"
	senderID = "AROA4EXAMPLEROLEID7K2:Parley-dev-InboundFunction"
)

// batchTurns are the requests of events/ whose jobs the sample batch holds, in the
// order the queue got them: two turns of conv-7, then one of conv-8.
var batchTurns = []string{"inbound-text.json", "inbound-rich.json", "inbound-base64.json"}

// Timing of the sample: the inbound function stores a request's record this long
// after API Gateway's timeEpoch, and sends its job this long after that.
const (
	acceptDelay = 27 * time.Millisecond
	sendDelay   = 14 * time.Millisecond
)

// queued is one message on the delivery queue.
type queued struct {
	body         string
	group, dedup string
	attrs        map[string]string // message attributes, all strings
	sent         time.Time
}

// oldMessage is what the previous version left on the queue when the stack was
// updated: a bot message of conv-8 (the six-field webhook, with the attributes that
// version set), not a job. The batch dead-letters it with the reason and goes on.
func oldMessage() queued {
	id := message.ReplyRef(message.DefaultChannel, "conv-8", "m-2000", 0)
	body, _ := message.Marshal(message.Webhook{
		Type: "text", Payload: json.RawMessage(`{"text":"Salut !"}`), ConversationID: "conv-8",
		BotpressUserID: message.UserRef(message.DefaultChannel, "user-99"), BotpressMessageID: id,
		BotpressConversationID: message.ConversationRef(message.DefaultChannel, "conv-8"),
	})
	return queued{
		body: string(body), group: message.ConversationRef(message.DefaultChannel, "conv-8"), dedup: id,
		attrs: map[string]string{"parley-webhook-id": id, "parley-in-reply-to": "m-2000", "parley-reply-index": "1", "parley-reply-count": "1"},
		sent:  time.UnixMilli(1795425230318),
	}
}

// jobOf is the job the inbound function queues for an events/ request, as
// shared/sqsfifo sends it, accepted at the request's timeEpoch plus acceptDelay.
func jobOf(t *testing.T, file string) (message.Job, queued) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("events/%s: %v", file, err)
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			t.Fatalf("events/%s: %v", file, err)
		}
	}
	in, err := message.DecodeInbound(body)
	if err != nil {
		t.Fatalf("events/%s is not a valid message: %v", file, err)
	}
	createdAt := time.UnixMilli(req.RequestContext.TimeEpoch).Add(acceptDelay)
	j := message.TurnJob(message.NewTurn(message.DefaultChannel, in), createdAt)
	enc, err := message.EncodeJob(j)
	if err != nil {
		t.Fatal(err)
	}
	return j, queued{body: string(enc), group: j.ConversationRef, dedup: j.DedupID(),
		attrs: map[string]string{message.AttrKind: j.Kind}, sent: createdAt.Add(sendDelay)}
}

// makeBatch is events/delivery-batch.json as the code makes it: the old message, then
// the jobs of batchTurns, in one batch as the FIFO event source mapping hands it over.
// SQS's own ids and handles are derived from each message, so the file is stable.
func makeBatch(t *testing.T) events.SQSEvent {
	t.Helper()
	qs := []queued{oldMessage()}
	for _, f := range batchTurns {
		_, q := jobOf(t, f)
		qs = append(qs, q)
	}
	received := qs[len(qs)-1].sent.Add(53 * time.Millisecond) // the poll that took the batch
	var ev events.SQSEvent
	for i, q := range qs {
		attrs := map[string]events.SQSMessageAttribute{}
		for k, v := range q.attrs {
			attrs[k] = events.SQSMessageAttribute{StringValue: aws.String(v), StringListValues: []string{}, BinaryListValues: [][]byte{}, DataType: "String"}
		}
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: uuidOf(q.dedup), ReceiptHandle: receiptOf(q.dedup), Body: q.body,
			Md5OfBody: md5Hex(q.body), Md5OfMessageAttributes: md5OfAttributes(q.attrs),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          "1",
				"SentTimestamp":                    strconv.FormatInt(q.sent.UnixMilli(), 10),
				"SequenceNumber":                   fmt.Sprintf("18887264528%09d", 157192192+i*93720832),
				"MessageGroupId":                   q.group,
				"SenderId":                         senderID,
				"MessageDeduplicationId":           q.dedup,
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(received.UnixMilli(), 10),
			},
			MessageAttributes: attrs,
			EventSourceARN:    queueARN, EventSource: "aws:sqs", AWSRegion: "us-east-1",
		})
	}
	return ev
}

// encodeEvent is the file's text: indented, non-ASCII and <>& as they are.
func encodeEvent(t *testing.T, ev events.SQSEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBatchFile: events/delivery-batch.json is what the code makes (a change to the
// job format or to the ids shows here first), and what SQS would hand over: each
// message, sent through shared/sqsfifo to the emulator and received, has the file's
// body, group, deduplication id, attributes and digests.
func TestBatchFile(t *testing.T) {
	path := filepath.Join(eventsDir, batchFile)
	want := encodeEvent(t, makeBatch(t))
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		t.Errorf("events/%s is not what the code makes; first difference at line %d:\n got: %s\nwant: %s\n"+
			"If the change is intended: go test ./functions/delivery -run TestBatchFile -update, and review the diff",
			batchFile, i+1, lineAt(gl, i), lineAt(wl, i))
	}

	ctx := context.Background()
	client := emulator.SQS(t).SQSClient()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(fmt.Sprintf("parley-batch-file-%d.fifo", time.Now().UnixNano())),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameFifoQueue): "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	q := sqsfifo.New(client, aws.ToString(out.QueueUrl), "")
	var ev events.SQSEvent
	if err := json.Unmarshal(got, &ev); err != nil {
		t.Fatal(err)
	}
	turns := map[string]message.Job{}
	for _, f := range batchTurns {
		j, _ := jobOf(t, f)
		turns[j.Ref] = j
	}
	jobs := 0
	for i, r := range ev.Records {
		if j, err := message.DecodeJob([]byte(r.Body)); err == nil {
			jobs++
			if err := q.Send(ctx, turns[j.Ref], false); err != nil {
				t.Fatal(err)
			}
		} else {
			// The old message, as the previous version sent it.
			attrs := map[string]sqstypes.MessageAttributeValue{}
			for k, v := range r.MessageAttributes {
				attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String(v.DataType), StringValue: v.StringValue}
			}
			if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String(r.Body),
				MessageGroupId: aws.String(r.Attributes["MessageGroupId"]), MessageDeduplicationId: aws.String(r.Attributes["MessageDeduplicationId"]),
				MessageAttributes: attrs}); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: out.QueueUrl, MaxNumberOfMessages: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			//lint:ignore SA1019 local-aws-sqs returns system attributes only for the deprecated field.
			AttributeNames:        []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
			MessageAttributeNames: []string{"All"}})
		if err != nil || len(raw.Messages) != 1 {
			t.Fatalf("record %d: received %d messages (%v), want the one sent", i, len(raw.Messages), err)
		}
		m := raw.Messages[0]
		gotAttrs := map[string]string{}
		for k, v := range m.MessageAttributes {
			gotAttrs[k] = aws.ToString(v.DataType) + ":" + aws.ToString(v.StringValue)
		}
		wantAttrs := map[string]string{}
		for k, v := range r.MessageAttributes {
			wantAttrs[k] = v.DataType + ":" + aws.ToString(v.StringValue)
		}
		if aws.ToString(m.Body) != r.Body || m.Attributes["MessageGroupId"] != r.Attributes["MessageGroupId"] ||
			m.Attributes["MessageDeduplicationId"] != r.Attributes["MessageDeduplicationId"] || !maps.Equal(gotAttrs, wantAttrs) {
			t.Errorf("record %d: SQS holds body %s, group %s, deduplication id %s, attributes %v; the file says %s, %s, %s, %v", i,
				aws.ToString(m.Body), m.Attributes["MessageGroupId"], m.Attributes["MessageDeduplicationId"], gotAttrs,
				r.Body, r.Attributes["MessageGroupId"], r.Attributes["MessageDeduplicationId"], wantAttrs)
		}
		if aws.ToString(m.MD5OfBody) != r.Md5OfBody || aws.ToString(m.MD5OfMessageAttributes) != r.Md5OfMessageAttributes {
			t.Errorf("record %d: SQS's digests %s %s, the file's %s %s", i, aws.ToString(m.MD5OfBody), aws.ToString(m.MD5OfMessageAttributes), r.Md5OfBody, r.Md5OfMessageAttributes)
		}
		if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: out.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	if jobs != len(turns) || len(ev.Records) != len(turns)+1 {
		t.Errorf("%d records, %d of them jobs; want the old message and %d jobs", len(ev.Records), jobs, len(turns))
	}
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// md5OfAttributes is SQS's MD5OfMessageAttributes of string attributes: for each, by
// name, the length-prefixed name and data type, transport type 1, the length-prefixed
// value.
func md5OfAttributes(attrs map[string]string) string {
	h := md5.New()
	put := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		put(k)
		put("String")
		h.Write([]byte{1})
		put(attrs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// uuidOf is a version-4-shaped SQS message id derived from s.
func uuidOf(s string) string {
	b := sha256.Sum256([]byte("sqs message " + s))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// receiptOf is a receipt handle derived from s, shaped as SQS's.
func receiptOf(s string) string {
	a, b := sha512.Sum512([]byte("receipt "+s)), sha512.Sum512([]byte("handle "+s))
	return "AQEB" + base64.StdEncoding.EncodeToString(append(a[:], b[:60]...))
}
