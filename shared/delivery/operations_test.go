package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/testkit/proc"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
)

// A receiver that takes a second per POST, ten jobs in one conversation, and a batch
// budget that fits only one or two: every job is POSTed once — not again by a second
// worker after the visibility timeout, as a budget-less batch was.
func TestASlowReceiverGetsEachJobOnce(t *testing.T) {
	rc := newReceiver(t, func(n int, r *http.Request) int { time.Sleep(400 * time.Millisecond); return 200 })
	s := start(t, rc.srv.URL, &scriptBot{}, options{visibility: 2 * time.Second, budget: 1500 * time.Millisecond,
		sendTimeout: 600 * time.Millisecond, botTimeout: 10 * time.Millisecond})
	for i := range 10 {
		s.post(t, "c1", fmt.Sprintf("m%02d", i))
	}
	waitFor(t, "ten deliveries", 20*time.Second, func() bool { return len(rc.got()) >= 10 && s.settled() })
	time.Sleep(2500 * time.Millisecond) // past a visibility timeout: nothing more may come
	got := rc.got()
	if len(got) != 10 {
		t.Fatalf("%d POSTs for 10 jobs, want exactly 10", len(got))
	}
	for i, a := range got {
		if a.id != replyID("c1", fmt.Sprintf("m%02d", i), 0) {
			t.Errorf("POST %d was %s: out of order", i, a.id)
		}
	}
}

// A receiver flapping between 404, 500 and 200 loses nothing and keeps each
// conversation's order.
func TestAFlappingReceiverLosesNothing(t *testing.T) {
	var mu sync.Mutex
	n := 0
	rc := newReceiver(t, func(int, *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		n++
		return []int{404, 500, 200}[n%3]
	})
	s := start(t, rc.srv.URL, &scriptBot{}, options{policy: delivery.Policy{MinDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 50}})
	for i := range 6 {
		s.post(t, "a", fmt.Sprintf("a%d", i))
		s.post(t, "b", fmt.Sprintf("b%d", i))
	}
	waitFor(t, "every job settled", 30*time.Second, s.settled)
	if _, _, dead := s.queue.Stats(); dead != 0 {
		t.Errorf("%d dead letters, want 0", dead)
	}
	got := map[string][]string{}
	for _, id := range rc.delivered() {
		for _, conv := range []string{"a", "b"} {
			for i := range 6 {
				if id == replyID(conv, fmt.Sprintf("%s%d", conv, i), 0) {
					got[conv] = append(got[conv], fmt.Sprint(i))
				}
			}
		}
	}
	for _, conv := range []string{"a", "b"} {
		if strings.Join(got[conv], "") != "012345" {
			t.Errorf("conversation %s delivered %v, want 0..5 once each, in order", conv, got[conv])
		}
	}
}

// A 410 disables the endpoint at once: nothing more is attempted, nothing is counted,
// nothing is lost. Enabled again, it gets everything, in order.
func TestGoneDisablesTheEndpointAndEnablingResumesInOrder(t *testing.T) {
	var mu sync.Mutex
	gone := true
	rc := newReceiver(t, func(int, *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return 410
		}
		return 200
	})
	s := start(t, rc.srv.URL, &scriptBot{}, options{pause: 200 * time.Millisecond, healthTTL: 100 * time.Millisecond})
	for i := range 3 {
		s.post(t, "c1", fmt.Sprintf("m%d", i))
	}
	waitFor(t, "the endpoint disabled", 5*time.Second, func() bool {
		h, _ := s.store.Health(context.Background(), message.DefaultChannel)
		return h.Disabled
	})
	time.Sleep(time.Second) // several pauses: still nothing more is tried
	if n := len(rc.got()); n != 1 {
		t.Errorf("%d attempts while disabled, want the 1 that answered 410", n)
	}
	h, _ := s.store.Health(context.Background(), message.DefaultChannel)
	if h.Reason != "the endpoint answered 410 Gone" || len(h.Recent) != 1 || h.Recent[0].Status != 410 {
		t.Errorf("health = %+v", h)
	}
	mu.Lock()
	gone = false
	mu.Unlock()
	if err := s.store.EnableEndpoint(context.Background(), message.DefaultChannel); err != nil {
		t.Fatal(err)
	}
	// Functions read the health at most a minute old (here 100ms), and the jobs look
	// again after their pause.
	waitFor(t, "three deliveries after enabling", 5*time.Second, func() bool { return len(rc.delivered()) == 3 })
	want := []string{replyID("c1", "m0", 0), replyID("c1", "m1", 0), replyID("c1", "m2", 0)}
	if fmt.Sprint(rc.delivered()) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want %v", rc.delivered(), want)
	}
	if _, _, dead := s.queue.Stats(); dead != 0 {
		t.Errorf("%d dead letters, want 0", dead)
	}
}

// A streak of failures spanning the rule's time disables the endpoint too.
func TestAStreakOfFailuresDisablesTheEndpoint(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) int { return 503 })
	s := start(t, rc.srv.URL, &scriptBot{}, options{disable: message.DisableRule{Failures: 3, Span: 100 * time.Millisecond},
		policy: delivery.Policy{MinDelay: 60 * time.Millisecond, MaxDelay: 60 * time.Millisecond, MaxAttempts: 50}, pause: time.Hour})
	s.post(t, "c1", "m1")
	waitFor(t, "the endpoint disabled", 10*time.Second, func() bool {
		h, _ := s.store.Health(context.Background(), message.DefaultChannel)
		return h.Disabled
	})
	h, _ := s.store.Health(context.Background(), message.DefaultChannel)
	if h.Failures < 3 || !strings.Contains(h.Reason, "failed attempts in a row") || !strings.Contains(h.Reason, "http 503") {
		t.Errorf("health = %+v", h)
	}
}

// A head that keeps failing holds its conversation for at most the hold limit: then it
// goes to the dead letters, saying which messages overtook it, and the rest go on.
func TestAFailingHeadStepsAsideAfterTheHoldLimit(t *testing.T) {
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if r.Header.Get("Parley-In-Reply-To") == "stuck" {
			return 503
		}
		return 200
	})
	s := start(t, rc.srv.URL, &scriptBot{}, options{noPoll: true,
		policy: delivery.Policy{MinDelay: 50 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxAttempts: 100, HoldLimit: 300 * time.Millisecond}})
	s.post(t, "c1", "stuck")
	s.post(t, "c1", "next-1")
	s.post(t, "c1", "next-2")
	deadline := time.Now().Add(10 * time.Second)
	for !s.settled() && time.Now().Before(deadline) {
		batch, _ := s.queue.Receive(context.Background(), 10, 100*time.Millisecond)
		if len(batch) > 0 {
			failed, acked, _ := s.h.Run(context.Background(), batch)
			var done []string
			for _, m := range batch {
				if !failed[m.MessageId] && !acked[m.MessageId] {
					done = append(done, m.ReceiptHandle)
				}
			}
			_ = s.queue.Ack(context.Background(), done)
		}
	}
	dead, _ := s.queue.DeadLetters(context.Background(), 10)
	if len(dead) != 1 || !strings.HasPrefix(attr(dead[0], message.AttrFailureReason), "held its conversation for more than 300ms") {
		t.Fatalf("dead letters %v, want the stuck head", reasons(dead))
	}
	over := attr(dead[0], message.AttrOvertakenBy)
	for _, id := range []string{"next-1", "next-2"} {
		if !strings.Contains(over, message.MessageRef(message.DefaultChannel, "c1", id)) {
			t.Errorf("overtaken-by %q does not name %s", over, id)
		}
	}
	if got := rc.delivered(); fmt.Sprint(got) != fmt.Sprint([]string{replyID("c1", "next-1", 0), replyID("c1", "next-2", 0)}) {
		t.Errorf("delivered %v, want the two that followed, in order", got)
	}
}

// The attempt log keeps the failed attempts, with the answer's first KiB, and the
// success that follows them; a first-try success costs nothing and is "unknown".
func TestTheAttemptLog(t *testing.T) {
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if r.Header.Get("Parley-In-Reply-To") == "flaky" && n == 1 {
			return 500
		}
		return 200
	})
	inner := rc.srv.Config.Handler
	rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		inner.ServeHTTP(w, r)
	})
	s := start(t, rc.srv.URL, &scriptBot{}, options{})
	s.post(t, "c1", "flaky")
	s.post(t, "c1", "fine")
	waitFor(t, "both delivered", 5*time.Second, func() bool { return len(rc.delivered()) == 2 })
	l, found, _ := s.store.DeliveryLog(context.Background(), message.DefaultChannel, replyID("c1", "flaky", 0))
	if !found || l.Status != message.StatusDelivered || len(l.Attempts) != 2 || l.Attempts[0].Status != 500 || l.Attempts[0].Outcome != "retry" ||
		l.Attempts[1].Outcome != "delivered" || l.Attempts[0].LatencyMs <= 0 || l.ConversationID != "c1" {
		t.Errorf("attempt log = %+v (found %v)", l, found)
	}
	if _, found, _ := s.store.DeliveryLog(context.Background(), message.DefaultChannel, replyID("c1", "fine", 0)); found {
		t.Error("a first-try success was logged")
	}
}

// A replay sends one bot message again: the same webhook-id, a fresh signature, found
// by its attempt log or, for a first-try success, in the conversation's history.
func TestReplayThroughTheAPI(t *testing.T) {
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 1 {
			return 502
		}
		return 200
	})
	s := start(t, rc.srv.URL, &scriptBot{replies: 2}, options{})
	s.post(t, "c1", "m1")
	waitFor(t, "two replies", 5*time.Second, func() bool { return len(rc.delivered()) == 2 })
	first, second := replyID("c1", "m1", 0), replyID("c1", "m1", 1)
	call := func(method, path string) events.APIGatewayV2HTTPResponse {
		p, q, _ := strings.Cut(path, "?")
		res, _ := s.in.Handle(context.Background(), events.APIGatewayV2HTTPRequest{RawPath: p, RawQueryString: q,
			Headers:        map[string]string{"authorization": "bearer t"},
			RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method}}})
		return res
	}
	var l message.DeliveryLog
	res := call("GET", "/v1/deliveries/"+first)
	if json.Unmarshal([]byte(res.Body), &l); res.StatusCode != 200 || l.Status != "delivered" || len(l.Attempts) != 2 {
		t.Errorf("GET delivery = %d %s", res.StatusCode, res.Body)
	}
	if res := call("GET", "/v1/deliveries/"+second); !strings.Contains(res.Body, `"status":"unknown"`) {
		t.Errorf("a first-try success = %s, want unknown", res.Body)
	}
	if res := call("POST", "/v1/deliveries/"+first+"/replay"); res.StatusCode != 200 {
		t.Fatalf("replay by the log = %d %s", res.StatusCode, res.Body)
	}
	if res := call("POST", "/v1/deliveries/"+second+"/replay"); res.StatusCode != 404 || !strings.Contains(res.Body, "conversationId") {
		t.Errorf("replay of an unlogged message without the conversation = %d %s, want 404 saying what to pass", res.StatusCode, res.Body)
	}
	if res := call("POST", "/v1/deliveries/"+second+"/replay?conversationId=c1"); res.StatusCode != 200 {
		t.Fatalf("replay from the history = %d %s", res.StatusCode, res.Body)
	}
	waitFor(t, "the two replays", 5*time.Second, func() bool { return len(rc.delivered()) == 4 })
	got := rc.got()
	if got[len(got)-2].id != first || got[len(got)-1].id != second {
		t.Errorf("replayed %s and %s, want %s then %s", got[len(got)-2].id, got[len(got)-1].id, first, second)
	}
	if got[len(got)-1].body != got[2].body || got[len(got)-1].headers.Get("webhook-timestamp") == "" {
		t.Error("the replay's body differs from the delivery's, or has no timestamp of its own")
	}
}

// In Lambda the log lines carry CloudWatch metrics (Embedded Metric Format).
func TestLogLinesCarryMetrics(t *testing.T) {
	var buf proc.Buffer
	rc := newReceiver(t, func(n int, _ *http.Request) int { return map[bool]int{true: 500, false: 200}[n == 1] })
	s := start(t, rc.srv.URL, &scriptBot{}, options{metrics: true, log: slog.New(slog.NewJSONHandler(&buf, nil))})
	s.post(t, "c1", "m1")
	waitFor(t, "the delivery", 5*time.Second, func() bool { return len(rc.delivered()) == 1 })
	time.Sleep(50 * time.Millisecond)
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l struct {
			AWS struct {
				CloudWatchMetrics []struct {
					Namespace string
					Metrics   []struct{ Name string }
				}
			} `json:"_aws"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || len(l.AWS.CloudWatchMetrics) == 0 {
			continue
		}
		var raw map[string]any
		_ = json.Unmarshal([]byte(line), &raw)
		for _, m := range l.AWS.CloudWatchMetrics[0].Metrics {
			if _, ok := raw[m.Name].(float64); !ok || l.AWS.CloudWatchMetrics[0].Namespace != "Parley" {
				t.Errorf("metric %s has no value on its line: %s", m.Name, line)
			}
			seen[m.Name] = true
		}
	}
	for _, want := range []string{"Turns", "BotLatency", "FailedAttempts", "Delivered", "DeliveryLatency"} {
		if !seen[want] {
			t.Errorf("no %s metric in the log", want)
		}
	}
}
