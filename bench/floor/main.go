// Command floor is the least a system of Parley's design can do to take a chat
// message over HTTP, keep it from being processed twice, run its turn in its
// conversation's order and deliver the answer to a webhook. On the way in, per
// message: one conditional PutItem and one SendMessage to the conversation's FIFO
// group. On the way out, a poller shaped like the event source mapping's stand-in
// (delivery.Poll: one receive loop, up to 10 messages a receive, up to 64 batches at
// once) and per turn: one conditional PutItem of the exchange (the message and its
// answer: the history), one POST of the answer, and one DeleteMessageBatch per batch.
// No validation beyond the ids, no bot beyond echoing, no signing, no retry
// bookkeeping, no logging. `make bench` runs Parley against it on the same emulators
// and reports Parley's throughput as a fraction of this floor's.
//
// Configuration (environment): PORT, FLOOR_TOKEN, FLOOR_TABLE, FLOOR_QUEUE_URL,
// FLOOR_RESPONSE_URL, FLOOR_BATCHES (default 64, as delivery.Poll), and the AWS
// variables the functions read (AWS_REGION, credentials, AWS_ENDPOINT_URL_*).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/awsenv"
)

type floor struct {
	ddb         *dynamodb.Client
	sq          *sqs.Client
	table       string
	queueURL    string
	responseURL string
	token       string
	client      *http.Client
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run() error {
	var missing []string
	get := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	f := &floor{table: get("FLOOR_TABLE"), queueURL: get("FLOOR_QUEUE_URL"), responseURL: get("FLOOR_RESPONSE_URL"), token: get("FLOOR_TOKEN")}
	port := get("PORT")
	if len(missing) > 0 {
		return fmt.Errorf("not set: %v", missing)
	}
	batches := 64
	if v := os.Getenv("FLOOR_BATCHES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("FLOOR_BATCHES=%q: want a positive number", v)
		}
		batches = n
	}
	cfg, err := awsenv.Config(os.Getenv)
	if err != nil {
		return err
	}
	f.ddb = awsenv.DynamoDB(cfg, os.Getenv, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = o.BaseEndpoint != nil })
	f.sq = awsenv.SQS(cfg, os.Getenv)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	f.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}

	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	polled := make(chan struct{})
	go func() { f.poll(ctx, batches); close(polled) }()
	srv := &http.Server{Handler: http.HandlerFunc(f.accept), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(ln)
	<-polled
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type inbound struct {
	UserID         string          `json:"userId"`
	MessageID      string          `json:"messageId"`
	ConversationID string          `json:"conversationId"`
	Type           string          `json:"type"`
	Text           string          `json:"text"`
	Payload        json.RawMessage `json:"payload"`
}

// accept takes one message: token, ids, one conditional PutItem, one SendMessage.
func (f *floor) accept(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" || r.Header.Get("Authorization") != "bearer "+f.token {
		http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var in inbound
	if err != nil || json.Unmarshal(body, &in) != nil || in.MessageID == "" || in.ConversationID == "" || in.UserID == "" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	_, err = f.ddb.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &f.table,
		Item: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "c#" + in.ConversationID}, "sk": &ddbtypes.AttributeValueMemberS{Value: "m#" + in.MessageID},
			"expiresAt": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(15*24*time.Hour).Unix(), 10)},
		},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		w.WriteHeader(http.StatusOK) // a duplicate: nothing more to do
		return
	}
	if err != nil {
		http.Error(w, `{"error":"store"}`, http.StatusServiceUnavailable)
		return
	}
	_, err = f.sq.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &f.queueURL, MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(in.ConversationID), MessageDeduplicationId: aws.String(in.MessageID),
	})
	if err != nil {
		http.Error(w, `{"error":"queue"}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// poll receives batches of up to 10 in one loop and runs up to n of them at once.
func (f *floor) poll(ctx context.Context, n int) {
	slots := make(chan struct{}, n)
	var running sync.WaitGroup
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		out, err := f.sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &f.queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId},
			// The deprecated field too: local-aws-sqs reads only that one, and without the
			// group every batch would run as one conversation, one turn after another.
			//lint:ignore SA1019 local-aws-sqs returns system attributes only for the deprecated field.
			AttributeNames: []sqstypes.QueueAttributeName{"MessageGroupId"},
		})
		if err != nil || len(out.Messages) == 0 {
			<-slots
			if err != nil && ctx.Err() == nil {
				time.Sleep(time.Second)
			}
			continue
		}
		running.Add(1)
		go func() {
			defer func() { <-slots; running.Done() }()
			f.batch(context.WithoutCancel(ctx), out.Messages)
		}()
	}
	running.Wait()
}

// batch runs a batch's turns — conversations in parallel, each one's in order — and
// deletes the done ones in one call.
func (f *floor) batch(ctx context.Context, msgs []sqstypes.Message) {
	groups := map[string][]sqstypes.Message{}
	for _, m := range msgs {
		g := m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
		groups[g] = append(groups[g], m)
	}
	var mu sync.Mutex
	var done []sqstypes.DeleteMessageBatchRequestEntry
	var wg sync.WaitGroup
	for _, msgs := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range msgs {
				if !f.turn(ctx, m) {
					return // the rest of the conversation waits for this one
				}
				mu.Lock()
				done = append(done, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(len(done))), ReceiptHandle: m.ReceiptHandle})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(done) > 0 {
		_, _ = f.sq.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &f.queueURL, Entries: done})
	}
}

// turn answers one message with itself: one conditional write of the exchange, one POST.
func (f *floor) turn(ctx context.Context, m sqstypes.Message) bool {
	var in inbound
	if json.Unmarshal([]byte(aws.ToString(m.Body)), &in) != nil {
		return false
	}
	payload := in.Payload
	if len(payload) == 0 {
		payload, _ = json.Marshal(map[string]string{"text": in.Text})
	}
	reply, _ := json.Marshal(map[string]any{"type": in.Type, "payload": payload, "conversationId": in.ConversationID, "botpressMessageId": "r-" + in.MessageID})
	entries, _ := json.Marshal([]json.RawMessage{[]byte(aws.ToString(m.Body)), reply})
	_, err := f.ddb.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &f.table,
		Item: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "c#" + in.ConversationID}, "sk": &ddbtypes.AttributeValueMemberS{Value: "h#" + in.MessageID},
			"e":         &ddbtypes.AttributeValueMemberS{Value: string(entries)},
			"expiresAt": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(30*24*time.Hour).Unix(), 10)},
		},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *ddbtypes.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, "POST", f.responseURL, bytes.NewReader(reply))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "r-"+in.MessageID)
	req.Header.Set("Parley-In-Reply-To", in.MessageID)
	res, err := f.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode/100 == 2
}
