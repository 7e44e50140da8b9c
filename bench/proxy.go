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
// With GroupLock, it also gives local-aws-sqs the FIFO group semantics it lacks
// (see grouplock.go): SQS hands out a message group's messages only in the order they
// were sent and none while one of them is in flight, so a conversation's turns never
// run at the same time or out of order. local-aws-sqs hands out any visible message.
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
	p.locks.reset()
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
	ctx := r.Context()
	if p.GroupLock {
		// A caller gone in the middle of a call (a process killed) must not leave the
		// emulator and the lock disagreeing: messages the emulator handed out are in
		// flight, as SQS counts them, whether or not anyone reads the answer.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if op == "AmazonSQS.ReceiveMessage" {
			body = askGroup(body)
		}
	}
	if p.GroupLock && (op == "AmazonSQS.SendMessage" || op == "AmazonSQS.SendMessageBatch") {
		// One send at a time, noted before the next: the order the proxy notes is then
		// the order the emulator keeps.
		p.locks.sendMu.Lock()
		defer p.locks.sendMu.Unlock()
	}
	if p.FixLongPoll && op == "AmazonSQS.ReceiveMessage" {
		status, header, out, err = p.receive(ctx, r, target, body)
	} else {
		status, header, out, err = p.forward(ctx, r, target, body)
	}
	if err != nil {
		drop(w)
		return
	}
	if p.GroupLock && status == 200 {
		switch op {
		case "AmazonSQS.ReceiveMessage":
			out = p.lockGroups(r, target, body, out)
		case "AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch":
			p.sent(op, body, out)
		default:
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

func (p *Proxy) receive(ctx context.Context, r *http.Request, target string, body []byte) (int, http.Header, []byte, error) {
	var in map[string]any
	if json.Unmarshal(body, &in) != nil {
		return p.forward(ctx, r, target, body)
	}
	want := 1
	if v, ok := in["MaxNumberOfMessages"].(float64); ok && v >= 1 {
		want = int(v)
	}
	call := func(n int, wait any) (int, http.Header, []byte, []json.RawMessage, error) {
		in["MaxNumberOfMessages"] = n
		in["WaitTimeSeconds"] = wait
		b, _ := json.Marshal(in)
		status, header, out, err := p.forward(ctx, r, target, b)
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
		visible := p.visible(ctx, r, target, in["QueueUrl"])
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
func (p *Proxy) visible(ctx context.Context, r *http.Request, target string, queueURL any) int {
	b, _ := json.Marshal(map[string]any{"QueueUrl": queueURL, "AttributeNames": []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	req := r.Clone(ctx)
	req.Header.Set("X-Amz-Target", "AmazonSQS.GetQueueAttributes")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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

// askVisibility asks the emulator for a queue's visibility timeout; 30s when it
// cannot tell.
func (p *Proxy) askVisibility(r *http.Request, target, queueURL string) time.Duration {
	b, _ := json.Marshal(map[string]any{"QueueUrl": queueURL, "AttributeNames": []string{"VisibilityTimeout"}})
	req := r.Clone(context.WithoutCancel(r.Context()))
	req.Header.Set("X-Amz-Target", "AmazonSQS.GetQueueAttributes")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if status, _, out, err := p.forward(ctx, req, target, b); err == nil && status == 200 {
		var res struct {
			Attributes map[string]string `json:"Attributes"`
		}
		if json.Unmarshal(out, &res) == nil {
			if n, err := strconv.Atoi(res.Attributes["VisibilityTimeout"]); err == nil {
				return time.Duration(n) * time.Second
			}
		}
	}
	return 30 * time.Second
}

// askGroup adds MessageGroupId to the attributes a receive asks for, under the
// deprecated name local-aws-sqs reads, so the lock sees each message's group whatever
// the caller asked.
func askGroup(body []byte) []byte {
	var in map[string]any
	if json.Unmarshal(body, &in) != nil {
		return body
	}
	names, _ := in["AttributeNames"].([]any)
	for _, n := range names {
		if n == "All" || n == "MessageGroupId" {
			return body
		}
	}
	in["AttributeNames"] = append(names, "MessageGroupId")
	b, err := json.Marshal(in)
	if err != nil {
		return body
	}
	return b
}
