//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/testkit/proc"
)

// TestReceiverChaos: the local stack delivers to a receiver that answers 5xx half the
// time, stalls past the delivery timeout, answers 429 with Retry-After, rejects a few
// messages every time (400: retried like any non-2xx, so their turns are dead-lettered
// when the budget ends), and goes away entirely for a while (connections refused).
// Every bot message must end up delivered (each webhook id seen, in order within its
// conversation) or its turn in the dead-letter queue, with nothing missing. The order
// is checked here, on the embedded queue, which has SQS FIFO's group lock.
func TestReceiverChaos(t *testing.T) {
	m := scenario(t)
	convs, perConv := pick(m, 10, 20), pick(m, 6, 25)
	pace := pick(m, 100*time.Millisecond, 200*time.Millisecond)
	outageAt, outage := pick(m, 500*time.Millisecond, 2*time.Second), pick(m, 5*time.Second, 30*time.Second)
	policy := map[string]string{ // a budget that outlasts the outage: ~13 s short, ~68 s full
		"PARLEY_RETRY_MIN_DELAY": pick(m, "100ms", "200ms"), "PARLEY_RETRY_MAX_DELAY": pick(m, "1s", "3s"),
		"PARLEY_MAX_ATTEMPTS": pick(m, "15", "25"), "PARLEY_DELIVERY_TIMEOUT": "1s",
	}
	const tok, secret = "prly_chaos-token-7f3e", "whsec_Y2hhb3Mtc2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZGVm"

	rcv := newReceiver(t)
	var classes sync.Map // outcome -> *int64 counter, for the summary
	bump := func(k string) {
		v, _ := classes.LoadOrStore(k, new(int64))
		p := v.(*int64)
		summaryMu.Lock()
		*p++
		summaryMu.Unlock()
	}
	permanent := func(id string) bool {
		h := fnv.New32a()
		h.Write([]byte(id))
		return h.Sum32()%33 == 0
	}
	rcv.decide = func(d *arrival) (int, string, time.Duration) {
		if permanent(d.ID) {
			bump("400")
			return 400, "", 0
		}
		switch r := rand.Float64(); {
		case r < 0.5:
			s := []int{500, 502, 503}[rand.IntN(3)]
			bump(strconv.Itoa(s))
			return s, "", 0
		case r < 0.6:
			bump("stall")
			return 200, "", 1500 * time.Millisecond
		case r < 0.7:
			bump("429")
			return 429, "1", 0
		}
		bump("200")
		return 200, "", 0
	}

	env := map[string]string{"PORT": "0", "PARLEY_TOKEN": tok, "PARLEY_RESPONSE_ENDPOINT_URL": rcv.URL, "PARLEY_SIGNING_SECRET": secret}
	for k, v := range policy {
		env[k] = v
	}
	cfg, err := devstack.ConfigFromEnv(getenvMap(env))
	if err != nil {
		t.Fatal(err)
	}
	var logs proc.Buffer
	s, err := devstack.Start(cfg, &logs, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	run := fmt.Sprintf("chaos%d", time.Now().UnixNano())
	expected := map[string]string{}
	order := map[string][]string{}
	var mu sync.Mutex
	var failedPosts []string
	start := time.Now()
	go func() {
		time.Sleep(outageAt)
		rcv.down()
		time.Sleep(outage)
		rcv.up(t)
	}()
	client := bench.NewClient(convs)
	var wg sync.WaitGroup
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("%s-c%d", run, c)
			for i := range perConv {
				id := fmt.Sprintf("%s-m%d", conv, i)
				status, _, body, err := post(context.Background(), client, s.URL, tok, messageBody("u"+conv, conv, id, "chaos text "+id))
				mu.Lock()
				if err != nil || status != 200 {
					failedPosts = append(failedPosts, fmt.Sprintf("%s: %d %v %s", id, status, err, body))
				} else {
					ref := replyRef(conv, id, 0)
					expected[ref] = id
					order[conv] = append(order[conv], ref)
				}
				mu.Unlock()
				time.Sleep(pace)
			}
		}()
	}
	wg.Wait()

	dead := map[string]bool{}
	reasons := map[string]int{}
	check := func() (ok bool) {
		ok, dead, reasons = settled(rcv, s.Queue, expected, 1)
		return ok
	}
	done := waitFor(pick(m, 90*time.Second, 240*time.Second), check)
	took := time.Since(start)
	time.Sleep(time.Second)
	check()
	acked := rcv.acked()
	tl := count(expected, acked, dead, order)

	tried := map[string]bool{}
	for _, d := range rcv.all() {
		tried[d.ID] = true
	}
	redriven, untried := 0, 0
	for id := range dead {
		if !tried[id] {
			untried++
		}
	}
	for k, n := range reasons {
		if k == "(none: the queue's redrive policy)" {
			redriven = n
		}
	}
	badSig := 0
	for _, d := range acked {
		if verifySignature(secret, d.Header, d.Body, d.At) != nil {
			badSig++
		}
	}
	var outcomes []string
	classes.Range(func(k, v any) bool {
		outcomes = append(outcomes, fmt.Sprintf("%s×%d", k, *v.(*int64)))
		return true
	})
	summarize(t, "sent %d messages in %d conversations (receiver down %s from +%s; answers %v) → %s; dead letters by reason %v (%d by the queue's redrive policy, not the delivery function; %d never reached the receiver); bad signatures %d; settled in %s",
		len(expected), convs, outage, outageAt, outcomes, tl, reasons, redriven, untried, badSig, took.Round(time.Second))
	if len(failedPosts) > 0 {
		t.Errorf("%d POSTs not accepted, e.g. %v", len(failedPosts), failedPosts[:min(3, len(failedPosts))])
	}
	if !done {
		t.Errorf("not settled within the time allowed")
	}
	tl.check(t)
	if redriven > 0 {
		// No process crashes here: the redrive policy is only the backstop for those,
		// and a message it moved was given up without the delivery function deciding.
		t.Errorf("%d bot messages were dead-lettered by the queue's redrive policy, %d of them never attempted", redriven, untried)
	}
	if badSig > 0 {
		t.Errorf("%d deliveries fail the independent signature check", badSig)
	}
	if l := leaks(logs.String(), map[string]string{"the token": tok, "the signing secret": secret[len("whsec_"):], "a message text": "chaos text"}); len(l) > 0 {
		t.Errorf("log leaks: %v", l[:min(len(l), 3)])
	}
}
