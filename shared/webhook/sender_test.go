package webhook_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/shared/testkit/proc"
	"github.com/parley-chat/parley/shared/webhook"
)

// A fixed clock for webhook-timestamp, so headers and Retry-After dates are known.
var clock = time.Unix(1_750_000_000, 0)

func fixedNow() time.Time { return clock }

type received struct {
	header http.Header
	body   []byte
}

// receiver records every request and answers with respond.
type receiver struct {
	mu   sync.Mutex
	reqs []received
}

func (rc *receiver) record(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body})
	rc.mu.Unlock()
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newSender(t *testing.T, cfg webhook.Config) *webhook.Sender {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	s, err := webhook.NewSender(cfg)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s
}

func TestSendClassifiesStatus(t *testing.T) {
	tests := []struct {
		status         int
		retryAfter     string
		wantClass      webhook.Class
		wantReason     string
		wantRetryAfter time.Duration
	}{
		{status: 200, wantClass: webhook.Delivered, wantReason: "http 200"},
		{status: 202, wantClass: webhook.Delivered, wantReason: "http 202"},
		{status: 204, wantClass: webhook.Delivered, wantReason: "http 204"},
		{status: 500, wantClass: webhook.Retry, wantReason: "http 500"},
		{status: 502, wantClass: webhook.Retry, wantReason: "http 502"},
		{status: 503, retryAfter: "120", wantClass: webhook.Retry, wantReason: "http 503", wantRetryAfter: 2 * time.Minute},
		{status: 599, wantClass: webhook.Retry, wantReason: "http 599"},
		{status: 408, wantClass: webhook.Retry, wantReason: "http 408"},
		{status: 429, retryAfter: "7", wantClass: webhook.Retry, wantReason: "http 429", wantRetryAfter: 7 * time.Second},
		{status: 429, retryAfter: clock.Add(90 * time.Second).UTC().Format(http.TimeFormat), wantClass: webhook.Retry, wantReason: "http 429", wantRetryAfter: 90 * time.Second},
		{status: 429, retryAfter: clock.Add(-time.Hour).UTC().Format(http.TimeFormat), wantClass: webhook.Retry, wantReason: "http 429"},
		{status: 429, retryAfter: "86400", wantClass: webhook.Retry, wantReason: "http 429", wantRetryAfter: 12 * time.Hour},
		{status: 429, retryAfter: "soon", wantClass: webhook.Retry, wantReason: "http 429"},
		{status: 429, wantClass: webhook.Retry, wantReason: "http 429"},
		// Every other answer is retried, as Svix and Stripe do; 410 says the endpoint is gone.
		{status: 400, wantClass: webhook.Retry, wantReason: "http 400"},
		{status: 401, wantClass: webhook.Retry, wantReason: "http 401"},
		{status: 404, wantClass: webhook.Retry, wantReason: "http 404"},
		{status: 410, wantClass: webhook.Gone, wantReason: "http 410"},
		{status: 451, wantClass: webhook.Retry, wantReason: "http 451"},
		{status: 304, wantClass: webhook.Retry, wantReason: "redirect 304 not followed"},
		{status: 600, wantClass: webhook.Retry, wantReason: "http 600"}, // not 2xx, not 3xx/4xx: the contract retries it
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+" "+tt.retryAfter, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, `{"error":"secret detail the reason must not carry"}`)
			})
			out := newSender(t, webhook.Config{URL: srv.URL}).Send(context.Background(), webhook.Request{ID: "msg_1", Body: []byte(`{}`)})
			if out.Class != tt.wantClass {
				t.Errorf("class: got %v, want %v", out.Class, tt.wantClass)
			}
			if out.Status != tt.status {
				t.Errorf("status: got %d, want %d", out.Status, tt.status)
			}
			if out.Reason != tt.wantReason {
				t.Errorf("reason: got %q, want %q", out.Reason, tt.wantReason)
			}
			if out.RetryAfter != tt.wantRetryAfter {
				t.Errorf("retry after: got %v, want %v", out.RetryAfter, tt.wantRetryAfter)
			}
			if out.Duration <= 0 {
				t.Errorf("duration: got %v, want > 0", out.Duration)
			}
			wantAnswer := `{"error":"secret detail the reason must not carry"}`
			if tt.wantClass == webhook.Delivered || tt.status == 304 {
				wantAnswer = "" // nothing to log; a 304 has no body
			}
			if out.Answer != wantAnswer {
				t.Errorf("answer: got %q, want %q", out.Answer, wantAnswer)
			}
		})
	}
}

// The attempt log keeps the first KiB of a failed answer, valid UTF-8.
func TestSendKeepsTheFirstKiBOfAFailedAnswer(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, strings.Repeat("é", 2000))
	})
	out := newSender(t, webhook.Config{URL: srv.URL}).Send(context.Background(), webhook.Request{ID: "msg_1"})
	if len(out.Answer) < 1000 || len(out.Answer) > 1024+3 || !utf8.ValidString(out.Answer) {
		t.Errorf("answer of %d bytes (valid UTF-8: %v), want about the first KiB", len(out.Answer), utf8.ValidString(out.Answer))
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var targetHits atomic.Int32
			target := serve(t, func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) })
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/elsewhere", status)
			})
			out := newSender(t, webhook.Config{URL: srv.URL}).Send(context.Background(), webhook.Request{ID: "msg_1", Body: []byte(`{}`)})
			if out.Class != webhook.Retry || out.Status != status {
				t.Errorf("got %v %d, want retry %d", out.Class, out.Status, status)
			}
			if out.Location != target.URL+"/elsewhere" {
				t.Errorf("location: got %q, want %q", out.Location, target.URL+"/elsewhere")
			}
			if want := "redirect " + strconv.Itoa(status) + " not followed"; out.Reason != want {
				t.Errorf("reason: got %q, want %q", out.Reason, want)
			}
			if n := targetHits.Load(); n != 0 {
				t.Errorf("redirect target: got %d requests, want 0", n)
			}
		})
	}

	// A caller's own client must not bring redirects back.
	var targetHits atomic.Int32
	target := serve(t, func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) })
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL, http.StatusFound) })
	out := newSender(t, webhook.Config{URL: srv.URL, Client: &http.Client{}}).Send(context.Background(), webhook.Request{ID: "msg_1"})
	if out.Class != webhook.Retry || targetHits.Load() != 0 {
		t.Errorf("with Config.Client: got %v and %d target requests, want retry and 0", out.Class, targetHits.Load())
	}
	// Where it pointed is told without a query or user info, which may hold a token.
	leaky := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://user:pw@other.example/new/path?token=s3cret")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
	if out := newSender(t, webhook.Config{URL: leaky.URL}).Send(context.Background(), webhook.Request{ID: "msg_1"}); out.Location != "https://other.example/new/path" {
		t.Errorf("location = %q, want https://other.example/new/path", out.Location)
	}
}

func TestSendTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name       string
		handler    func(release <-chan struct{}) http.HandlerFunc
		wantClass  webhook.Class
		wantStatus int
		wantReason string
	}{
		{
			name: "no response headers",
			handler: func(release <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
			},
			wantClass: webhook.Retry, wantReason: "timeout after 200ms",
		},
		{
			// The receiver has said 200: a body that never ends is cut off by the
			// timeout but does not turn the delivery into a failure.
			name: "body never ends",
			handler: func(release <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusOK)
					w.Write([]byte("partial"))
					w.(http.Flusher).Flush()
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
			},
			wantClass: webhook.Delivered, wantStatus: 200, wantReason: "http 200",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := serve(t, tt.handler(release))
			t.Cleanup(func() { close(release) }) // runs before srv.Close

			out := newSender(t, webhook.Config{URL: srv.URL, Timeout: timeout}).Send(context.Background(), webhook.Request{ID: "msg_1", Body: []byte(`{}`)})
			if out.Class != tt.wantClass || out.Status != tt.wantStatus || out.Reason != tt.wantReason {
				t.Errorf("got %v %d %q, want %v %d %q", out.Class, out.Status, out.Reason, tt.wantClass, tt.wantStatus, tt.wantReason)
			}
			if out.Duration < timeout || out.Duration > timeout+time.Second {
				t.Errorf("duration: got %v, want about %v", out.Duration, timeout)
			}
		})
	}
}

func TestSendCallerContext(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	s := newSender(t, webhook.Config{URL: srv.URL, Timeout: 5 * time.Second})

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	out := s.Send(cancelled, webhook.Request{ID: "msg_1"})
	if out.Class != webhook.Retry || out.Reason != "cancelled" {
		t.Errorf("cancelled before: got %v %q, want retry %q", out.Class, out.Reason, "cancelled")
	}

	cancelling, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	out = s.Send(cancelling, webhook.Request{ID: "msg_1"})
	if out.Class != webhook.Retry || out.Reason != "cancelled" || out.Duration > 2*time.Second {
		t.Errorf("cancelled during: got %v %q after %v, want retry %q at once", out.Class, out.Reason, out.Duration, "cancelled")
	}

	// The caller's deadline (a Lambda's, say) is shorter than the attempt's timeout.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	out = s.Send(short, webhook.Request{ID: "msg_1"})
	if out.Class != webhook.Retry || out.Reason != "deadline exceeded" {
		t.Errorf("caller deadline: got %v %q, want retry %q", out.Class, out.Reason, "deadline exceeded")
	}
}

func TestSendWithoutResponse(t *testing.T) {
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	closedPort := "http://" + addr + "/hook"

	hangUp := serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	garbage := serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err == nil {
			buf.WriteString("SECRET-GARBAGE not http\r\n\r\n")
			buf.Flush()
			conn.Close()
		}
	})
	selfSigned := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	selfSigned.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	selfSigned.StartTLS()
	t.Cleanup(selfSigned.Close)
	plain := serve(t, func(w http.ResponseWriter, r *http.Request) {})

	tests := []struct {
		name       string
		url        string
		wantReason string
	}{
		{"closed port", closedPort, "connection refused"},
		{"hang up", hangUp.URL, "connection closed before a response"},
		{"not HTTP", garbage.URL, "malformed HTTP response"},
		{"untrusted certificate", selfSigned.URL, "tls: certificate signed by an unknown authority"},
		{"https to a plain port", strings.Replace(plain.URL, "http:", "https:", 1), "tls: server answered plain HTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := newSender(t, webhook.Config{URL: tt.url, Timeout: 5 * time.Second}).Send(context.Background(), webhook.Request{ID: "msg_1", Body: []byte(`{}`)})
			if out.Class != webhook.Retry || out.Status != 0 || out.Reason != tt.wantReason {
				t.Errorf("got %v %d %q, want retry 0 %q", out.Class, out.Status, out.Reason, tt.wantReason)
			}
			if strings.Contains(out.Reason, "127.0.0.1") || strings.Contains(out.Reason, "SECRET") {
				t.Errorf("reason %q quotes the URL or the response", out.Reason)
			}
		})
	}
}

func TestSendHeadersAndBody(t *testing.T) {
	// Not canonical JSON on purpose: odd spacing, escapes, non-ASCII, a trailing
	// newline. The receiver must get these bytes and no others.
	body := []byte("{\"type\" : \"text\",\"payload\":{\"text\":\"h\\u00e9llo \u2603 \\\"q\\\"\"},  \"conversationId\":\"c1\"}\n")
	rc := &receiver{}
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		rc.record(r)
		w.WriteHeader(http.StatusNoContent)
	})
	tests := []struct {
		name string
		cfg  webhook.Config
		req  webhook.Request
		want map[string]string // "" means absent
	}{
		{
			name: "all headers",
			cfg:  webhook.Config{URL: srv.URL + "/hook?token=abc"},
			req:  webhook.Request{ID: "msg_abc", Body: body, InReplyTo: "user-msg-42", Index: 2, Count: 3},
			want: map[string]string{
				"Content-Type":       "application/json",
				"User-Agent":         "Parley/" + webhook.Version + " (+https://github.com/parley-chat/parley)",
				"webhook-id":         "msg_abc",
				"webhook-timestamp":  strconv.FormatInt(clock.Unix(), 10),
				"webhook-signature":  "",
				"Parley-In-Reply-To": "user-msg-42",
				"Parley-Reply-Index": "2",
				"Parley-Reply-Count": "3",
				"Idempotency-Key":    "",
			},
		},
		{
			name: "no reply context, own user agent",
			cfg:  webhook.Config{URL: srv.URL, UserAgent: "test-agent/1"},
			req:  webhook.Request{ID: "msg_def", Body: body},
			want: map[string]string{
				"User-Agent":         "test-agent/1",
				"webhook-id":         "msg_def",
				"Parley-In-Reply-To": "",
				"Parley-Reply-Index": "",
				"Parley-Reply-Count": "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rc.all())
			out := newSender(t, tt.cfg).Send(context.Background(), tt.req)
			if out.Class != webhook.Delivered || out.Status != 204 {
				t.Fatalf("got %v %d %q, want delivered 204", out.Class, out.Status, out.Reason)
			}
			reqs := rc.all()
			if len(reqs) != before+1 {
				t.Fatalf("requests: got %d, want 1", len(reqs)-before)
			}
			got := reqs[len(reqs)-1]
			if !bytes.Equal(got.body, tt.req.Body) {
				t.Errorf("body: got %q, want %q", got.body, tt.req.Body)
			}
			for name, want := range tt.want {
				if v := got.header.Get(name); v != want {
					t.Errorf("%s: got %q, want %q", name, v, want)
				}
			}
		})
	}
}

func TestSendSignsEveryAttempt(t *testing.T) {
	rc := &receiver{}
	attempts := 0
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		rc.record(r)
		attempts++
		if attempts == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	signer, err := webhook.NewSigner(vectorSecret + " " + otherSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := clock
	s := newSender(t, webhook.Config{URL: srv.URL, Signer: signer, Now: func() time.Time { return now }})
	req := webhook.Request{ID: "msg_retried", Body: []byte(`{"type":"text","payload":{"text":"hi"}}`)}

	first := s.Send(context.Background(), req)
	now = now.Add(10 * time.Minute) // the retry comes long after the first attempt's window
	second := s.Send(context.Background(), req)
	if first.Class != webhook.Retry || second.Class != webhook.Delivered {
		t.Fatalf("got %v then %v, want retry then delivered", first.Class, second.Class)
	}

	reqs := rc.all()
	if len(reqs) != 2 {
		t.Fatalf("requests: got %d, want 2", len(reqs))
	}
	for i, got := range reqs {
		wantTS := strconv.FormatInt(clock.Add(time.Duration(i)*10*time.Minute).Unix(), 10)
		if ts := got.header.Get("webhook-timestamp"); ts != wantTS {
			t.Errorf("attempt %d: webhook-timestamp got %s, want %s (this attempt's)", i+1, ts, wantTS)
		}
		if id := got.header.Get("webhook-id"); id != req.ID {
			t.Errorf("attempt %d: webhook-id got %q, want %q", i+1, id, req.ID)
		}
		if n := len(strings.Fields(got.header.Get("webhook-signature"))); n != 2 {
			t.Errorf("attempt %d: got %d signatures, want 2", i+1, n)
		}
		for j, secret := range []string{vectorSecret, otherSecret} {
			if !specVerify(t, secret, got.header, got.body) {
				t.Errorf("attempt %d: independent verifier rejects secret %d", i+1, j+1)
			}
		}
		tampered := bytes.Replace(got.body, []byte("hi"), []byte("ho"), 1)
		if specVerify(t, vectorSecret, got.header, tampered) {
			t.Errorf("attempt %d: independent verifier accepts a tampered body", i+1)
		}
		receivedAt := clock.Add(time.Duration(i)*10*time.Minute + time.Second)
		if err := webhook.Verify(mustSecrets(t, otherSecret), got.header, got.body, 5*time.Minute, receivedAt); err != nil {
			t.Errorf("attempt %d: Verify: %v", i+1, err)
		}
		if err := webhook.Verify(mustSecrets(t, otherSecret), got.header, tampered, 5*time.Minute, receivedAt); err == nil {
			t.Errorf("attempt %d: Verify accepts a tampered body", i+1)
		}
	}
	if reqs[0].header.Get("webhook-signature") == reqs[1].header.Get("webhook-signature") {
		t.Error("the retry reused the first attempt's signature")
	}
}

func TestSendReusesConnections(t *testing.T) {
	var conns atomic.Int32
	size := 1 << 10
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(bytes.Repeat([]byte("x"), size))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	s := newSender(t, webhook.Config{URL: srv.URL})
	for i := range 3 {
		if out := s.Send(context.Background(), webhook.Request{ID: "msg_" + strconv.Itoa(i), Body: []byte(`{}`)}); out.Class != webhook.Delivered {
			t.Fatalf("send %d: got %v %q", i, out.Class, out.Reason)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("connections for 3 sends with small answers: got %d, want 1", n)
	}

	// A large answer is cut short, not read to the end, and still counts.
	size = 4 << 20
	if out := s.Send(context.Background(), webhook.Request{ID: "msg_big", Body: []byte(`{}`)}); out.Class != webhook.Delivered {
		t.Errorf("large answer: got %v %q, want delivered", out.Class, out.Reason)
	}
}

func TestSendUnsendable(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request sent: %s", r.Header.Get("webhook-id"))
	})
	s := newSender(t, webhook.Config{URL: srv.URL})
	tests := []struct {
		name string
		req  webhook.Request
	}{
		{"no id", webhook.Request{Body: []byte(`{}`)}},
		{"id with a newline", webhook.Request{ID: "msg_1\r\nX-Injected: 1"}},
		{"in-reply-to with a control character", webhook.Request{ID: "msg_1", InReplyTo: "m\x00", Count: 1, Index: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := s.Send(context.Background(), tt.req)
			if out.Class != webhook.Permanent || out.Status != 0 || out.Reason == "" {
				t.Errorf("got %v %d %q, want permanent 0 with a reason", out.Class, out.Status, out.Reason)
			}
		})
	}

	var nilSender *webhook.Sender
	if out := nilSender.Send(context.Background(), webhook.Request{ID: "x"}); out.Class != webhook.Permanent {
		t.Errorf("nil Sender: got %v, want permanent", out.Class)
	}
	var nilCtx context.Context
	ok := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	if out := newSender(t, webhook.Config{URL: ok.URL}).Send(nilCtx, webhook.Request{ID: "x"}); out.Class != webhook.Delivered {
		t.Errorf("nil context: got %v %q, want delivered", out.Class, out.Reason)
	}
}

func TestNewSender(t *testing.T) {
	tests := []struct {
		name    string
		cfg     webhook.Config
		wantErr bool
	}{
		{"http", webhook.Config{URL: "http://localhost:8080/hook"}, false},
		{"https with query", webhook.Config{URL: "https://example.com/hook?token=x"}, false},
		{"upper-case scheme", webhook.Config{URL: "HTTPS://example.com/hook"}, false},
		{"longest timeout", webhook.Config{URL: "https://example.com", Timeout: 30 * time.Second}, false},
		{"empty", webhook.Config{}, true},
		{"relative", webhook.Config{URL: "/hook"}, true},
		{"no host", webhook.Config{URL: "http:///hook"}, true},
		{"port only", webhook.Config{URL: "http://:8080/hook"}, true},
		{"ftp", webhook.Config{URL: "ftp://example.com/hook"}, true},
		{"opaque", webhook.Config{URL: "http:example.com"}, true},
		{"unparsable", webhook.Config{URL: "http://exa mple.com/%zz"}, true},
		{"negative timeout", webhook.Config{URL: "https://example.com", Timeout: -time.Second}, true},
		{"timeout too long", webhook.Config{URL: "https://example.com", Timeout: 31 * time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := webhook.NewSender(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && s == nil {
				t.Fatal("got a nil Sender and no error")
			}
			if err != nil && strings.Contains(err.Error(), "example.com") {
				t.Errorf("error %q quotes the URL", err)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[webhook.Class]string{webhook.Delivered: "delivered", webhook.Retry: "retry", webhook.Permanent: "permanent", webhook.Gone: "gone", 7: "Class(7)"} {
		if got := c.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestSendDNSFailure(t *testing.T) {
	// .invalid never resolves (RFC 6761). Without a reachable resolver the lookup
	// may time out instead; either way it is a retry and says why.
	out := newSender(t, webhook.Config{URL: "http://parley-test.invalid/hook", Timeout: 3 * time.Second}).Send(context.Background(), webhook.Request{ID: "msg_1"})
	if out.Class != webhook.Retry || out.Status != 0 {
		t.Errorf("got %v %d, want retry 0", out.Class, out.Status)
	}
	if !strings.HasPrefix(out.Reason, "dns") && !strings.HasPrefix(out.Reason, "timeout") {
		t.Errorf("reason: got %q, want a DNS failure", out.Reason)
	}
}
