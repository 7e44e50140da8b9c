//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/proc"
)

// roleProc keeps one role of the split local stack running, restartable.
type roleProc struct {
	role, bin, log, url string
	env                 []string
	mu                  sync.Mutex
	p                   *proc.Proc
	starts, kills       int
	killedAt            []time.Time
}

func (r *roleProc) start(t *testing.T) {
	t.Helper()
	p, err := proc.Start(proc.Spec{Name: "parley dev (" + r.role + ")", Bin: r.bin, Args: []string{"dev"}, Env: r.env, Log: r.log})
	if err != nil {
		t.Fatal(err)
	}
	if r.url != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.WaitHTTP(ctx, r.url); err != nil {
			p.Kill()
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	r.p, r.starts = p, r.starts+1
	r.mu.Unlock()
}

func (r *roleProc) kill() {
	r.mu.Lock()
	p := r.p
	r.kills++
	r.killedAt = append(r.killedAt, time.Now())
	r.mu.Unlock()
	p.Kill()
}

func (r *roleProc) stop() {
	r.mu.Lock()
	p := r.p
	r.mu.Unlock()
	if p != nil {
		p.Stop(10 * time.Second)
	}
}

// TestCrashes: the inbound and delivery halves run as two `parley dev` processes on
// DynamoDB Local and local-aws-sqs (behind the proxy that adds the FIFO group lock),
// as the two Lambdas run in AWS, and are killed (SIGKILL) at random moments under
// load, then started again. Clients retry as the contract tells them (5xx and refused
// connections), sending a conversation's next message once the last is accepted.
// Nothing accepted may be lost, no bot message may arrive under two webhook ids or
// with two bodies, and each conversation's replies must first arrive in order;
// arriving twice under the same id is allowed (at least once).
func TestCrashes(t *testing.T) {
	m := scenario(t)
	clients, loadFor := pick(m, 8, 16), pick(m, 15*time.Second, 60*time.Second)
	// Each client sends a message every pace: several of a conversation's turns wait in
	// the queue at once, which is what the order is checked on, but the backlog stays
	// small enough to drain.
	pace := pick(m, 40*time.Millisecond, 25*time.Millisecond)
	parts := onEmulators(t, "crash", 5)
	bin := parleyCLI(t)
	rcv := newReceiver(t)
	const tok, secret = "prly_crash-token-91ab", "whsec_Y3Jhc2gtc2VjcmV0LWtleS0wOTg3NjU0MzIxZmVkY2Jh"
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr, portEnv := bench.Port(port)
	common := append(bench.BaseEnv(parts.Env()...), "PARLEY_TOKEN="+tok, "PARLEY_SIGNING_SECRET="+secret,
		"PARLEY_RESPONSE_ENDPOINT_URL="+rcv.URL, "PARLEY_BOT_TIMEOUT=1s", "PARLEY_DELIVERY_TIMEOUT=2s",
		"PARLEY_RETRY_MIN_DELAY=1s", "PARLEY_RETRY_MAX_DELAY=2s", "PARLEY_MAX_ATTEMPTS=20")
	logs := logDir(t)
	in := &roleProc{role: "inbound", bin: bin, log: filepath.Join(logs, "inbound.log"), url: "http://" + addr + "/",
		env: append(append([]string(nil), common...), portEnv, "PARLEY_DEV_ROLE=inbound")}
	out := &roleProc{role: "delivery", bin: bin, log: filepath.Join(logs, "delivery.log"),
		env: append(append([]string(nil), common...), "PARLEY_DEV_ROLE=delivery")}
	in.start(t)
	out.start(t)
	defer in.stop()
	defer out.stop()

	run := fmt.Sprintf("crash%d", time.Now().UnixNano())
	loadEnd := time.Now().Add(loadFor)
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for time.Now().Before(loadEnd) {
			time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
			r := in
			if rand.IntN(2) == 0 {
				r = out
			}
			r.kill()
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
			r.start(t)
		}
	}()

	var mu sync.Mutex
	expected := map[string]string{}
	order := map[string][]string{}
	outcomes := map[string]int{}
	var gaveUp []string
	httpc := bench.NewClient(clients)
	httpc.Timeout = 30 * time.Second
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("%s-c%d", run, c)
			for i := 0; time.Now().Before(loadEnd); i++ {
				id := fmt.Sprintf("%s-m%d", conv, i)
				body := messageBody("u"+conv, conv, id, "crash text "+id)
				giveUp := time.Now().Add(90 * time.Second)
				for {
					status, header, resp, err := post(context.Background(), httpc, in.url, tok, body)
					key := strconv.Itoa(status)
					switch {
					case err != nil:
						key = "no answer"
					case status == 200 && header.Get("Idempotent-Replayed") == "true":
						key = "200 replayed"
					case status == 200:
						key = "200"
					default:
						key += " " + errorCode(resp)
					}
					mu.Lock()
					outcomes[key]++
					mu.Unlock()
					if status == 200 {
						mu.Lock()
						expected[replyRef(conv, id, 0)] = id
						order[conv] = append(order[conv], replyRef(conv, id, 0))
						mu.Unlock()
						break
					}
					if time.Now().After(giveUp) || (status >= 400 && status < 500) {
						mu.Lock()
						gaveUp = append(gaveUp, id+": "+key)
						mu.Unlock()
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				time.Sleep(pace)
			}
		}()
	}
	wg.Wait()
	<-killerDone
	loadTook := time.Since(loadEnd.Add(-loadFor))

	_, sq := parts.Clients()
	dlq := sqsfifo.New(sq, parts.Res.QueueURL, parts.Res.DeadLetterQueueURL)
	dead := map[string]bool{}
	check := func() (ok bool) {
		ok, dead, _ = settled(rcv, dlq, expected, 1)
		return ok
	}
	start := time.Now()
	done := waitFor(pick(m, 90*time.Second, 180*time.Second), check)
	settleTook := time.Since(start)
	time.Sleep(3 * time.Second) // time for late copies to show
	check()
	tl := count(expected, rcv.acked(), dead, order)
	if len(tl.OrderBreaks) > 0 {
		// What happened around the first break: the conversation's arrivals, and the kills.
		conv, _, _ := strings.Cut(tl.OrderBreaks[0], ":")
		t0 := loadEnd.Add(-loadFor)
		var kills []string
		for _, r := range []*roleProc{in, out} {
			for _, at := range r.killedAt {
				kills = append(kills, fmt.Sprintf("%s at +%s", r.role, at.Sub(t0).Round(time.Millisecond)))
			}
		}
		t.Logf("kills: %v", kills)
		for _, d := range rcv.all() {
			if d.Conversation == conv && d.At.Sub(t0) < 30*time.Second {
				t.Logf("  +%s %s answering %s: %d", d.At.Sub(t0).Round(time.Millisecond), d.ID, d.InReplyTo, d.Status)
			}
		}
	}

	summarize(t, "killed inbound %d× and delivery %d× (SIGKILL) during %s of load by %d clients → POST answers %v; %d messages accepted; %s; settled %s after the load (order checked: local-aws-sqs behind the group-locking proxy)",
		in.kills, out.kills, loadTook.Round(time.Second), clients, outcomes, len(expected), tl, settleTook.Round(time.Second))
	if !done {
		t.Error("not settled within the time allowed")
	}
	if len(gaveUp) > 0 {
		t.Errorf("%d messages never accepted, e.g. %v", len(gaveUp), gaveUp[:min(3, len(gaveUp))])
	}
	if in.kills+out.kills == 0 {
		t.Error("nothing was killed: the scenario did not run")
	}
	tl.check(t)
	var all strings.Builder
	for _, f := range []string{in.log, out.log} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	if l := leaks(all.String(), map[string]string{"the token": tok, "the signing secret": secret[len("whsec_"):], "a message text": "crash text"}); len(l) > 0 {
		t.Errorf("log leaks: %v", l[:min(len(l), 3)])
	}
}
