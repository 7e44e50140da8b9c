package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Receiver is the Response Endpoint of a load run: it answers 200 at once and tells
// the client waiting for a reply, found by its Parley-In-Reply-To header (the inbound
// messageId, unique in a run).
type Receiver struct {
	URL     string
	srv     *http.Server
	mu      sync.Mutex
	waiting map[string]chan time.Time
	stray   int
}

// NewReceiver starts a Receiver on a free loopback port.
func NewReceiver() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{URL: "http://" + ln.Addr().String() + "/hook", waiting: map[string]chan time.Time{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	now := time.Now()
	key := req.Header.Get("Parley-In-Reply-To")
	r.mu.Lock()
	ch, ok := r.waiting[key]
	if ok {
		delete(r.waiting, key)
	} else {
		r.stray++
	}
	r.mu.Unlock()
	if ok {
		ch <- now
	}
	w.WriteHeader(http.StatusOK)
}

// expect registers interest in the reply to messageID.
func (r *Receiver) expect(messageID string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	r.mu.Lock()
	r.waiting[messageID] = ch
	r.mu.Unlock()
	return ch
}

func (r *Receiver) forget(messageID string) {
	r.mu.Lock()
	delete(r.waiting, messageID)
	r.mu.Unlock()
}

// Stray is how many deliveries nobody was waiting for: redeliveries, or replies that
// came after their client gave up.
func (r *Receiver) Stray() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stray
}

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }

// Load is one closed-loop load run: Concurrency clients, each with its own
// conversation, each sending a message, waiting for its reply at the receiver, and
// sending the next, for Warmup and then Duration.
type Load struct {
	URL, Token  string
	Receiver    *Receiver
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// RunID makes the messageIds and conversationIds of this run unique.
	RunID string
	// Timeout is how long a client waits for a reply before it counts it lost.
	Timeout time.Duration
	// CPU, when set, samples the CPU time of the processes involved; the result keeps
	// what each used during the window.
	CPU func() CPUSample
}

// Result is what a load run measured, over the window after the warmup.
type Result struct {
	Concurrency int
	Completed   int     // replies received in the window
	PerSecond   float64 // Completed / window
	// P50 and P99 are the end-to-end latencies of the messages sent in the window:
	// from the start of the POST to the receiver answering the reply.
	P50, P99 time.Duration
	// PostP50 is the median time to the POST's 200: what the caller waits.
	PostP50 time.Duration
	Failures
	// CPU is the CPU time each sampled process used during the window.
	CPU CPUSample
}

// Failures are what a load did not complete: POSTs not answered 200 (Failed) and
// replies that did not arrive within the timeout (Lost); both should be 0.
type Failures struct {
	Failed, Lost int
	FirstError   string
}

// count records one failure under mu.
func (f *Failures) count(mu *sync.Mutex, lost bool, err string) {
	mu.Lock()
	defer mu.Unlock()
	if lost {
		f.Lost++
	} else {
		f.Failed++
	}
	if f.FirstError == "" {
		f.FirstError = err
	}
}

type sample struct {
	start, posted, done time.Time
}

// NewClient is an HTTP client that keeps enough connections for n concurrent callers.
func NewClient(n int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 2*n+10, 2*n+10
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// Run runs the load.
func (l Load) Run(ctx context.Context) Result {
	if l.Timeout == 0 {
		l.Timeout = 30 * time.Second
	}
	client := NewClient(l.Concurrency)
	defer client.CloseIdleConnections()
	start := time.Now()
	windowStart, end := start.Add(l.Warmup), start.Add(l.Warmup+l.Duration)
	var mu sync.Mutex
	var samples []sample
	res := Result{Concurrency: l.Concurrency}
	fail := func(lost bool, err string) { res.count(&mu, lost, err) }
	var wg sync.WaitGroup
	if l.CPU != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(windowStart))
			before := l.CPU()
			time.Sleep(time.Until(end))
			res.CPU = l.CPU().Sub(before)
		}()
	}
	for c := range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := l.RunID + "-c" + strconv.Itoa(c)
			for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
				id := conv + "-m" + strconv.Itoa(n)
				body := `{"userId":"user-` + strconv.Itoa(c) + `","messageId":"` + id + `","conversationId":"` + conv +
					`","type":"text","text":"Hello, can you tell me where my order is?"}`
				arrived := l.Receiver.expect(id)
				s := sample{start: time.Now()}
				status, err := post(ctx, client, l.URL, l.Token, body)
				s.posted = time.Now()
				if err != nil || status != 200 {
					l.Receiver.forget(id)
					fail(false, fmt.Sprintf("POST: status %d, %v", status, err))
					time.Sleep(100 * time.Millisecond)
					continue
				}
				select {
				case s.done = <-arrived:
				case <-time.After(l.Timeout):
					l.Receiver.forget(id)
					fail(true, "no reply to "+id+" within "+l.Timeout.String())
					continue
				case <-ctx.Done():
					return
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var lat, postLat []time.Duration
	for _, s := range samples {
		if !s.done.Before(windowStart) && !s.done.After(end) {
			res.Completed++
		}
		if !s.start.Before(windowStart) && s.start.Before(end) {
			lat = append(lat, s.done.Sub(s.start))
			postLat = append(postLat, s.posted.Sub(s.start))
		}
	}
	res.PerSecond = float64(res.Completed) / l.Duration.Seconds()
	res.P50, res.P99 = Percentile(lat, 50), Percentile(lat, 99)
	res.PostP50 = Percentile(postLat, 50)
	return res
}

func post(ctx context.Context, client *http.Client, url, token, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// OpenLoad sends messages at a fixed rate whatever the replies do — Rate a second for
// Duration, round robin over Conversations conversations — and waits up to Timeout
// for each reply. It measures what a caller waits for the POST while turns run behind
// the queue: with a slow bot, the POST must not wait for it.
type OpenLoad struct {
	URL, Token    string
	Receiver      *Receiver
	Rate          int
	Duration      time.Duration
	Conversations int
	RunID         string
	Timeout       time.Duration
}

// OpenResult is what an open load measured.
type OpenResult struct {
	Sent                      int
	PostP50, PostP99, PostMax time.Duration // to the POST's 200
	ReplyP50, ReplyP99        time.Duration // from the POST's start to the reply's arrival
	Failures
}

// Run runs the load and returns once every reply arrived or timed out.
func (l OpenLoad) Run(ctx context.Context) OpenResult {
	if l.Timeout == 0 {
		l.Timeout = 30 * time.Second
	}
	client := NewClient(l.Rate)
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var res OpenResult
	var posts, replies []time.Duration
	fail := func(lost bool, err string) { res.count(&mu, lost, err) }
	tick := time.NewTicker(time.Second / time.Duration(l.Rate))
	defer tick.Stop()
	end := time.Now().Add(l.Duration)
	var wg sync.WaitGroup
	for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
		<-tick.C
		res.Sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := n % max(l.Conversations, 1)
			conv := l.RunID + "-c" + strconv.Itoa(c)
			id := conv + "-m" + strconv.Itoa(n)
			body := `{"userId":"user-` + strconv.Itoa(c) + `","messageId":"` + id + `","conversationId":"` + conv +
				`","type":"text","text":"Hello, can you tell me where my order is?"}`
			arrived := l.Receiver.expect(id)
			start := time.Now()
			status, err := post(ctx, client, l.URL, l.Token, body)
			posted := time.Since(start)
			if err != nil || status != 200 {
				l.Receiver.forget(id)
				fail(false, fmt.Sprintf("POST: status %d, %v", status, err))
				return
			}
			mu.Lock()
			posts = append(posts, posted)
			mu.Unlock()
			select {
			case at := <-arrived:
				mu.Lock()
				replies = append(replies, at.Sub(start))
				mu.Unlock()
			case <-time.After(l.Timeout):
				l.Receiver.forget(id)
				fail(true, "no reply to "+id+" within "+l.Timeout.String())
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	res.PostP50, res.PostP99, res.PostMax = Percentile(posts, 50), Percentile(posts, 99), Percentile(posts, 100)
	res.ReplyP50, res.ReplyP99 = Percentile(replies, 50), Percentile(replies, 99)
	return res
}
