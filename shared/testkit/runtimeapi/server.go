// Package runtimeapi is a loopback implementation of the AWS Lambda Runtime API
// (version 2018-06-01), for tests that run a function's real bootstrap binary the way
// Lambda does — what `sam local invoke` does, without Docker or an AWS account.
//
// A Server plays Lambda's side: it hands each event to the runtime's
// GET /runtime/invocation/next with the request id, deadline, function ARN and trace
// id headers, and waits for POST /runtime/invocation/{id}/response or /error. It also
// records POST /runtime/init/error, and when the runtime first asked for work, so a
// test can measure a cold start. Run starts a bootstrap process against its own
// Server; Build compiles one as the Lambda functions are built.
//
// Only what a custom runtime uses is served: no extensions, telemetry or streaming
// responses.
package runtimeapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Runtime API header names.
const (
	HeaderRequestID   = "Lambda-Runtime-Aws-Request-Id"
	HeaderDeadlineMs  = "Lambda-Runtime-Deadline-Ms"
	HeaderFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	HeaderTraceID     = "Lambda-Runtime-Trace-Id"
	HeaderErrorType   = "Lambda-Runtime-Function-Error-Type"
	// TrailerErrorBody carries, base64-encoded, the error of a response whose body
	// failed half-way; aws-lambda-go sends it with the error type as trailers.
	TrailerErrorBody = "Lambda-Runtime-Function-Error-Body"
)

// MaxResponseBytes is Lambda's limit on a synchronous invocation's response.
const MaxResponseBytes = 6 << 20

// ErrClosed is returned by Invoke once the server is closed.
var ErrClosed = errors.New("runtime API server closed")

// Config sets what Lambda would tell the runtime; zero values take the defaults.
type Config struct {
	// FunctionARN is sent as Lambda-Runtime-Invoked-Function-Arn; default
	// arn:aws:lambda:us-east-1:123456789012:function:parley-test.
	FunctionARN string
	// Timeout is the function's timeout: each invocation's deadline is its start plus
	// Timeout, and Invoke gives up a second after it, as Lambda would. Default 30s.
	Timeout time.Duration
}

// Invocation is one finished (or abandoned) invocation, as the server saw it.
type Invocation struct {
	RequestID string
	TraceID   string
	Deadline  time.Time
	Event     []byte
	// Response is the body of /response; ErrorPayload and ErrorType those of /error
	// (or of a response that failed half-way). Both are nil when the runtime did not
	// answer.
	Response     []byte
	ErrorPayload []byte
	ErrorType    string
}

// InitError is a POST to /runtime/init/error.
type InitError struct {
	Type    string // the Lambda-Runtime-Function-Error-Type header
	Payload []byte
}

// Server is a running Runtime API. It is safe for concurrent use.
type Server struct {
	cfg     Config
	addr    string
	srv     *http.Server
	pending chan *call
	closed  chan struct{}
	once    sync.Once
	served  chan struct{} // closed when srv.Serve returns

	mu         sync.Mutex
	inflight   map[string]*call
	log        []Invocation
	initErrors []InitError
	nexts      int
	firstNext  time.Time
	ready      chan struct{} // closed at the first /next
}

// call is an invocation between Invoke and its answer.
type call struct {
	inv       Invocation
	abandoned chan struct{} // closed when Invoke stopped waiting
	done      chan struct{} // closed when the answer is in inv
	answered  bool          // guarded by Server.mu
}

// Start starts a Server on 127.0.0.1 on a free port.
func Start(cfg Config) (*Server, error) {
	if cfg.FunctionARN == "" {
		cfg.FunctionARN = "arn:aws:lambda:us-east-1:123456789012:function:parley-test"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime API: listen: %w", err)
	}
	s := &Server{
		cfg: cfg, addr: ln.Addr().String(),
		pending: make(chan *call, 64), closed: make(chan struct{}), served: make(chan struct{}),
		inflight: map[string]*call{}, ready: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", s.answer(false))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", s.answer(true))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "NotFound", "no such Runtime API resource: "+r.Method+" "+r.URL.Path)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		_ = s.srv.Serve(ln)
		close(s.served)
	}()
	return s, nil
}

// Addr is host:port, the value of AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.addr }

// Invoke hands event to the runtime and waits for its answer: the response body, or
// the error payload the function reported (then response is nil). err is set when
// there is no answer: ctx ended, the invocation timed out, or the server was closed.
func (s *Server) Invoke(ctx context.Context, event []byte) (response []byte, errorPayload []byte, err error) {
	c := &call{
		inv: Invocation{
			RequestID: newRequestID(), TraceID: newTraceID(time.Now()),
			Deadline: time.Now().Add(s.cfg.Timeout), Event: append([]byte(nil), event...),
		},
		abandoned: make(chan struct{}), done: make(chan struct{}),
	}
	select {
	case s.pending <- c:
	case <-s.closed:
		return nil, nil, ErrClosed
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	timeout := time.NewTimer(time.Until(c.inv.Deadline) + time.Second)
	defer timeout.Stop()
	select {
	case <-c.done:
		return c.inv.Response, c.inv.ErrorPayload, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout.C:
		err = fmt.Errorf("invocation %s timed out after %s", c.inv.RequestID, s.cfg.Timeout)
	case <-s.closed:
		err = ErrClosed
	}
	s.abandon(c)
	return nil, nil, err
}

// abandon stops waiting for c: a runtime that has not taken it yet skips it, and a
// late answer is accepted and recorded but reaches no one.
func (s *Server) abandon(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-c.done:
		return // answered in the meantime: it is in the log already
	default:
	}
	close(c.abandoned)
	delete(s.inflight, c.inv.RequestID)
	s.log = append(s.log, c.inv)
}

// Invocations returns the invocations so far, in the order they ended.
func (s *Server) Invocations() []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Invocation(nil), s.log...)
}

// InitErrors returns what the runtime posted to /runtime/init/error.
func (s *Server) InitErrors() []InitError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]InitError(nil), s.initErrors...)
}

// Ready is closed when the runtime first asks for an invocation: its init is over.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// FirstNext is when the runtime first asked for an invocation; zero before.
func (s *Server) FirstNext() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstNext
}

// Nexts counts the runtime's requests for an invocation.
func (s *Server) Nexts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nexts
}

// Close stops the server: waiting Invokes return ErrClosed and a runtime blocked on
// /next gets an error, as when Lambda shuts an execution environment down.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.closed) })
	err := s.srv.Close()
	<-s.served
	return err
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.nexts++
	if s.firstNext.IsZero() {
		s.firstNext = time.Now()
		close(s.ready)
	}
	s.mu.Unlock()
	for {
		var c *call
		select {
		case c = <-s.pending:
		case <-s.closed:
			apiError(w, http.StatusInternalServerError, "ServiceException", "the runtime API is shutting down")
			return
		case <-r.Context().Done():
			return
		}
		s.mu.Lock()
		select {
		case <-c.abandoned:
			s.mu.Unlock()
			continue // Invoke stopped waiting before the runtime took it
		default:
		}
		s.inflight[c.inv.RequestID] = c
		s.mu.Unlock()
		h := w.Header()
		h.Set(HeaderRequestID, c.inv.RequestID)
		h.Set(HeaderDeadlineMs, strconv.FormatInt(c.inv.Deadline.UnixMilli(), 10))
		h.Set(HeaderFunctionARN, s.cfg.FunctionARN)
		h.Set(HeaderTraceID, c.inv.TraceID)
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(c.inv.Event)
		return
	}
}

func (s *Server) answer(isError bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s.mu.Lock()
		c, ok := s.inflight[id]
		s.mu.Unlock()
		if !ok {
			apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in flight with id "+id)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes+1))
		if err != nil {
			apiError(w, http.StatusBadRequest, "InvalidRequest", "read body: "+err.Error())
			return
		}
		if len(body) > MaxResponseBytes {
			apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("the response is over %d bytes", MaxResponseBytes))
			return
		}
		errType := r.Header.Get(HeaderErrorType)
		if t := r.Trailer.Get(HeaderErrorType); !isError && t != "" {
			// The response body failed half-way: Lambda reports it as an error.
			isError, errType, body = true, t, decodeTrailerBody(r.Trailer.Get(TrailerErrorBody))
		}
		s.mu.Lock()
		if c.answered {
			s.mu.Unlock()
			apiError(w, http.StatusBadRequest, "InvalidStateTransition", "invocation "+id+" was already answered")
			return
		}
		c.answered = true
		if isError {
			c.inv.ErrorPayload, c.inv.ErrorType = body, errType
			if c.inv.ErrorPayload == nil {
				c.inv.ErrorPayload = []byte{}
			}
		} else {
			c.inv.Response = body
			if c.inv.Response == nil {
				c.inv.Response = []byte{}
			}
		}
		delete(s.inflight, id)
		select {
		case <-c.abandoned: // Invoke gave up and logged it; keep the late answer too
			for i := range s.log {
				if s.log[i].RequestID == id {
					s.log[i] = c.inv
				}
			}
		default:
			s.log = append(s.log, c.inv)
			close(c.done)
		}
		s.mu.Unlock()
		accepted(w)
	}
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseBytes))
	if err != nil {
		apiError(w, http.StatusBadRequest, "InvalidRequest", "read body: "+err.Error())
		return
	}
	s.mu.Lock()
	s.initErrors = append(s.initErrors, InitError{Type: r.Header.Get(HeaderErrorType), Payload: body})
	s.mu.Unlock()
	accepted(w)
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func apiError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"errorType":%q,"errorMessage":%q}`, errType, msg)
}

// newRequestID is a random UUID (version 4), as Lambda's request ids are.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newTraceID is an X-Ray trace header as Lambda sends it.
func newTraceID(now time.Time) string {
	var root [12]byte
	var parent [8]byte
	_, _ = rand.Read(root[:])
	_, _ = rand.Read(parent[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0;Lineage=1:%s:0",
		now.Unix(), hex.EncodeToString(root[:]), hex.EncodeToString(parent[:]), hex.EncodeToString(parent[:4]))
}

func decodeTrailerBody(s string) []byte {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b
	}
	return []byte(s)
}
