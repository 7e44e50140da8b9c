//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/proc"
	"github.com/parley-chat/parley/shared/token"
)

// TestDuplicateStorm: 1,000 requests carrying 100 distinct messageIds (each ten times,
// shuffled) at concurrency 64 against the inbound handler on DynamoDB Local and
// local-aws-sqs, the delivery handler polling the queue: every copy answered 200 —
// exactly one fresh per messageId, the rest replayed — and exactly 100 bot turns and
// 100 deliveries, although every replay within the deduplication window sends the
// turn's job again.
func TestDuplicateStorm(t *testing.T) {
	scenario(t)
	const ids, copies, concurrency = 100, 10, 64
	parts := onEmulators(t, "storm", 30)
	ddb, sq := parts.Clients()
	store := dynamo.New(ddb, parts.Res.Table)
	queue := sqsfifo.New(sq, parts.Res.QueueURL, parts.Res.DeadLetterQueueURL)
	b := &countingBot{inner: bot.Echo{}}
	const tok = "prly_storm-token"
	var logs proc.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	api := httptest.NewServer(inbound.New(store, queue, token.NewStatic(tok), inbound.Config{}, log))
	defer api.Close()

	rcv := newReceiver(t)
	ch := channel(t, b, rcv.URL, "", delivery.Policy{MinDelay: time.Second, MaxDelay: 2 * time.Second, MaxAttempts: 5}, 5*time.Second)
	h := delivery.New(store, queue, delivery.Single(ch), delivery.Config{}, log)
	ctx, stop := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() {
		delivery.Poll(ctx, queue, h, delivery.PollConfig{Budget: delivery.FunctionTimeout(ch.BotTimeout)}, log)
		close(polled)
	}()
	defer func() { stop(); <-polled }()

	run := fmt.Sprintf("storm%d", time.Now().UnixNano())
	type req struct{ conv, id, body string }
	var reqs []req
	expected := map[string]string{}
	for i := range ids {
		conv, id := fmt.Sprintf("%s-c%d", run, i%10), fmt.Sprintf("%s-m%d", run, i)
		expected[replyRef(conv, id, 0)] = id
		for range copies {
			reqs = append(reqs, req{conv, id, messageBody("u"+conv, conv, id, fmt.Sprintf("storm message %d", i))})
		}
	}
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })

	client := bench.NewClient(concurrency)
	var mu sync.Mutex
	fresh, replayed, other := map[string]int{}, 0, map[string]int{}
	work := make(chan req)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				status, header, body, err := post(context.Background(), client, api.URL, tok, r.body)
				mu.Lock()
				switch {
				case err != nil:
					other["error: "+err.Error()]++
				case status == 200 && header.Get("Idempotent-Replayed") == "true":
					replayed++
				case status == 200:
					fresh[r.id]++
				default:
					other[fmt.Sprintf("%d %s", status, errorCode(body))]++
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	took := time.Since(start)

	// Afterwards every messageId answers as a replay.
	notReplayed := 0
	for i := range ids {
		conv, id := fmt.Sprintf("%s-c%d", run, i%10), fmt.Sprintf("%s-m%d", run, i)
		status, header, _, err := post(context.Background(), client, api.URL, tok, messageBody("u"+conv, conv, id, fmt.Sprintf("storm message %d", i)))
		if err != nil || status != 200 || header.Get("Idempotent-Replayed") != "true" {
			notReplayed++
		}
	}
	waitFor(30*time.Second, func() bool { return len(rcv.acked()) >= ids })
	time.Sleep(3 * time.Second) // time for a copy sent by a replay to come through, and be dropped
	acked := rcv.acked()
	tl := count(expected, acked, nil, nil)

	freshTotal, doubleFresh := 0, 0
	for _, n := range fresh {
		freshTotal += n
		if n > 1 {
			doubleFresh++
		}
	}
	summarize(t, "sent %d requests (%d messageIds × %d, concurrency %d, %s) → 200 fresh %d, 200 replayed %d, other %d %v; replays afterwards not replayed %d; bot turns %d; deliveries %d; %s",
		len(reqs), ids, copies, concurrency, took.Round(time.Millisecond), freshTotal, replayed, len(other), other, notReplayed, b.turns.Load(), len(acked), tl)
	if freshTotal != ids || doubleFresh > 0 || len(fresh) != ids {
		t.Errorf("fresh answers: %d over %d messageIds (%d ids answered fresh twice), want exactly one per messageId", freshTotal, len(fresh), doubleFresh)
	}
	if n := b.turns.Load(); n != ids {
		t.Errorf("bot turns = %d, want %d", n, ids)
	}
	if len(acked) != ids {
		t.Errorf("deliveries = %d, want %d", len(acked), ids)
	}
	if len(other) > 0 || notReplayed > 0 {
		t.Errorf("answers other than 200: %v; not replayed afterwards: %d", other, notReplayed)
	}
	tl.check(t)
	if l := leaks(logs.String(), map[string]string{"the token": tok, "a message text": "storm message"}); len(l) > 0 {
		t.Errorf("log leaks: %v", l[:min(len(l), 3)])
	}
}
