//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/proc"
)

// endpointStack is `parley dev` on DynamoDB Local and local-aws-sqs (behind the
// group-locking proxy, so the FIFO order holds as in AWS), delivering to a receiver the
// scenario steers, and the CLI pointed at the same table as an operator's would be.
type endpointStack struct {
	parts *awsParts
	rcv   *receiver
	cli   string
	url   string
	tok   string
	proc  *proc.Proc
}

func startEndpointStack(t *testing.T, name string, policy ...string) *endpointStack {
	t.Helper()
	e := &endpointStack{parts: onEmulators(t, name, 30), rcv: newReceiver(t), cli: parleyCLI(t), tok: "prly_" + name + "-token-5e1f"}
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr, portEnv := bench.Port(port)
	e.url = "http://" + addr + "/"
	env := append(bench.BaseEnv(e.parts.Env()...), portEnv, "PARLEY_TOKEN="+e.tok, "PARLEY_RESPONSE_ENDPOINT_URL="+e.rcv.URL,
		"PARLEY_SIGNING_SECRET=whsec_ZW5kcG9pbnQtc2NlbmFyaW8tc2lnbmluZy1rZXktMDEyMzQ1Njc4OQ==")
	e.proc, err = proc.Start(proc.Spec{Name: "parley dev (" + name + ")", Bin: e.cli, Args: []string{"dev"},
		Env: append(env, policy...), Log: filepath.Join(logDir(t), name+".log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.proc.Stop(10 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.proc.WaitHTTP(ctx, e.url); err != nil {
		t.Fatal(err)
	}
	return e
}

// operator runs the CLI against the stack's table, as an operator runs it against AWS.
func (e *endpointStack) operator(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.cli, append(args, "--table", e.parts.Res.Table)...)
	cmd.Env = bench.BaseEnv(bench.EmulatorEnv(e.parts.DDBProxy.URL, e.parts.SQSProxy.URL)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("parley %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *endpointStack) health(t *testing.T) message.Health {
	t.Helper()
	var h message.Health
	out := e.operator(t, "endpoint", "status", "--json")
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("endpoint status --json: %v\n%s", err, out)
	}
	return h
}

// traffic sends convs conversations' messages, one every pace per conversation, until
// stop is closed; each next message only once the last was accepted, as a chat
// backend does. It returns the expected webhook ids (→ messageId) and each
// conversation's order.
type traffic struct {
	mu       sync.Mutex
	expected map[string]string
	order    map[string][]string
	refused  []string
	wg       sync.WaitGroup
}

func (e *endpointStack) send(run string, convs int, pace time.Duration, stop <-chan struct{}) *traffic {
	tr := &traffic{expected: map[string]string{}, order: map[string][]string{}}
	client := bench.NewClient(convs)
	for c := range convs {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			conv := fmt.Sprintf("%s-c%d", run, c)
			time.Sleep(time.Duration(rand.Int64N(int64(pace)))) // conversations out of step
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-m%d", conv, i)
				status, _, body, err := post(context.Background(), client, e.url, e.tok, messageBody("u"+conv, conv, id, "endpoint text "+id))
				tr.mu.Lock()
				if err != nil || status != 200 {
					tr.refused = append(tr.refused, fmt.Sprintf("%s: %d %v %s", id, status, err, body))
				} else {
					ref := replyRef(conv, id, 0)
					tr.expected[ref] = id
					tr.order[conv] = append(tr.order[conv], ref)
				}
				tr.mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(pace):
				}
			}
		}()
	}
	return tr
}

// settle waits until every expected id was acknowledged or dead-lettered, and tallies.
func (e *endpointStack) settle(t *testing.T, tr *traffic, within time.Duration) (tally, map[string]int, bool) {
	t.Helper()
	_, sq := e.parts.Clients()
	dlq := sqsfifo.New(sq, e.parts.Res.QueueURL, e.parts.Res.DeadLetterQueueURL)
	var dead map[string]bool
	var reasons map[string]int
	check := func() (ok bool) {
		ok, dead, reasons = settled(e.rcv, dlq, tr.expected, 1)
		return ok
	}
	ok := waitFor(within, check)
	time.Sleep(time.Second) // late duplicates, had there been any
	check()
	return count(tr.expected, e.rcv.acked(), dead, tr.order), reasons, ok
}

// checkAllDelivered fails the test unless every message was accepted and its reply
// delivered (settled says whether that happened within the time allowed, when), none
// dead-lettered, with nothing the tally counts against.
func (tr *traffic) checkAllDelivered(t *testing.T, tl tally, settled bool, when string) {
	t.Helper()
	if len(tr.refused) > 0 {
		t.Errorf("%d messages not accepted, e.g. %v", len(tr.refused), tr.refused[:min(3, len(tr.refused))])
	}
	if !settled {
		t.Errorf("not everything delivered %s", when)
	}
	tl.check(t)
	if tl.DeadLettered > 0 || tl.Delivered != tl.Expected {
		t.Errorf("delivered %d of %d, dead-lettered %d: want every one delivered", tl.Delivered, tl.Expected, tl.DeadLettered)
	}
}

// TestReceiverFlapping: for two minutes the receiver flaps between answering every
// POST 404, 500 and 200, in phases of 1 to 8 s (each round of three phases holds one
// of each, in a random order), while eight conversations keep sending. A 404 is
// retried like any non-2xx. With a retry budget that outlasts the flapping (1 s to
// 10 s, 30 attempts), every bot message must arrive, each conversation's in order,
// none dead-lettered, none under two webhook ids, and the endpoint stays enabled (its
// failures never span the 24 h that disabling needs).
func TestReceiverFlapping(t *testing.T) {
	m := scenario(t)
	t.Parallel()
	flapFor := pick(m, 2*time.Minute, 2*time.Minute)
	e := startEndpointStack(t, "flap", "PARLEY_RETRY_MIN_DELAY=1s", "PARLEY_RETRY_MAX_DELAY=10s", "PARLEY_MAX_ATTEMPTS=30", "PARLEY_DELIVERY_TIMEOUT=2s")

	var answer atomic.Int64
	answer.Store(200)
	answered := map[int]*atomic.Int64{404: {}, 500: {}, 200: {}}
	e.rcv.decide = func(*arrival) (int, string, time.Duration) {
		s := int(answer.Load())
		answered[s].Add(1)
		return s, "", 0
	}
	stop := make(chan struct{})
	var phases []string
	flapped := make(chan struct{})
	go func() {
		defer close(flapped)
		end := time.Now().Add(flapFor)
		for time.Now().Before(end) {
			for _, s := range rand.Perm(3) {
				status := []int{404, 500, 200}[s]
				d := time.Duration(1000+rand.IntN(7000)) * time.Millisecond
				answer.Store(int64(status))
				phases = append(phases, fmt.Sprintf("%d:%s", status, d.Round(100*time.Millisecond)))
				time.Sleep(d)
			}
		}
		answer.Store(200)
	}()
	start := time.Now()
	tr := e.send(fmt.Sprintf("flap%d", time.Now().UnixNano()), 8, 700*time.Millisecond, stop)
	<-flapped
	close(stop)
	tr.wg.Wait()
	tl, reasons, ok := e.settle(t, tr, 3*time.Minute)
	took := time.Since(start)
	h := e.health(t)

	summarize(t, "receiver flapping 404/500/200 for %s in %d phases (answers: 404×%d, 500×%d, 200×%d) while %d messages were sent in 8 conversations → %s; dead letters %v; endpoint disabled: %v; settled %s after the start",
		flapFor, len(phases), answered[404].Load(), answered[500].Load(), answered[200].Load(), len(tr.expected), tl, reasons, h.Disabled, took.Round(time.Second))
	tr.checkAllDelivered(t, tl, ok, "within 3 minutes after the flapping")
	if answered[404].Load() == 0 || answered[500].Load() == 0 {
		t.Errorf("the receiver never answered 404 or 500: the scenario tested nothing")
	}
	if h.Disabled {
		t.Errorf("endpoint disabled by flapping: %+v", h)
	}
}

// TestEndpointDisabledThenEnabled: the receiver answers 410 Gone, which disables the
// endpoint at once; for five minutes the backend keeps sending (every message is
// accepted and waits), and no POST reaches the receiver. Then the receiver is back
// and the operator runs `parley endpoint enable`: every bot message must arrive, each
// conversation's in order, none dead-lettered, none under two webhook ids.
func TestEndpointDisabledThenEnabled(t *testing.T) {
	m := scenario(t)
	t.Parallel()
	disabledFor := pick(m, 5*time.Minute, 5*time.Minute)
	e := startEndpointStack(t, "gone", "PARLEY_RETRY_MIN_DELAY=1s", "PARLEY_RETRY_MAX_DELAY=10s", "PARLEY_DELIVERY_TIMEOUT=2s")

	var gone atomic.Bool
	gone.Store(true)
	var lastGone atomic.Int64 // unix nanos of the last 410
	e.rcv.decide = func(*arrival) (int, string, time.Duration) {
		if gone.Load() {
			lastGone.Store(time.Now().UnixNano())
			return 410, "", 0
		}
		return 200, "", 0
	}
	stop := make(chan struct{})
	start := time.Now()
	tr := e.send(fmt.Sprintf("gone%d", time.Now().UnixNano()), 6, 3*time.Second, stop)

	if !waitFor(30*time.Second, func() bool { return e.health(t).Disabled }) {
		t.Fatalf("the endpoint is not disabled 30 s after answering 410: %+v", e.health(t))
	}
	disabledAt := time.Now()
	time.Sleep(time.Until(start.Add(disabledFor)))
	close(stop)
	tr.wg.Wait()
	h := e.health(t)
	gonePOSTs := len(e.rcv.all())
	// Attempts already under way when the endpoint was disabled end within the
	// delivery timeout; nothing may be attempted after that.
	lateGone := time.Unix(0, lastGone.Load()).Sub(disabledAt)

	gone.Store(false)
	out := e.operator(t, "endpoint", "enable")
	enabledAt := time.Now()
	tl, reasons, ok := e.settle(t, tr, 4*time.Minute)
	drained := time.Since(enabledAt)

	summarize(t, "endpoint disabled by a 410 (%q) for %s while %d messages were sent in 6 conversations; POSTs to the receiver while disabled: %d; `parley endpoint enable` said %q → %s; dead letters %v; all delivered %s after enabling",
		h.Reason, disabledFor, len(tr.expected), gonePOSTs, strings.SplitN(out, "\n", 2)[0], tl, reasons, drained.Round(time.Second))
	if !h.Disabled {
		t.Errorf("the endpoint was enabled again before the operator did it: %+v", h)
	}
	if lateGone > 5*time.Second {
		t.Errorf("the receiver was still POSTed to %s after the endpoint was disabled", lateGone.Round(time.Millisecond))
	}
	tr.checkAllDelivered(t, tl, ok, "within 4 minutes of enabling")
}
