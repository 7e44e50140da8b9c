package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Version names this build of Parley in the default User-Agent. Set it at build time
// with -ldflags "-X github.com/parley-chat/parley/shared/webhook.Version=1.2.3".
var Version = "0.1.0"

const (
	// DefaultTimeout is the time one attempt may take when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout is the longest Config.Timeout allowed: a receiver that needs longer
	// should answer 2xx at once and work afterwards, and a long attempt holds up every
	// later message of its conversation.
	MaxTimeout = 30 * time.Second
	// MaxRetryAfter caps a receiver's Retry-After. It is also the longest delay SQS
	// can give a message through ChangeMessageVisibility.
	MaxRetryAfter = 12 * time.Hour

	// maxDrain is how much of a response body is read (and thrown away) so that the
	// connection can be reused; a receiver sending more costs a new connection.
	maxDrain = 64 << 10
	// maxAnswer is how much of a failed attempt's answer the attempt log keeps.
	maxAnswer = 1 << 10
)

// Class says what the caller should do with a message after one attempt.
type Class int

const (
	Delivered Class = iota // the receiver answered 2xx: done
	Retry                  // any other answer, a timeout or a network failure: try again later
	Permanent              // trying again cannot help: a request that cannot be sent at all
	Gone                   // 410: the receiver says the endpoint is gone for good
)

func (c Class) String() string {
	switch c {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Gone:
		return "gone"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Request is one webhook to send.
type Request struct {
	ID        string // webhook-id: stable across retries, so the receiver can de-duplicate
	Body      []byte // sent byte for byte
	InReplyTo string // the inbound messageId this bot message answers (Parley-In-Reply-To)
	Index     int    // 1-based position among that inbound message's bot messages (Parley-Reply-Index)
	Count     int    // how many bot messages that inbound message produced (Parley-Reply-Count)
}

// Outcome is the result of one attempt.
type Outcome struct {
	Class      Class
	Status     int           // HTTP status, 0 when no response came
	RetryAfter time.Duration // from a Retry-After header (seconds or HTTP-date), 0 if none; at most MaxRetryAfter
	// Reason is short and safe to log and to keep with a dead letter: "http 404",
	// "timeout after 10s", "connection refused", "redirect 301 not followed". It never
	// holds the response body, the URL or a secret.
	Reason   string
	Duration time.Duration // how long the attempt took, connect to body read
	// Answer is the first KiB of the response body, for the attempt log (not the log).
	Answer string
	// Location is where a redirect pointed — scheme, host and path, not the query —
	// so the operator can fix the URL.
	Location string
}

// Config configures a Sender.
type Config struct {
	URL       string           // absolute http(s) URL of the Response Endpoint
	Timeout   time.Duration    // one attempt: connect, response headers and body read; 0 means DefaultTimeout, at most MaxTimeout
	Signer    *Signer          // nil: no webhook-signature header
	UserAgent string           // default "Parley/<Version> (+https://github.com/parley-chat/parley)"
	Client    *http.Client     // optional, for tests; redirects are never followed, whatever its CheckRedirect
	Now       func() time.Time // optional clock for webhook-timestamp and Retry-After dates
}

// Sender POSTs webhooks to one Response Endpoint. It is safe for concurrent use, and
// reuses connections across calls.
type Sender struct {
	url     string
	timeout time.Duration
	signer  *Signer
	ua      string
	client  *http.Client
	now     func() time.Time
}

// errAttemptTimeout is the cause of an attempt's context expiring on its own timer,
// which tells it apart from the caller's context ending.
var errAttemptTimeout = errors.New("webhook attempt timed out")

// NewSender checks cfg and returns a Sender. Errors never quote the URL: it may carry
// a token in its query or user info.
func NewSender(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, errors.New("webhook sender: URL must be an absolute http:// or https:// URL")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout < 0 || timeout > MaxTimeout {
		return nil, fmt.Errorf("webhook sender: timeout %s: want more than 0 and at most %s", cfg.Timeout, MaxTimeout)
	}
	s := &Sender{url: u.String(), timeout: timeout, signer: cfg.Signer, ua: cfg.UserAgent, now: cfg.Now}
	if s.ua == "" {
		s.ua = "Parley/" + Version + " (+https://github.com/parley-chat/parley)"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.Client != nil {
		c := *cfg.Client
		s.client = &c
	} else {
		s.client = &http.Client{Transport: newTransport(timeout)}
	}
	s.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return s, nil
}

func newTransport(timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32, // conversations are delivered concurrently to one host
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // the body is thrown away: no point in asking for gzip
	}
}

// Send makes one attempt to deliver r and classifies the answer. It does not retry:
// the caller owns the schedule. It never panics and always returns an Outcome.
func (s *Sender) Send(ctx context.Context, r Request) (out Outcome) {
	start := time.Now()
	defer func() { out.Duration = time.Since(start) }()

	if s == nil || s.client == nil {
		return Outcome{Class: Permanent, Reason: "webhook sender not configured"}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	// Values Go's client would refuse to send: retrying cannot fix them.
	switch {
	case r.ID == "":
		return Outcome{Class: Permanent, Reason: "missing webhook-id"}
	case !validHeaderValue(r.ID):
		return Outcome{Class: Permanent, Reason: "webhook-id is not a valid header value"}
	case !validHeaderValue(r.InReplyTo):
		return Outcome{Class: Permanent, Reason: "in-reply-to is not a valid header value"}
	}

	attempt, cancel := context.WithTimeoutCause(ctx, s.timeout, errAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attempt, http.MethodPost, s.url, bytes.NewReader(r.Body))
	if err != nil {
		return Outcome{Class: Permanent, Reason: "cannot build the request"}
	}
	// The timestamp is this attempt's, and so is the signature over it: see the
	// package comment.
	ts := s.now()
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", s.ua)
	h.Set(HeaderID, r.ID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if sig := s.signer.Sign(r.ID, ts, r.Body); sig != "" {
		h.Set(HeaderSignature, sig)
	}
	if r.InReplyTo != "" {
		h.Set(HeaderInReplyTo, r.InReplyTo)
	}
	if r.Count > 0 {
		h.Set(HeaderReplyIndex, strconv.Itoa(r.Index))
		h.Set(HeaderReplyCount, strconv.Itoa(r.Count))
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return Outcome{Class: Retry, Reason: s.failure(ctx, attempt, err)}
	}
	// The answer is the status line; the body is kept only for the attempt log
	// (its first KiB) and drained so the connection goes back to the pool. A body that
	// stalls is cut off by the attempt's timeout and does not change the class: the
	// receiver has already said what it did.
	head := make([]byte, maxAnswer)
	n, _ := io.ReadFull(resp.Body, head)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()

	out.Status = resp.StatusCode
	out.Class, out.Reason = classify(resp.StatusCode)
	out.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	if out.Class != Delivered {
		out.Answer = strings.ToValidUTF8(string(head[:n]), "\uFFFD")
	}
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		out.Location = location(req.URL, resp.Header.Get("Location"))
	}
	return out
}

// classify maps a status code to a class. Only 2xx is success. Everything else is
// retried, as Svix and Stripe do: a receiver answering 404 or 401 for a minute during
// its own deploy must not lose messages to the dead-letter queue. 410 Gone is the
// receiver saying the endpoint is gone for good: the caller disables it rather than
// spend the budget.
func classify(status int) (Class, string) {
	switch {
	case status >= 200 && status <= 299:
		return Delivered, "http " + strconv.Itoa(status)
	case status >= 300 && status <= 399:
		return Retry, "redirect " + strconv.Itoa(status) + " not followed"
	case status == http.StatusGone:
		return Gone, "http 410"
	}
	return Retry, "http " + strconv.Itoa(status)
}

// location is where a redirect pointed, without the query or user info (they may
// hold a token), resolved against the request URL, at most 256 bytes.
func location(base *url.URL, loc string) string {
	if loc == "" {
		return ""
	}
	u, err := base.Parse(loc)
	if err != nil {
		return "(unreadable Location)"
	}
	s := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// failure names why no response came. Every such failure is worth a retry; only the
// reason differs. The error's own text is not used: *url.Error quotes the URL, and
// some transport errors quote bytes of the response.
func (s *Sender) failure(parent, attempt context.Context, err error) string {
	timeout := "timeout after " + s.timeout.String()
	if errors.Is(context.Cause(attempt), errAttemptTimeout) {
		return timeout
	}
	if pe := parent.Err(); pe != nil {
		if errors.Is(pe, context.DeadlineExceeded) {
			return "deadline exceeded" // the caller's, e.g. the Lambda's
		}
		return "cancelled"
	}
	var (
		dnsErr     *net.DNSError
		verifyErr  *tls.CertificateVerificationError
		hostErr    x509.HostnameError
		authErr    x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		netErr     net.Error
		opErr      *net.OpError
	)
	switch {
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "dns: no such host"
		case dnsErr.IsTimeout:
			return "dns: timeout"
		}
		return "dns lookup failed"
	// crypto/x509 returns its errors as values, wrapped by crypto/tls.
	case errors.As(err, &hostErr):
		return "tls: certificate is not valid for this host"
	case errors.As(err, &authErr):
		return "tls: certificate signed by an unknown authority"
	case errors.As(err, &invalidErr):
		if invalidErr.Reason == x509.Expired {
			return "tls: certificate expired or not yet valid"
		}
		return "tls: invalid certificate"
	case errors.As(err, &verifyErr):
		return "tls: certificate verification failed"
	case errors.Is(err, http.ErrSchemeMismatch):
		return "tls: server answered plain HTTP"
	case errors.As(err, &recordErr):
		return "tls: server did not answer with TLS"
	case errors.As(err, &alertErr):
		return "tls: remote alert: " + strings.TrimPrefix(alertErr.Error(), "tls: ")
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &netErr) && netErr.Timeout():
		return timeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before a response"
	case strings.Contains(err.Error(), "malformed HTTP"):
		return "malformed HTTP response"
	case errors.As(err, &opErr) && opErr.Op != "":
		return "network error (" + opErr.Op + ")"
	}
	return "network error"
}

// parseRetryAfter reads a Retry-After value, delay-seconds or HTTP-date (RFC 9110
// §10.2.3), as a delay from now. Anything unreadable or in the past is 0; anything
// longer than MaxRetryAfter is MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n >= int64(MaxRetryAfter/time.Second) { // err: too many digits to fit
			return MaxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	// HTTP-dates have whole seconds: round up so the retry is never early.
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return min(d, MaxRetryAfter)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validHeaderValue reports whether Go's client would send v as a header value:
// no control characters other than tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}
