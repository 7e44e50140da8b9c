// Command floor is the least a system can do to take a chat message over HTTP, keep
// it from being processed twice, queue the answer in order and deliver it to a
// webhook: one conditional PutItem and one SendMessage per message on the way in, and
// on the way out a poller receiving batches, one POST per message, and one
// DeleteMessageBatch per batch. No validation beyond the ids, no bot, no completed
// record, no history, no signing, no retry bookkeeping, no logging. `make bench` runs
// Parley against it on the same emulators and reports Parley's throughput as a
// fraction of this floor's.
//
// Configuration (environment): PORT, FLOOR_TOKEN, FLOOR_TABLE, FLOOR_QUEUE_URL,
// FLOOR_RESPONSE_URL, FLOOR_POLLERS (default 4, as the local stack's workers), and the
// AWS variables the functions read (AWS_REGION, credentials, AWS_ENDPOINT_URL_*).
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
	pollers := 4
	if v := os.Getenv("FLOOR_POLLERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("FLOOR_POLLERS=%q: want a positive number", v)
		}
		pollers = n
	}
	cfg, err := awsenv.Config(os.Getenv)
	if err != nil {
		return err
	}
	f.ddb = dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = awsenv.Endpoint(os.Getenv, "DYNAMODB") })
	f.sq = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = awsenv.Endpoint(os.Getenv, "SQS") })
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	f.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}

	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	for range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.poll(ctx)
		}()
	}
	srv := &http.Server{Handler: http.HandlerFunc(f.accept), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(ln)
	wg.Wait()
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
	var in inbound
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || in.MessageID == "" || in.ConversationID == "" || in.UserID == "" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	key := in.ConversationID + "\x00" + in.MessageID
	_, err := f.ddb.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &f.table,
		Item: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: key}, "sk": &ddbtypes.AttributeValueMemberS{Value: "floor"},
			"expiresAt": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(7*24*time.Hour).Unix(), 10)},
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
	payload := in.Payload
	if len(payload) == 0 {
		payload, _ = json.Marshal(map[string]string{"text": in.Text})
	}
	body, _ := json.Marshal(map[string]any{"type": in.Type, "payload": payload, "conversationId": in.ConversationID, "botpressMessageId": in.MessageID})
	_, err = f.sq.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &f.queueURL, MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(in.ConversationID), MessageDeduplicationId: aws.String(in.MessageID),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{"id": {DataType: aws.String("String"), StringValue: aws.String(in.MessageID)}},
	})
	if err != nil {
		http.Error(w, `{"error":"queue"}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// poll receives batches of up to 10, POSTs each message — conversations in
// parallel, each conversation's in order — and deletes the delivered ones in one call.
func (f *floor) poll(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := f.sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &f.queueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId},
			MessageAttributeNames:       []string{"id"},
		})
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(time.Second)
			}
			continue
		}
		groups := map[string][]sqstypes.Message{}
		for _, m := range out.Messages {
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
					if !f.deliver(ctx, m) {
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
			_, _ = f.sq.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: &f.queueURL, Entries: done})
		}
	}
}

func (f *floor) deliver(ctx context.Context, m sqstypes.Message) bool {
	id := ""
	if a, ok := m.MessageAttributes["id"]; ok {
		id = aws.ToString(a.StringValue)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", f.responseURL, bytes.NewReader([]byte(aws.ToString(m.Body))))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("Parley-In-Reply-To", id)
	res, err := f.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode/100 == 2
}
