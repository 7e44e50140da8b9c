//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/testkit/proc"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
)

// Where a crash is injected.
const (
	sideInbound  = "inbound"
	sideDelivery = "delivery"
	sideAck      = "ack" // after Run returned, before the batch is acknowledged
)

// injection is one place a crash is injected: a step of Config.Fault, or the ack.
type injection struct {
	name string
	side string
	step string // the Fault step; "delivered" crashes only between replies
}

var injections = []injection{
	{"inbound, after the write", sideInbound, "accepted"},
	{"inbound, after the send", sideInbound, "sent"},
	{"delivery, after the bot", sideDelivery, "answered"},
	{"delivery, after storing the replies", sideDelivery, "stored"},
	{"delivery, between replies", sideDelivery, "delivered"},
	{"delivery, after the last POST, before the ack", sideAck, ""},
}

// injected is what one injection scenario counted.
type injected struct {
	Messages, Crashes, WantCrashes, Retries, Redeliveries, Copies int
	BotRuns, BotRunsAfterStored                                   int
	Tally                                                         tally
	MissingFromHistory, HistoryDiffers                            []string
	Settled                                                       bool
	Took                                                          time.Duration
}

// TestCrashInjection crashes each step of accepting and running a turn on DynamoDB
// Local and local-aws-sqs, once per message at each place: the inbound handler after
// its conditional write and after its send (the client retries its POST), the
// delivery handler after the bot answered, after it stored the replies, between two
// replies, and after the last POST before the batch is acknowledged (the queue hands
// the job out again after its visibility timeout). The handlers run in process on the
// emulator-backed adapters; a crash is Config.Fault's error, which abandons the
// request or the batch there, or for the last place the batch abandoned after
// delivery.Handler.Run returned, before the poller's Ack. The bot answers with three
// messages whose text changes on every run, so a second run that reached a receiver
// would show. The FIFO group lock local-aws-sqs lacks is added by the proxy in front of
// it (bench.Proxy.GroupLock), so each conversation's replies must also arrive in
// order. For every place: 0 messages lost, 0 replies under two webhook ids or with two
// bodies, 0 bot runs for a turn whose replies were stored, 0 accepted turns missing
// from the history.
func TestCrashInjection(t *testing.T) {
	m := scenario(t)
	convs, perConv := pick(m, 4, 8), pick(m, 2, 4)
	parts := onEmulators(t, "inject", 3)
	results := make([]injected, len(injections))
	t.Run("places", func(t *testing.T) {
		for i, inj := range injections {
			t.Run(strings.ReplaceAll(inj.name, " ", "_"), func(t *testing.T) {
				t.Parallel()
				results[i] = runInjection(t, m, parts, inj, convs, perConv)
			})
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "crash injection on DynamoDB Local + local-aws-sqs (group-locking proxy), %d conversations × %d messages, 3 replies each, per place:\n", convs, perConv)
	fmt.Fprintf(&b, "  %-46s %8s %7s %7s %7s %6s %8s %8s %5s %7s %7s %9s %8s %6s %7s\n",
		"crashed at", "messages", "crashes", "retries", "recv 2+", "copies", "bot runs", "dup sent", "lost", "2 ids", "changed", "bot after", "history", "order", "settled")
	for i, inj := range injections {
		r := results[i]
		tl := r.Tally
		fmt.Fprintf(&b, "  %-46s %8d %7d %7d %7d %6d %8d %8d %5d %7d %7d %9d %8d %6d %7s\n",
			inj.name, r.Messages, r.Crashes, r.Retries, r.Redeliveries, r.Copies, r.BotRuns, tl.Redelivered, len(tl.Missing),
			len(tl.DifferentIDs)+len(tl.NotDerived), len(tl.Changed)+len(r.HistoryDiffers), r.BotRunsAfterStored, len(r.MissingFromHistory), len(tl.OrderBreaks), r.Took.Round(100*time.Millisecond))
	}
	b.WriteString("  (retries: POSTs answered 503 and sent again; recv 2+: jobs received more than once (a crash, or kept back by the group lock);\n" +
		"   copies: second copies of a job sent by a replayed POST and received (each must stand down); dup sent: replies POSTed again under the same id;\n" +
		"   2 ids: replies under a second or underived webhook id; changed: a reply whose body differs between deliveries or from the history;\n" +
		"   bot after: bot runs for a turn whose replies were already stored; history: accepted turns missing from the history)")
	summarize(t, "%s", b.String())
}

func runInjection(t *testing.T, m mode, parts *awsParts, inj injection, convs, perConv int) injected {
	ctx := context.Background()
	var res injected
	ddb, sq := parts.Clients()
	store := dynamo.New(ddb, parts.Res.Table)
	name := fmt.Sprintf("inject-%d", time.Now().UnixNano())
	queueURL, deadURL, err := bench.CreateQueues(ctx, parts.SQS.SQSClient(), name, 3)
	if err != nil {
		t.Fatal(err)
	}
	queue := sqsfifo.New(sq, queueURL, deadURL)
	rcv := newReceiver(t)
	var logs proc.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))

	// Crashes: each place once per message (between replies: once after each reply but
	// the last).
	var mu sync.Mutex
	crashed := map[string]bool{}
	once := func(key string) bool {
		mu.Lock()
		defer mu.Unlock()
		if crashed[key] {
			return false
		}
		crashed[key] = true
		res.Crashes++
		return true
	}
	errCrash := errors.New("injected crash")
	const replies = 3

	// The inbound handler, one per request so its Fault knows the messageId.
	const tok = "prly_inject-token"
	auth := token.NewStatic(tok)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var in struct {
			MessageID string `json:"messageId"`
		}
		_ = json.Unmarshal(body, &in)
		cfg := inbound.Config{}
		if inj.side == sideInbound {
			cfg.Fault = func(step string) error {
				if step == inj.step && once(in.MessageID) {
					return errCrash
				}
				return nil
			}
		}
		inbound.New(store, queue, auth, cfg, log).ServeHTTP(w, r)
	}))
	defer api.Close()

	// The bot: three messages whose text changes on every run; it counts runs for a
	// turn whose exchange is already stored.
	b := &injectBot{store: store}
	ch := channel(t, b, rcv.URL, "", delivery.Policy{MinDelay: time.Second, MaxDelay: 2 * time.Second, MaxAttempts: 20}, 5*time.Second)

	// The poller: batches of one, so each batch's handler knows its job; a crash
	// abandons the batch, which comes back after the visibility timeout.
	pollCtx, stopPoll := context.WithCancel(ctx)
	var polling sync.WaitGroup
	var redeliveries, copies atomic.Int64
	slots := make(chan struct{}, 8)
	polling.Add(1)
	go func() {
		defer polling.Done()
		for pollCtx.Err() == nil {
			msgs, err := queue.Receive(pollCtx, 1, time.Second)
			if err != nil || len(msgs) == 0 {
				continue
			}
			if msgs[0].Attributes["ApproximateReceiveCount"] != "1" {
				redeliveries.Add(1)
			}
			if a, ok := msgs[0].MessageAttributes[message.AttrResend]; ok && a.StringValue != nil && *a.StringValue == "true" {
				copies.Add(1)
			}
			slots <- struct{}{}
			polling.Add(1)
			go func() {
				defer func() { <-slots; polling.Done() }()
				settleBatch(ctx, inj, queue, store, ch, log, msgs, once, errCrash)
			}()
		}
	}()

	// Clients: each conversation's messages one after another, each POSTed until it
	// is accepted.
	run := fmt.Sprintf("inject%d", time.Now().UnixNano())
	expected := map[string]string{}
	order := map[string][]string{}
	accepted := map[string][]string{} // conversation -> messageIds
	var retries atomic.Int64
	client := bench.NewClient(convs)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("%s-c%d", run, c)
			for i := range perConv {
				id := fmt.Sprintf("%s-m%d", conv, i)
				body := messageBody("u"+conv, conv, id, "inject text "+id)
				for try := 0; ; try++ {
					status, _, resp, err := post(ctx, client, api.URL, tok, body)
					if err == nil && status == 200 {
						break
					}
					if try == 50 || (err == nil && status != 503) {
						t.Errorf("%s: %d %v %s", id, status, err, resp)
						return
					}
					retries.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				accepted[conv] = append(accepted[conv], id)
				for k := range replies {
					expected[replyRef(conv, id, k)] = id
					order[conv] = append(order[conv], replyRef(conv, id, k))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	dead := map[string]bool{}
	res.Settled = waitFor(pick(m, 90*time.Second, 180*time.Second), func() (ok bool) {
		ok, dead, _ = settled(rcv, queue, expected, replies)
		return ok
	})
	res.Took = time.Since(start)
	time.Sleep(4 * time.Second) // a visibility timeout and more: late copies show up
	stopPoll()
	polling.Wait()

	acked := rcv.acked()
	res.Tally = count(expected, acked, dead, order)
	res.Messages, res.Retries, res.Redeliveries, res.Copies = len(expected)/replies, int(retries.Load()), int(redeliveries.Load()), int(copies.Load())
	res.BotRuns, res.BotRunsAfterStored = int(b.runs.Load()), int(b.afterStored.Load())
	res.WantCrashes = res.Messages
	if inj.step == "delivered" {
		res.WantCrashes = res.Messages * (replies - 1)
	}

	// The history: every accepted turn, its user message and its three replies, with
	// the bodies that were delivered.
	delivered := map[string][]byte{}
	for _, d := range acked {
		var wb message.Webhook
		if json.Unmarshal(d.Body, &wb) == nil {
			delivered[d.ID] = wb.Payload
		}
	}
	for conv, ids := range accepted {
		entries := map[string]message.Entry{}
		incoming := map[string]bool{}
		cursor := ""
		for {
			page, next, err := store.HistoryPage(ctx, message.DefaultChannel, message.ConversationRef(message.DefaultChannel, conv), 100, cursor)
			if err != nil {
				t.Fatalf("history of %s: %v", conv, err)
			}
			for _, e := range page {
				entries[e.ID] = e
				if e.Direction == message.Incoming {
					incoming[e.MessageID] = true
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		for _, id := range ids {
			ok := incoming[id]
			for k := range replies {
				e, found := entries[replyRef(conv, id, k)]
				ok = ok && found
				if p, sent := delivered[replyRef(conv, id, k)]; found && sent && !jsonEqual(p, e.Payload) {
					res.HistoryDiffers = append(res.HistoryDiffers, replyRef(conv, id, k))
				}
			}
			if !ok {
				res.MissingFromHistory = append(res.MissingFromHistory, id)
			}
		}
	}

	tl := res.Tally
	if !res.Settled {
		t.Errorf("not settled within the time allowed: %s", tl)
	}
	tl.check(t)
	if res.Crashes != res.WantCrashes {
		t.Errorf("%d crashes injected, want %d: the scenario did not crash where it says", res.Crashes, res.WantCrashes)
	}
	if res.BotRunsAfterStored > 0 {
		t.Errorf("%d bot runs for a turn whose replies were stored", res.BotRunsAfterStored)
	}
	if len(res.MissingFromHistory) > 0 {
		t.Errorf("%d accepted turns missing from the history, e.g. %v", len(res.MissingFromHistory), res.MissingFromHistory[:min(3, len(res.MissingFromHistory))])
	}
	if len(res.HistoryDiffers) > 0 {
		t.Errorf("%d replies delivered with another body than the history keeps, e.g. %v", len(res.HistoryDiffers), res.HistoryDiffers[:min(3, len(res.HistoryDiffers))])
	}
	if tl.DeadLettered > 0 {
		t.Errorf("%d replies dead-lettered: nothing here fails for good", tl.DeadLettered)
	}
	if l := leaks(logs.String(), map[string]string{"the token": tok, "a message text": "inject text"}); len(l) > 0 {
		t.Errorf("log leaks: %v", l[:min(len(l), 3)])
	}
	t.Logf("%s: %d messages, %d crashes, %d retries, %d redeliveries, %d bot runs (%d after stored); %s; history missing %d, differs %d; %s",
		inj.name, res.Messages, res.Crashes, res.Retries, res.Redeliveries, res.BotRuns, res.BotRunsAfterStored, tl, len(res.MissingFromHistory), len(res.HistoryDiffers), res.Took.Round(time.Millisecond))
	return res
}

// settleBatch is what delivery.Poll does with a batch — run it under the function's
// timeout, then delete the jobs neither failed nor acknowledged — with the crash of
// this scenario injected.
func settleBatch(ctx context.Context, inj injection, queue *sqsfifo.Queue, store *dynamo.Store, ch *delivery.Channel, log *slog.Logger,
	msgs []events.SQSMessage, once func(string) bool, errCrash error) {
	ref := msgs[0].MessageId
	if j, err := message.DecodeJob([]byte(msgs[0].Body)); err == nil {
		ref = j.Ref
	}
	cfg := delivery.Config{}
	if inj.side == sideDelivery {
		posted := 0
		cfg.Fault = func(step string) error {
			if step != inj.step {
				return nil
			}
			key := ref
			if step == "delivered" {
				posted++
				if posted == 3 { // the last reply: that is the ack's place
					return nil
				}
				key = fmt.Sprintf("%s after reply %d", ref, posted)
			}
			if once(key) {
				return errCrash
			}
			return nil
		}
	}
	h := delivery.New(store, queue, delivery.Single(ch), cfg, log)
	batch, cancel := context.WithTimeout(ctx, delivery.FunctionTimeout(ch.BotTimeout))
	failed, acked, err := h.Run(batch, msgs)
	cancel()
	if err != nil {
		return // abandoned: back after the visibility timeout
	}
	if inj.side == sideAck && once(ref) {
		return // crashed before the ack
	}
	var done []string
	for _, m := range msgs {
		if !failed[m.MessageId] && !acked[m.MessageId] {
			done = append(done, m.ReceiptHandle)
		}
	}
	if len(done) > 0 {
		if err := queue.Ack(ctx, done); err != nil {
			log.WarnContext(ctx, "delete", slog.String("error", err.Error()))
		}
	}
}

// injectBot answers each turn with three messages whose text carries a number that
// changes on every run, and counts runs for a turn whose exchange is stored already.
type injectBot struct {
	store       *dynamo.Store
	runs        atomic.Int64
	afterStored atomic.Int64
}

func (b *injectBot) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	n := b.runs.Add(1)
	if rec, found, _, _, err := b.store.Load(ctx, turn.Key(), time.Time{}); err == nil && found {
		if stored, err := b.store.Exchanged(ctx, rec); err == nil && stored {
			b.afterStored.Add(1)
		}
	}
	out := make([]message.Reply, 3)
	for i := range out {
		p, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("answer %d of run %d", i+1, n)})
		out[i] = message.Reply{Type: "text", Payload: p}
	}
	return out, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
