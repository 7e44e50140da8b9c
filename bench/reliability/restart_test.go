//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/proc"
)

// TestEmulatorRestart: the local stack runs on DynamoDB Local and local-aws-sqs, and
// each emulator is stopped in the middle of the run and a new one started. Both keep
// their data in memory, so a restarted emulator is empty: the table and queues are
// made again, and what they held is gone — the scenario lets the first phase's traffic
// finish before it stops anything, so the loss it counts is Parley's, not the
// emulator's. While an emulator is down every request must get a clean 503 naming
// the part (no 500, no hang, no crash). With SQS down the message is stored but its
// turn not queued: the same messageIds sent again after the restart are replays (200,
// Idempotent-Replayed) that queue the turn, which must then run and be delivered.
// With DynamoDB down nothing is stored: the same messageIds are accepted afresh. New
// traffic must then flow as before.
func TestEmulatorRestart(t *testing.T) {
	m := scenario(t)
	n := pick(m, 10, 40) // messages per phase
	parts := onEmulators(t, "restart", 30)
	parts.setenv(t)
	rcv := newReceiver(t)
	const tok = "prly_restart-token-c0ffee"
	cfg, err := devstack.ConfigFromEnv(getenvMap(map[string]string{
		"PORT": "0", "PARLEY_TOKEN": tok, "PARLEY_RESPONSE_ENDPOINT_URL": rcv.URL,
		"PARLEY_TABLE_NAME": parts.Res.Table, "PARLEY_QUEUE_URL": parts.Res.QueueURL, "PARLEY_DEAD_LETTER_QUEUE_URL": parts.Res.DeadLetterQueueURL,
		"PARLEY_RETRY_MIN_DELAY": "1s", "PARLEY_RETRY_MAX_DELAY": "2s", "PARLEY_MAX_ATTEMPTS": "10", "PARLEY_BOT_TIMEOUT": "2s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var logs proc.Buffer
	s, err := devstack.Start(cfg, &logs, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	run := fmt.Sprintf("restart%d", time.Now().UnixNano())
	client := bench.NewClient(n)
	client.Timeout = 60 * time.Second
	expected := map[string]string{}
	type answer struct {
		status int
		code   string
		took   time.Duration
		replay bool
	}
	// send posts messages first..first+count-1 concurrently and returns the answers.
	send := func(phase string, first, count int) []answer {
		out := make([]answer, count)
		var wg sync.WaitGroup
		for i := range count {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conv := fmt.Sprintf("%s-c%d", run, (first+i)%5)
				id := fmt.Sprintf("%s-m%d", run, first+i)
				start := time.Now()
				status, header, body, err := post(context.Background(), client, s.URL, tok, messageBody("u", conv, id, "restart text "+id))
				a := answer{status: status, code: errorCode(body), took: time.Since(start), replay: header.Get("Idempotent-Replayed") == "true"}
				if err != nil {
					a.code = "no answer: " + err.Error()
				}
				out[i] = a
				if status == 200 {
					summaryMu.Lock()
					expected[replyRef(conv, id, 0)] = id
					summaryMu.Unlock()
				}
			}()
		}
		wg.Wait()
		return out
	}
	describe := func(as []answer) string {
		byKey := map[string]int{}
		var slowest time.Duration
		for _, a := range as {
			k := fmt.Sprint(a.status)
			if a.code != "" {
				k += " " + a.code
			}
			if a.replay {
				k += " replayed"
			}
			byKey[k]++
			slowest = max(slowest, a.took)
		}
		var keys []string
		for k, v := range byKey {
			keys = append(keys, fmt.Sprintf("%s×%d", k, v))
		}
		sort.Strings(keys)
		return fmt.Sprintf("%s (slowest %s)", strings.Join(keys, ", "), slowest.Round(time.Millisecond))
	}
	expectAll := func(phase string, as []answer, status int, code string, replay bool) {
		t.Helper()
		for _, a := range as {
			if a.status != status || (code != "" && a.code != code) || a.replay != replay || a.took > 30*time.Second {
				t.Errorf("%s: got %s, want every answer %d %s (replayed: %v) within 30s", phase, describe(as), status, code, replay)
				return
			}
		}
	}
	delivered := func(phase string) {
		t.Helper()
		if !waitFor(30*time.Second, func() bool {
			acked := map[string]bool{}
			for _, d := range rcv.acked() {
				acked[d.ID] = true
			}
			for id := range expected {
				if !acked[id] {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("%s: not everything accepted so far was delivered within 30s", phase)
		}
	}
	var story []string
	tell := func(format string, args ...any) { story = append(story, fmt.Sprintf(format, args...)) }

	a := send("warm", 0, n)
	expectAll("warm", a, 200, "", false)
	delivered("warm")
	tell("warm-up %s", describe(a))

	// SQS goes away: the record is written, the turn is not queued.
	parts.SQSProxy.SetTarget("")
	parts.SQS.Stop()
	a = send("sqs down", n, n)
	expectAll("sqs down", a, 503, "queue_unavailable", false)
	tell("SQS down: %s", describe(a))
	sq := emulator.SQS(t)
	if _, _, err := bench.CreateQueues(context.Background(), sq.SQSClient(), parts.Res.Table, 30); err != nil {
		t.Fatal(err)
	}
	parts.SQS = sq
	parts.SQSProxy.SetTarget(sq.URL)
	a = send("sqs back, same ids", n, n)
	expectAll("sqs back, same ids", a, 200, "", true)
	a2 := send("sqs back, new ids", 2*n, n)
	expectAll("sqs back, new ids", a2, 200, "", false)
	delivered("sqs back")
	tell("SQS restarted (empty): same ids again %s; new ids %s", describe(a), describe(a2))

	// DynamoDB goes away: nothing is stored, nothing queued.
	parts.DDBProxy.SetTarget("")
	parts.DDB.Stop()
	a = send("dynamodb down", 3*n, n)
	expectAll("dynamodb down", a, 503, "store_unavailable", false)
	tell("DynamoDB down: %s", describe(a))
	ddb := emulator.DynamoDB(t)
	if err := dynamo.CreateTable(context.Background(), ddb.DynamoDBClient(), parts.Res.Table); err != nil {
		t.Fatal(err)
	}
	parts.DDB = ddb
	parts.DDBProxy.SetTarget(ddb.URL)
	a = send("dynamodb back, same ids", 3*n, n)
	expectAll("dynamodb back, same ids", a, 200, "", false)
	a2 = send("dynamodb back, new ids", 4*n, n)
	expectAll("dynamodb back, new ids", a2, 200, "", false)
	delivered("dynamodb back")
	tell("DynamoDB restarted (empty): same ids again %s; new ids %s", describe(a), describe(a2))

	// What an empty emulator means: a first-phase message sent again is not known any
	// more, runs again, and is delivered again — under the same webhook id, which is
	// derived, so a receiver de-duplicating on it is safe.
	before := len(rcv.acked())
	a = send("replay of a forgotten message", 0, 1)
	waitFor(10*time.Second, func() bool { return len(rcv.acked()) > before })
	tell("a warm-up message sent again after both restarts: %s, delivered again %d×", describe(a), len(rcv.acked())-before)

	time.Sleep(2 * time.Second)
	tl := count(expected, rcv.acked(), nil, nil)
	summarize(t, "%s → %s", strings.Join(story, "; "), tl)
	tl.check(t)
	if l := leaks(logs.String(), map[string]string{"the token": tok, "a message text": "restart text"}); len(l) > 0 {
		t.Errorf("log leaks: %v", l[:min(len(l), 3)])
	}
}
