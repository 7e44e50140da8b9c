package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/queuetest"
	"github.com/parley-chat/parley/shared/webhook"
)

// receiver records what reaches a Response Endpoint and answers with respond.
type receiver struct {
	mu       sync.Mutex
	attempts []attempt
	respond  func(n int, r *http.Request) int // n counts requests from 1
	srv      *httptest.Server
}

type attempt struct {
	at      time.Time
	id      string
	body    string
	headers http.Header
	status  int
}

func newReceiver(t *testing.T, respond func(n int, r *http.Request) int) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.attempts) + 1
		rc.attempts = append(rc.attempts, attempt{at: time.Now(), id: r.Header.Get("webhook-id"), body: string(body), headers: r.Header.Clone()})
		rc.mu.Unlock()
		status := rc.respond(n, r)
		rc.mu.Lock()
		rc.attempts[n-1].status = status
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []attempt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]attempt(nil), rc.attempts...)
}

type stack struct {
	queue *inmem.Queue
	store *inmem.Store
	h     *delivery.Handler
	stop  func()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start runs a poller over an embedded queue delivering to url, as the local stack
// and the event source mapping do.
func start(t *testing.T, url string, policy delivery.Policy, timeout time.Duration, workers int) *stack {
	t.Helper()
	sender, err := webhook.NewSender(webhook.Config{URL: url, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{queue: inmem.NewQueue(inmem.QueueConfig{VisibilityTimeout: 5 * time.Second, MaxReceives: 1000}), store: inmem.NewStore()}
	s.h = delivery.New(sender, s.queue, s.store, policy, timeout, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { delivery.Poll(ctx, s.queue, s.h, workers, quiet); close(done) }()
	s.stop = func() { cancel(); <-done }
	t.Cleanup(s.stop)
	return s
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var fast = delivery.Policy{MinDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxAttempts: 4}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		respond  func(n int, r *http.Request) int
		attempts int
		dead     string // reason in the dead-letter queue, "" when delivered
		gaps     []time.Duration
	}{
		{"200", func(int, *http.Request) int { return 200 }, 1, "", nil},
		{"500 then 200", func(n int, _ *http.Request) int { return map[bool]int{true: 500, false: 200}[n == 1] }, 2, "", []time.Duration{100 * time.Millisecond}},
		{"429 with Retry-After then 200", func(n int, _ *http.Request) int {
			if n == 1 {
				return 429
			}
			return 200
		}, 2, "", []time.Duration{time.Second}},
		{"404 is permanent", func(int, *http.Request) int { return 404 }, 1, "permanent failure: http 404", nil},
		{"always 503: budget", func(int, *http.Request) int { return 503 }, 4, "gave up after 4 attempts: http 503",
			[]time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int, r *http.Request) int { return tc.respond(n, r) })
			if strings.Contains(tc.name, "Retry-After") {
				rc.respond = func(n int, r *http.Request) int { return tc.respond(n, r) }
				rc.srv.Config.Handler = retryAfter(rc.srv.Config.Handler, "1")
			}
			s := start(t, rc.srv.URL, fast, time.Second, 1)
			d := queuetest.Deliveries(1)
			if err := s.queue.Send(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the message to settle", 10*time.Second, func() bool {
				q, f, dead := s.queue.Stats()
				return q+f == 0 && (dead == 1 || tc.dead == "")
			})
			got := rc.got()
			if len(got) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(got), tc.attempts)
			}
			for i, a := range got {
				if a.id != d[0].ID || a.body != string(d[0].Body) {
					t.Errorf("attempt %d: id %q body %q; want the same id and body every time", i+1, a.id, a.body)
				}
			}
			for i, want := range tc.gaps {
				gap := got[i+1].at.Sub(got[i].at)
				if gap < want || gap > want+400*time.Millisecond {
					t.Errorf("gap before attempt %d = %s, want %s (+ at most 400ms of polling)", i+2, gap, want)
				}
			}
			dead, _ := s.queue.DeadLetters(context.Background(), 10)
			if tc.dead == "" {
				if len(dead) != 0 {
					t.Errorf("%d dead letters, want 0", len(dead))
				}
				return
			}
			if len(dead) != 1 || attr(dead[0], delivery.AttrFailureReason) != tc.dead {
				t.Fatalf("dead letters = %v, want one with reason %q", reasons(dead), tc.dead)
			}
			if got := attr(dead[0], delivery.AttrAttempts); got != fmt.Sprint(tc.attempts) {
				t.Errorf("dead letter attempts = %s, want %d", got, tc.attempts)
			}
			if dead[0].Body != string(d[0].Body) {
				t.Errorf("dead letter body = %s, want the webhook body", dead[0].Body)
			}
		})
	}
}

func retryAfter(h http.Handler, v string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", v)
		h.ServeHTTP(w, r)
	})
}

func TestTimeoutsAndRefusedConnectionsAreRetried(t *testing.T) {
	t.Run("stall beyond the timeout", func(t *testing.T) {
		release := make(chan struct{})
		rc := newReceiver(t, func(n int, r *http.Request) int {
			if n == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			return 200
		})
		defer close(release)
		s := start(t, rc.srv.URL, fast, 200*time.Millisecond, 1)
		if err := s.queue.Send(context.Background(), queuetest.Deliveries(1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery after the stall", 10*time.Second, func() bool { q, f, _ := s.queue.Stats(); return q+f == 0 })
		if got := len(rc.got()); got != 2 {
			t.Errorf("%d attempts, want 2 (a timeout, then a success)", got)
		}
	})
	t.Run("closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := start(t, "http://"+addr+"/hook", fast, 200*time.Millisecond, 1)
		if err := s.queue.Send(context.Background(), queuetest.Deliveries(1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the budget to end", 10*time.Second, func() bool { _, _, dead := s.queue.Stats(); return dead == 1 })
		dead, _ := s.queue.DeadLetters(context.Background(), 1)
		if r := attr(dead[0], delivery.AttrFailureReason); !strings.HasPrefix(r, "gave up after 4 attempts: ") || !strings.Contains(r, "refused") {
			t.Errorf("reason = %q, want the budget spent on refused connections", r)
		}
	})
}

// A failure holds back the rest of its conversation and nothing else.
func TestBatchFailureKeepsOrderPerConversation(t *testing.T) {
	a, b := queuetest.Deliveries(3), queuetest.Deliveries(2)
	failing := a[1].ID
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if r.Header.Get("webhook-id") == failing {
			return 500
		}
		return 200
	})
	sender, _ := webhook.NewSender(webhook.Config{URL: rc.srv.URL, Timeout: time.Second})
	q := inmem.NewQueue(inmem.QueueConfig{})
	for _, d := range [][]message.Delivery{a, b} {
		if err := q.Send(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := q.Receive(context.Background(), 10, 0)
	if len(msgs) != 5 {
		t.Fatalf("received %d, want 5", len(msgs))
	}
	h := delivery.New(sender, q, inmem.NewStore(), fast, time.Second, quiet)
	res, err := h.Handle(context.Background(), events.SQSEvent{Records: msgs})
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range res.BatchItemFailures {
		for _, m := range msgs {
			if m.MessageId == f.ItemIdentifier {
				d, _ := delivery.Decode(m)
				failed = append(failed, d.ID)
			}
		}
	}
	if want := []string{a[1].ID, a[2].ID}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Errorf("failures = %v, want %v (the failed message and the rest of its conversation)", failed, want)
	}
	var delivered []string
	for _, at := range rc.got() {
		if at.status == 200 {
			delivered = append(delivered, at.id)
		}
	}
	if want := []string{a[0].ID, b[0].ID, b[1].ID}; !sameSet(delivered, want) {
		t.Errorf("delivered = %v, want %v", delivered, want)
	}
	for _, at := range rc.got() {
		if at.id == a[2].ID {
			t.Error("the message after the failure was attempted")
		}
	}
}

// Three conversations, 20 messages each, a receiver failing 30% of the time: every
// conversation arrives in order, every webhook-id at least once, none missing.
func TestOrderUnderRandomFailures(t *testing.T) {
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2))
	rc := newReceiver(t, func(int, *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if rnd.Float64() < 0.3 {
			return 500
		}
		return 200
	})
	s := start(t, rc.srv.URL, delivery.Policy{MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxAttempts: 50}, time.Second, 3)
	var convs [][]message.Delivery
	for range 3 {
		convs = append(convs, queuetest.Deliveries(20))
	}
	// Interleave the sends, as three users chatting at once would.
	for i := range 20 {
		for _, c := range convs {
			if err := s.queue.Send(context.Background(), c[i:i+1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "all 60 delivered", 30*time.Second, func() bool { q, f, _ := s.queue.Stats(); return q+f == 0 })
	if _, _, dead := s.queue.Stats(); dead != 0 {
		t.Fatalf("%d dead letters, want 0", dead)
	}
	failures := 0
	for _, c := range convs {
		var seen []string
		for _, a := range rc.got() {
			if a.status != 200 {
				failures++
				continue
			}
			for _, d := range c {
				if a.id == d.ID {
					seen = append(seen, a.id)
				}
			}
		}
		var want []string
		for _, d := range c {
			want = append(want, d.ID)
		}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("conversation %s delivered\n%v\nwant\n%v", c[0].GroupID, seen, want)
		}
	}
	if failures == 0 {
		t.Error("the receiver never failed: the test proved nothing")
	}
}

func TestPolicy(t *testing.T) {
	p := delivery.DefaultPolicy
	want := []time.Duration{5 * time.Second, 15 * time.Second, 45 * time.Second, 135 * time.Second, 405 * time.Second,
		1215 * time.Second, 3645 * time.Second, 10935 * time.Second, 32805 * time.Second, 12 * time.Hour, 12 * time.Hour}
	var total time.Duration
	for n := 1; n <= len(want); n++ {
		if got := p.Delay(n); got != want[n-1] {
			t.Errorf("Delay(%d) = %s, want %s", n, got, want[n-1])
		}
		if n < p.MaxAttempts {
			total += p.Delay(n)
		}
	}
	if total < 24*time.Hour || total > 30*time.Hour {
		t.Errorf("the default budget spans %s, want about a day", total)
	}
	if err := (delivery.Policy{MinDelay: time.Second, MaxDelay: 12 * time.Hour, MaxAttempts: 28}).Validate(); err != nil {
		t.Errorf("28 attempts up to 12h apart fit in 14 days: %v", err)
	}
	for _, bad := range []delivery.Policy{
		{MinDelay: 0, MaxDelay: time.Hour, MaxAttempts: 3},
		{MinDelay: time.Minute, MaxDelay: time.Second, MaxAttempts: 3},
		{MinDelay: time.Second, MaxDelay: 13 * time.Hour, MaxAttempts: 3},
		{MinDelay: time.Second, MaxDelay: time.Hour, MaxAttempts: 0},
		{MinDelay: time.Second, MaxDelay: 12 * time.Hour, MaxAttempts: 40}, // 29 of its 39 waits are 12h: past 14 days
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestUndecodableRecordGoesToDeadLetters(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) int { return 200 })
	sender, _ := webhook.NewSender(webhook.Config{URL: rc.srv.URL, Timeout: time.Second})
	q := inmem.NewQueue(inmem.QueueConfig{})
	h := delivery.New(sender, q, inmem.NewStore(), fast, time.Second, quiet)
	bad := events.SQSMessage{MessageId: "x1", ReceiptHandle: "r1", Body: "not json", Attributes: map[string]string{"MessageGroupId": "g"}}
	res, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{bad}})
	if err != nil || len(res.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want the record settled", res, err)
	}
	dead, _ := q.DeadLetters(context.Background(), 1)
	if len(dead) != 1 || !strings.Contains(attr(dead[0], delivery.AttrFailureReason), "undeliverable") {
		t.Errorf("dead letters = %v, want the record with its reason", reasons(dead))
	}
	if len(rc.got()) != 0 {
		t.Error("an undecodable record was POSTed")
	}
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

func reasons(msgs []events.SQSMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, attr(m, delivery.AttrFailureReason))
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

var _ = json.Valid
