package bench

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// The bodies the microbenchmarks decode: a plain text message, as most traffic is,
// and a card, the richest payload the validator walks.
const (
	textBody = `{"userId":"user-4711","messageId":"m-0000000001","conversationId":"conv-4711","type":"text","text":"Hello, can you tell me where my order is?"}`
	cardBody = `{"userId":"user-4711","messageId":"m-0000000002","conversationId":"conv-4711","type":"card","text":"Order #12345",` +
		`"payload":{"title":"Order #12345","subtitle":"Shipped","imageUrl":"https://example.com/p.png","actions":[` +
		`{"action":"url","label":"Track","value":"https://example.com/t/12345"},{"action":"postback","label":"Cancel","value":"cancel 12345"}]}}`
	benchToken = "prly_benchmark-token"
)

// jsonLog is the log the functions write (JSON lines), thrown away.
func jsonLog() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func BenchmarkDecodeInbound(b *testing.B) {
	for _, c := range []struct{ name, body string }{{"text", textBody}, {"card", cardBody}} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := message.DecodeInbound(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// apiEvent is the request API Gateway hands the inbound function.
func apiEvent(body string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: "/",
		Headers: map[string]string{"authorization": "Bearer " + benchToken, "content-type": "application/json"},
		Body:    body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "bench", Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/"},
		},
	}
}

// textMessage is a text message with messageId n in conversation conv.
func textMessage(conv string, n int) string {
	return `{"userId":"user-4711","messageId":"m-` + strconv.Itoa(n) + `","conversationId":"` + conv +
		`","type":"text","text":"Hello, can you tell me where my order is?"}`
}

// BenchmarkInboundHandle is one accepted message through inbound.Handler.Handle on the
// embedded store and queue: decode, the conditional write, the send of the turn, the
// JSON log line, over 100 conversations. No bot: it runs on the delivery side. The
// store and queue are renewed off the clock every `window` messages: the embedded
// queue keeps every message until it is received, so its cost grows with its backlog,
// and the two windows show by how much.
func BenchmarkInboundHandle(b *testing.B) {
	for _, window := range []int{100, 10000} {
		b.Run("window="+strconv.Itoa(window), func(b *testing.B) {
			var h *inbound.Handler
			ctx := context.Background()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n%window == 0 {
					b.StopTimer()
					h = inbound.New(inmem.NewStore(), inmem.NewQueue(inmem.QueueConfig{}), token.NewStatic(benchToken), inbound.Config{}, jsonLog())
					b.StartTimer()
				}
				res, _ := h.Handle(ctx, apiEvent(textMessage("conv-"+strconv.Itoa(n%100), n)))
				if res.StatusCode != 200 {
					b.Fatalf("status %d: %s", res.StatusCode, res.Body)
				}
				n++
			}
		})
	}
}

// BenchmarkInboundReplay is a duplicate: the same message again within the queue's
// deduplication window, answered from the stored record, its job sent again (and
// dropped by the queue).
func BenchmarkInboundReplay(b *testing.B) {
	h := inbound.New(inmem.NewStore(), inmem.NewQueue(inmem.QueueConfig{}), token.NewStatic(benchToken), inbound.Config{}, jsonLog())
	ctx := context.Background()
	ev := apiEvent(textBody)
	if res, _ := h.Handle(ctx, ev); res.StatusCode != 200 {
		b.Fatalf("first: %d %s", res.StatusCode, res.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, _ := h.Handle(ctx, ev)
		if res.Headers["Idempotent-Replayed"] != "true" {
			b.Fatalf("not a replay: %d %v", res.StatusCode, res.Headers)
		}
	}
}

// jobRecords are the SQS records of n turn jobs, one per conversation, as the event
// source mapping hands them to the delivery function the first time: run is part of
// every id, so each call runs fresh turns.
func jobRecords(run string, n int) []events.SQSMessage {
	out := make([]events.SQSMessage, n)
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i := range out {
		conv := "conv-" + run + "-" + strconv.Itoa(i)
		in := message.Inbound{UserID: "user-4711", MessageID: "m-1", ConversationID: conv, Type: "text",
			Text: "Hello, can you tell me where my order is?", Payload: json.RawMessage(`{"text":"Hello, can you tell me where my order is?"}`)}
		j := message.TurnJob(message.NewTurn(message.DefaultChannel, in), at)
		body, err := message.EncodeJob(j)
		if err != nil {
			panic(err)
		}
		kind := message.KindTurn
		out[i] = events.SQSMessage{
			MessageId: "sqs-" + run + "-" + strconv.Itoa(i), ReceiptHandle: "r-" + strconv.Itoa(i), Body: string(body), EventSource: "aws:sqs",
			Attributes:        map[string]string{"MessageGroupId": j.ConversationRef, "ApproximateReceiveCount": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{message.AttrKind: {StringValue: &kind, DataType: "String"}},
		}
	}
	return out
}

// BenchmarkDeliveryHandle is delivery.Handler.Handle on a batch of turn jobs on the
// embedded store: per job the echo bot, the exchange written once, one signed webhook
// POSTed over a kept-alive loopback connection to a receiver answering 200 at once.
func BenchmarkDeliveryHandle(b *testing.B) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer receiver.Close()
	signer, err := webhook.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		b.Fatal(err)
	}
	sender, err := webhook.NewSender(webhook.Config{URL: receiver.URL, Timeout: 10 * time.Second, Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	ch := &delivery.Channel{ID: message.DefaultChannel, Bot: bot.Echo{}, BotTimeout: delivery.DefaultBotTimeout, Sender: sender,
		SendTimeout: 10 * time.Second, Policy: delivery.DefaultPolicy}
	for _, n := range []int{1, 10} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			h := delivery.New(inmem.NewStore(), inmem.NewQueue(inmem.QueueConfig{}), delivery.Single(ch), delivery.Config{}, jsonLog())
			ctx := context.Background()
			b.ReportAllocs()
			run := 0
			for b.Loop() {
				b.StopTimer()
				ev := events.SQSEvent{Records: jobRecords(strconv.Itoa(run), n)}
				run++
				b.StartTimer()
				res, err := h.Handle(ctx, ev)
				if err != nil || len(res.BatchItemFailures) != 0 {
					b.Fatalf("Handle = %+v, %v", res, err)
				}
			}
		})
	}
}
