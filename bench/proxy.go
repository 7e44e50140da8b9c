package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Proxy stands between the system under test and an emulator. It forwards every
// request to its current target, and while the target is unset it drops each
// connection unanswered, as a service that is down does; a test that restarts an
// emulator (on a new port) points the proxy at the new one, and the system keeps its
// endpoint.
//
// With FixLongPoll, it also makes local-aws-sqs's ReceiveMessage behave as SQS's
// does. local-aws-sqs 2.0.2 answers a long poll only when it has MaxNumberOfMessages
// messages or when WaitTimeSeconds has run out (and a short poll only after 40 ms),
// so a poller asking for 10 waits the full second for anything fewer: every
// end-to-end latency on it would be the emulator's timer. SQS answers as soon as it
// has any message. The proxy asks the emulator for one message with the caller's
// wait — which it answers at once — then for as many more as the queue reports
// visible, without waiting, and answers with all of them.
//
// With GroupLock, it also gives local-aws-sqs the FIFO group lock it lacks: SQS hands
// out none of a message group's messages while one of them is in flight (received,
// neither deleted nor visible again), so a conversation's turns never run at the same
// time. local-aws-sqs hands out any visible message. The proxy remembers the groups
// in flight — by receipt handle, until the message is deleted, made visible again or
// its visibility timeout runs out — and a message of such a group that a receive
// returns is kept back: made invisible until the group is free, then visible at once.
// The emulator keeps its messages in the order they were sent and hands them out in
// that order, so a group's messages still come in order.
type Proxy struct {
	URL         string
	FixLongPoll bool
	GroupLock   bool
	mu          sync.Mutex
	target      string
	client      *http.Client
	srv         *http.Server
	locks       groupLocks
}

// NewProxy starts a proxy to target on a free loopback port.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	p := &Proxy{URL: "http://" + ln.Addr().String(), target: target, client: &http.Client{Transport: tr}}
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// SetTarget points the proxy at a new target; "" makes it drop connections.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.client.CloseIdleConnections()
}

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

func (p *Proxy) current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := p.current()
	body, err := io.ReadAll(r.Body)
	if target == "" || err != nil {
		drop(w)
		return
	}
	var status int
	var header http.Header
	var out []byte
	op := r.Header.Get("X-Amz-Target")
	if p.FixLongPoll && op == "AmazonSQS.ReceiveMessage" {
		status, header, out, err = p.receive(r, target, body)
	} else {
		status, header, out, err = p.forward(r.Context(), r, target, body)
	}
	if err != nil {
		drop(w)
		return
	}
	if p.GroupLock && status == 200 {
		if op == "AmazonSQS.ReceiveMessage" {
			out = p.lockGroups(r, target, body, out)
		} else {
			p.release(r, target, op, body)
		}
	}
	reply(w, status, header, out)
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func reply(w http.ResponseWriter, status int, header http.Header, body []byte) {
	for k, vs := range header {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (p *Proxy) forward(ctx context.Context, r *http.Request, target string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = r.Header.Clone()
	req.Header.Del("Content-Length")
	res, err := p.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, out, err
}

type receiveOut struct {
	Messages []json.RawMessage `json:"Messages,omitempty"`
}

func (p *Proxy) receive(r *http.Request, target string, body []byte) (int, http.Header, []byte, error) {
	var in map[string]any
	if json.Unmarshal(body, &in) != nil {
		return p.forward(r.Context(), r, target, body)
	}
	want := 1
	if v, ok := in["MaxNumberOfMessages"].(float64); ok && v >= 1 {
		want = int(v)
	}
	call := func(n int, wait any) (int, http.Header, []byte, []json.RawMessage, error) {
		in["MaxNumberOfMessages"] = n
		in["WaitTimeSeconds"] = wait
		b, _ := json.Marshal(in)
		status, header, out, err := p.forward(r.Context(), r, target, b)
		if err != nil || status != 200 {
			return status, header, out, nil, err
		}
		var ro receiveOut
		if len(bytes.TrimSpace(out)) > 0 && json.Unmarshal(out, &ro) != nil {
			return status, header, out, nil, nil
		}
		return status, header, out, ro.Messages, nil
	}
	status, header, out, msgs, err := call(1, in["WaitTimeSeconds"])
	if err != nil || status != 200 || len(msgs) == 0 {
		return status, header, out, err
	}
	for len(msgs) < want {
		visible := p.visible(r, target, in["QueueUrl"])
		if visible == 0 {
			break
		}
		_, _, _, more, err := call(min(visible, want-len(msgs)), 0)
		if err != nil || len(more) == 0 {
			break
		}
		msgs = append(msgs, more...)
	}
	b, _ := json.Marshal(receiveOut{Messages: msgs})
	return 200, header, b, nil
}

// visible asks the emulator how many messages the queue holds visible. Its
// ApproximateNumberOfMessages counts the messages in flight too (SQS's does not).
func (p *Proxy) visible(r *http.Request, target string, queueURL any) int {
	b, _ := json.Marshal(map[string]any{"QueueUrl": queueURL, "AttributeNames": []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	req := r.Clone(r.Context())
	req.Header.Set("X-Amz-Target", "AmazonSQS.GetQueueAttributes")
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	status, _, out, err := p.forward(ctx, req, target, b)
	if err != nil || status != 200 {
		return 0
	}
	var res struct {
		Attributes map[string]string `json:"Attributes"`
	}
	if json.Unmarshal(out, &res) != nil {
		return 0
	}
	all, _ := strconv.Atoi(res.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ := strconv.Atoi(res.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return max(all-inFlight, 0)
}

// groupLocks are the FIFO groups in flight, for GroupLock.
type groupLocks struct {
	mu         sync.Mutex
	held       map[string]map[string]heldMsg // group -> receipt handle -> the message in flight
	group      map[string]string             // receipt handle -> group
	parked     map[string][]parked           // group -> messages kept back
	visibility map[string]time.Duration      // queue URL -> its visibility timeout
}

type parked struct{ queueURL, receipt string }

// heldMsg is a message in flight: until when, by the proxy's clock.
type heldMsg struct {
	id    string
	until time.Time
}

// inFlight reports whether group has a message in flight at now, forgetting those whose
// visibility ran out; called with mu held.
func (g *groupLocks) inFlight(group string, now time.Time) bool {
	for receipt, h := range g.held[group] {
		if !now.Before(h.until) {
			delete(g.held[group], receipt)
			delete(g.group, receipt)
		}
	}
	return len(g.held[group]) > 0
}

// lockGroups takes a receive's answer, locks the groups it hands out and keeps back
// the messages of groups already in flight.
func (p *Proxy) lockGroups(r *http.Request, target string, reqBody, out []byte) []byte {
	var in struct {
		QueueURL          string `json:"QueueUrl"`
		VisibilityTimeout int    `json:"VisibilityTimeout"`
	}
	var ro receiveOut
	if json.Unmarshal(reqBody, &in) != nil || len(bytes.TrimSpace(out)) == 0 || json.Unmarshal(out, &ro) != nil || len(ro.Messages) == 0 {
		return out
	}
	visibility := time.Duration(in.VisibilityTimeout) * time.Second
	if visibility <= 0 {
		visibility = p.queueVisibility(r, target, in.QueueURL)
	}
	now := time.Now()
	g := &p.locks
	g.mu.Lock()
	if g.held == nil {
		g.held, g.group, g.parked = map[string]map[string]heldMsg{}, map[string]string{}, map[string][]parked{}
	}
	busy := map[string]bool{}
	var kept []json.RawMessage
	type hold struct {
		receipt string
		d       time.Duration
	}
	var holds []hold
	for _, raw := range ro.Messages {
		var m struct {
			MessageID     string            `json:"MessageId"`
			ReceiptHandle string            `json:"ReceiptHandle"`
			Attributes    map[string]string `json:"Attributes"`
		}
		_ = json.Unmarshal(raw, &m)
		group := m.Attributes["MessageGroupId"]
		if group == "" || m.ReceiptHandle == "" {
			kept = append(kept, raw)
			continue
		}
		// The message in flight handed out again: its visibility ran out by the
		// emulator's clock, a moment before the proxy's. It is the group's head.
		for receipt, h := range g.held[group] {
			if h.id == m.MessageID {
				delete(g.held[group], receipt)
				delete(g.group, receipt)
			}
		}
		b, seen := busy[group]
		if !seen {
			b = g.inFlight(group, now)
			busy[group] = b
		}
		if b {
			// Kept back until the group's last message in flight is due back.
			var until time.Time
			for _, h := range g.held[group] {
				until = maxTime(until, h.until)
			}
			holds = append(holds, hold{m.ReceiptHandle, until.Sub(now)})
			g.parked[group] = append(g.parked[group], parked{in.QueueURL, m.ReceiptHandle})
			continue
		}
		if g.held[group] == nil {
			g.held[group] = map[string]heldMsg{}
		}
		g.held[group][m.ReceiptHandle] = heldMsg{m.MessageID, now.Add(visibility)}
		g.group[m.ReceiptHandle] = group
		kept = append(kept, raw)
	}
	g.mu.Unlock()
	for _, h := range holds {
		p.changeVisibility(r, target, in.QueueURL, h.receipt, h.d)
	}
	if len(kept) == len(ro.Messages) {
		return out
	}
	b, _ := json.Marshal(receiveOut{Messages: kept})
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// release notes deletes and visibility changes: a group whose last message in flight
// is deleted or made visible is free, and its messages kept back are made visible.
func (p *Proxy) release(r *http.Request, target, op string, body []byte) {
	type entry struct {
		ReceiptHandle     string `json:"ReceiptHandle"`
		VisibilityTimeout *int   `json:"VisibilityTimeout"`
	}
	var in struct {
		entry
		Entries []entry `json:"Entries"`
	}
	switch op {
	case "AmazonSQS.DeleteMessage", "AmazonSQS.ChangeMessageVisibility":
		if json.Unmarshal(body, &in) != nil {
			return
		}
		in.Entries = []entry{in.entry}
	case "AmazonSQS.DeleteMessageBatch", "AmazonSQS.ChangeMessageVisibilityBatch":
		if json.Unmarshal(body, &in) != nil {
			return
		}
	default:
		return
	}
	now := time.Now()
	g := &p.locks
	g.mu.Lock()
	var wake []parked
	for _, e := range in.Entries {
		group, ok := g.group[e.ReceiptHandle]
		if !ok {
			continue
		}
		if e.VisibilityTimeout != nil && *e.VisibilityTimeout > 0 {
			h := g.held[group][e.ReceiptHandle]
			h.until = now.Add(time.Duration(*e.VisibilityTimeout) * time.Second)
			g.held[group][e.ReceiptHandle] = h
			continue
		}
		delete(g.held[group], e.ReceiptHandle)
		delete(g.group, e.ReceiptHandle)
		if !g.inFlight(group, now) {
			wake = append(wake, g.parked[group]...)
			delete(g.parked, group)
			delete(g.held, group)
		}
	}
	g.mu.Unlock()
	for _, w := range wake {
		p.changeVisibility(r, target, w.queueURL, w.receipt, 0)
	}
}

// changeVisibility sets a message's visibility timeout on the emulator, rounded up to
// the second; a receipt that no longer holds (the message came back meanwhile) is
// ignored.
func (p *Proxy) changeVisibility(r *http.Request, target, queueURL, receipt string, d time.Duration) {
	secs := int((max(d, 0) + time.Second - 1) / time.Second)
	b, _ := json.Marshal(map[string]any{"QueueUrl": queueURL, "ReceiptHandle": receipt, "VisibilityTimeout": secs})
	req := r.Clone(context.WithoutCancel(r.Context()))
	req.Header.Set("X-Amz-Target", "AmazonSQS.ChangeMessageVisibility")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, _, _ = p.forward(ctx, req, target, b)
}

// queueVisibility is a queue's visibility timeout, asked once.
func (p *Proxy) queueVisibility(r *http.Request, target, queueURL string) time.Duration {
	g := &p.locks
	g.mu.Lock()
	v, ok := g.visibility[queueURL]
	g.mu.Unlock()
	if ok {
		return v
	}
	v = 30 * time.Second
	b, _ := json.Marshal(map[string]any{"QueueUrl": queueURL, "AttributeNames": []string{"VisibilityTimeout"}})
	req := r.Clone(r.Context())
	req.Header.Set("X-Amz-Target", "AmazonSQS.GetQueueAttributes")
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if status, _, out, err := p.forward(ctx, req, target, b); err == nil && status == 200 {
		var res struct {
			Attributes map[string]string `json:"Attributes"`
		}
		if json.Unmarshal(out, &res) == nil {
			if n, err := strconv.Atoi(res.Attributes["VisibilityTimeout"]); err == nil {
				v = time.Duration(n) * time.Second
			}
		}
	}
	g.mu.Lock()
	if g.visibility == nil {
		g.visibility = map[string]time.Duration{}
	}
	g.visibility[queueURL] = v
	g.mu.Unlock()
	return v
}
