package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/bench/awscount"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/channel"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/metrics"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// timedInbound serves the inbound handler over HTTP the way API Gateway and the
// Lambda runtime call it — the request turned into a payload 2.0 event, one Handle per
// request — and keeps each Handle's duration.
type timedInbound struct {
	h    *inbound.Handler
	mu   sync.Mutex
	durs []time.Duration
}

func (t *timedInbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ev := toEvent(r, body)
	start := time.Now()
	res, _ := t.h.Handle(r.Context(), ev)
	d := time.Since(start)
	t.mu.Lock()
	t.durs = append(t.durs, d)
	t.mu.Unlock()
	for k, v := range res.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(res.StatusCode)
	_, _ = io.WriteString(w, res.Body)
}

// toEvent is the API Gateway HTTP API (payload 2.0) event of a request.
func toEvent(r *http.Request, body []byte) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: r.URL.EscapedPath(), RawQueryString: r.URL.RawQuery,
		Headers: headers, Body: string(body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "bench", Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: r.Method, Path: r.URL.Path},
		},
	}
}

// esm does what Lambda's SQS event source mapping does for the delivery function:
// pollers receive batches of up to 10, invoke the function with each under the
// function's timeout, and delete the records it did not report as failed in one
// DeleteMessageBatch. It times each invocation.
type esm struct {
	queue    *sqsfifo.Queue // the mapping's own client
	client   *sqs.Client
	url      string
	h        *delivery.Handler
	timeout  time.Duration
	mu       sync.Mutex
	durs     []time.Duration
	received int
}

func (e *esm) run(ctx context.Context, pollers int) {
	var wg sync.WaitGroup
	for range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msgs, err := e.queue.Receive(ctx, 10, time.Second)
				if err != nil || len(msgs) == 0 {
					continue
				}
				invoke, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
				start := time.Now()
				res, err := e.h.Handle(invoke, events.SQSEvent{Records: msgs})
				d := time.Since(start)
				cancel()
				e.mu.Lock()
				e.durs = append(e.durs, d)
				e.received += len(msgs)
				e.mu.Unlock()
				if err != nil {
					continue
				}
				failed := map[string]bool{}
				for _, f := range res.BatchItemFailures {
					failed[f.ItemIdentifier] = true
				}
				var del []sqstypes.DeleteMessageBatchRequestEntry
				for i, m := range msgs {
					if !failed[m.MessageId] {
						del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String(m.ReceiptHandle)})
					}
				}
				if len(del) > 0 {
					_, _ = e.client.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: &e.url, Entries: del})
				}
			}
		}()
	}
	wg.Wait()
}

// countedClients are SDK clients of the emulators that count their calls.
func countedClients(ddbURL, sqsURL string, c *awscount.Counter) (*dynamodb.Client, *sqs.Client) {
	cfg := emulator.Config()
	cfg.APIOptions = append(cfg.APIOptions, c.Middleware)
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			o.BaseEndpoint = aws.String(ddbURL)
			o.DisableValidateResponseChecksum = true // DynamoDB Local's error answers fail it
		}),
		sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(sqsURL) })
}

// counted is what one counted run measured, with its durations.
type counted struct {
	CountedRun
	InboundDurs     []time.Duration
	DeliveryBatches []time.Duration
}

// healthApart is the delivery function's store with its endpoint-health reads (cached
// a minute) on a client of their own, so they are counted apart.
type healthApart struct {
	*dynamo.Store
	health *dynamo.Store
}

func (s healthApart) Health(ctx context.Context, channel string) (message.Health, error) {
	return s.health.Health(ctx, channel)
}

// countCalls wires the inbound and delivery handlers on the real adapters as
// functions/inbound and functions/delivery wire them (the deployment's default
// settings, the echo bot, signed webhooks, metrics on), each with its own counted SDK
// clients, runs closed-loop load through them, and divides what was counted by the
// messages accepted.
func countCalls(ctx context.Context, ddbURL, sqsURL string, res Resources, concurrency int, d time.Duration) (counted, error) {
	out := counted{CountedRun: CountedRun{Concurrency: concurrency}}
	inC, tokC, outC, healthC, esmC := awscount.New().TrackCapacity(), awscount.New().TrackCapacity(), awscount.New().TrackCapacity(),
		awscount.New().TrackCapacity(), awscount.New()
	inDDB, inSQS := countedClients(ddbURL, sqsURL, inC)
	tokDDB, _ := countedClients(ddbURL, sqsURL, tokC)
	outDDB, outSQS := countedClients(ddbURL, sqsURL, outC)
	healthDDB, _ := countedClients(ddbURL, sqsURL, healthC)
	_, esmSQS := countedClients(ddbURL, sqsURL, esmC)

	// The token reads go through a client of their own, so the cached token check is
	// counted apart from the two calls per message.
	tokens := dynamo.New(tokDDB, res.Table)
	plain, tok := token.Generate("bench", time.Now())
	if err := tokens.PutToken(ctx, tok); err != nil {
		return out, err
	}
	in := &timedInbound{h: inbound.New(dynamo.New(inDDB, res.Table), sqsfifo.New(inSQS, res.QueueURL, ""), token.NewTable(tokens, time.Minute),
		inbound.Config{Metrics: metrics.Recorder{On: true}}, jsonLog())}
	api := httptest.NewServer(in)
	defer api.Close()

	receiver, err := NewReceiver()
	if err != nil {
		return out, err
	}
	defer receiver.Close()
	r := envvar.New(func(string) string { return "" })
	settings := delivery.ConfigFromEnv(r)
	if err := r.Err(); err != nil {
		return out, err
	}
	signer, _ := webhook.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	sender, err := webhook.NewSender(webhook.Config{URL: receiver.URL, Timeout: settings.SendTimeout, Signer: signer})
	if err != nil {
		return out, err
	}
	store := dynamo.New(outDDB, res.Table)
	def := &delivery.Channel{ID: message.DefaultChannel, Bot: bot.Echo{}, BotTimeout: settings.BotTimeout, Sender: sender, SendTimeout: settings.SendTimeout,
		Policy: settings.Policy, Limiter: delivery.NewLimiter(settings.RateLimit)}
	channels := channel.NewRegistry(def, store, channel.Builder{Settings: settings, History: store})
	dh := delivery.New(healthApart{store, dynamo.New(healthDDB, res.Table)}, sqsfifo.New(outSQS, res.QueueURL, res.DeadLetterQueueURL), channels,
		delivery.Config{HistoryTTL: settings.HistoryTTL, Disable: settings.Disable, Metrics: metrics.Recorder{On: true}}, jsonLog())
	mapping := &esm{queue: sqsfifo.New(esmSQS, res.QueueURL, ""), client: esmSQS, url: res.QueueURL, h: dh,
		timeout: delivery.FunctionTimeout(settings.BotTimeout)}
	pollCtx, stop := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() { mapping.run(pollCtx, ESMPollers); close(polled) }()

	tokC.Reset() // the token's PutItem is set-up, not traffic
	load := Load{URL: api.URL, Token: plain, Receiver: receiver, Concurrency: concurrency, Duration: d, RunID: fmt.Sprintf("count%d-%d", concurrency, time.Now().UnixNano())}
	lr := load.Run(ctx)
	stop()
	<-polled
	if lr.Failed+lr.Lost > 0 {
		return out, fmt.Errorf("counted run: %d failed, %d lost: %s", lr.Failed, lr.Lost, lr.FirstError)
	}
	in.mu.Lock()
	out.Messages, out.InboundDurs = len(in.durs), in.durs
	in.mu.Unlock()
	mapping.mu.Lock()
	out.DeliveryBatches = mapping.durs
	if len(mapping.durs) > 0 {
		out.Batches = float64(mapping.received) / float64(len(mapping.durs))
	}
	mapping.mu.Unlock()
	if out.Messages == 0 {
		return out, fmt.Errorf("counted run: no message accepted")
	}

	n := float64(out.Messages)
	u := Usage{HTTPRequests: 1, InboundInvocations: 1, MemoryMB: DeployedMemoryMB,
		InboundBilled: meanBilled(out.InboundDurs), DeliveryBilled: meanBilled(out.DeliveryBatches),
		DeliveryInvocations: float64(len(out.DeliveryBatches)) / n}
	for caller, c := range map[string]*awscount.Counter{CallerInbound: inC, CallerToken: tokC, CallerDelivery: outC, CallerHealth: healthC, CallerESM: esmC} {
		counts := c.Counts()
		for _, op := range counts.Ops() {
			s := counts[op]
			out.Calls = append(out.Calls, CallRow{Caller: caller, Op: op, Stat: s})
			u.WRU += s.WriteUnits / n
			u.SizedWRU += s.SizedWriteUnits / n
			u.RRU += s.ReadUnits / n
			if op.Service == "SQS" && caller != CallerESM {
				u.SQSRequests += float64(s.Attempts) / n
			}
			if op.Service == "DynamoDB" && s.Errors["ConditionalCheckFailedException"] > 0 {
				// Billed at least one write unit each, though DynamoDB reports none.
				u.WRU += float64(s.Errors["ConditionalCheckFailedException"]) / n
			}
		}
	}
	// The mapping: one receive and one batch delete per batch. Its empty long polls
	// while the queue is idle are a fixed cost, not a cost per message.
	u.ESMRequests = float64(2*len(out.DeliveryBatches)) / n
	SortCalls(out.Calls)
	out.Usage = u
	out.InboundMean, out.DeliveryMean = meanDuration(out.InboundDurs), meanDuration(out.DeliveryBatches)
	for _, c := range out.Calls {
		if c.Caller == CallerInbound || c.Caller == CallerToken {
			out.InboundAWS += c.Stat.Time / time.Duration(out.Messages)
		}
	}
	return out, nil
}

func meanBilled(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += Billed(d)
	}
	return sum / time.Duration(len(ds))
}

func meanDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
