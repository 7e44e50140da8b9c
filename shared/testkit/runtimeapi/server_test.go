package runtimeapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/testkit/runtimeapi"
)

const api = "/2018-06-01/runtime"

func start(t *testing.T, cfg runtimeapi.Config) *runtimeapi.Server {
	t.Helper()
	s, err := runtimeapi.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type result struct {
	response, errPayload []byte
	err                  error
}

func invokeAsync(s *runtimeapi.Server, ctx context.Context, event string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		r, e, err := s.Invoke(ctx, []byte(event))
		ch <- result{r, e, err}
	}()
	return ch
}

// next is the runtime's side: it takes the next invocation.
func next(t *testing.T, s *runtimeapi.Server) (http.Header, string) {
	t.Helper()
	res, err := http.Get("http://" + s.Addr() + api + "/invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("next: %d %s", res.StatusCode, body)
	}
	return res.Header, string(body)
}

func post(t *testing.T, s *runtimeapi.Server, path, body string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+s.Addr()+api+path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestInvokeResponseAndError(t *testing.T) {
	s := start(t, runtimeapi.Config{FunctionARN: "arn:aws:lambda:eu-west-1:111122223333:function:f", Timeout: 7 * time.Second})
	ctx := context.Background()

	before := time.Now()
	got := invokeAsync(s, ctx, `{"n":1}`)
	h, event := next(t, s)
	if event != `{"n":1}` {
		t.Errorf("event = %s, want the invoked one", event)
	}
	id := h.Get(runtimeapi.HeaderRequestID)
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("request id = %q, want a UUID", id)
	}
	if got := h.Get(runtimeapi.HeaderFunctionARN); got != "arn:aws:lambda:eu-west-1:111122223333:function:f" {
		t.Errorf("function ARN = %q", got)
	}
	if tr := h.Get(runtimeapi.HeaderTraceID); !strings.HasPrefix(tr, "Root=1-") || !strings.Contains(tr, ";Parent=") {
		t.Errorf("trace id = %q, want an X-Ray trace header", tr)
	}
	ms, err := strconv.ParseInt(h.Get(runtimeapi.HeaderDeadlineMs), 10, 64)
	if d := time.UnixMilli(ms).Sub(before); err != nil || d < 6*time.Second || d > 8*time.Second {
		t.Errorf("deadline = %s (%v) after the invocation, want the 7s timeout", d, err)
	}
	if code, body := post(t, s, "/invocation/"+id+"/response", `{"ok":true}`, nil); code != 202 || body != `{"status":"OK"}` {
		t.Errorf("response: %d %s, want 202", code, body)
	}
	if r := <-got; r.err != nil || string(r.response) != `{"ok":true}` || r.errPayload != nil {
		t.Errorf("Invoke = %s, %s, %v; want the response", r.response, r.errPayload, r.err)
	}
	if code, _ := post(t, s, "/invocation/"+id+"/response", `{}`, nil); code != 400 {
		t.Errorf("second answer: %d, want 400", code)
	}

	got = invokeAsync(s, ctx, `{"n":2}`)
	h, _ = next(t, s)
	payload := `{"errorMessage":"boom","errorType":"errorString"}`
	code, _ := post(t, s, "/invocation/"+h.Get(runtimeapi.HeaderRequestID)+"/error", payload,
		http.Header{runtimeapi.HeaderErrorType: {"errorString"}})
	if code != 202 {
		t.Errorf("error: %d, want 202", code)
	}
	if r := <-got; r.err != nil || r.response != nil || string(r.errPayload) != payload {
		t.Errorf("Invoke = %s, %s, %v; want the error payload", r.response, r.errPayload, r.err)
	}
	inv := s.Invocations()
	if len(inv) != 2 || inv[0].RequestID != id || inv[1].ErrorType != "errorString" || string(inv[1].Event) != `{"n":2}` {
		t.Errorf("invocations = %+v", inv)
	}
	if s.Nexts() != 2 {
		t.Errorf("%d requests for an invocation, want 2", s.Nexts())
	}
}

func TestUnknownRequestsAndInitErrors(t *testing.T) {
	s := start(t, runtimeapi.Config{})
	select {
	case <-s.Ready():
		t.Fatal("ready before any request for an invocation")
	default:
	}
	if code, body := post(t, s, "/invocation/nope/response", `{}`, nil); code != 400 || !strings.Contains(body, "InvalidRequestID") {
		t.Errorf("unknown id: %d %s, want 400 InvalidRequestID", code, body)
	}
	if code, _ := post(t, s, "/invocation/next", ``, nil); code != 404 && code != 405 {
		t.Errorf("POST next: %d, want 404 or 405", code)
	}
	code, _ := post(t, s, "/init/error", `{"errorMessage":"PARLEY_X is not set","errorType":"Runtime.ConfigError"}`,
		http.Header{runtimeapi.HeaderErrorType: {"Runtime.ConfigError"}})
	if code != 202 {
		t.Errorf("init error: %d, want 202", code)
	}
	ie := s.InitErrors()
	if len(ie) != 1 || ie[0].Type != "Runtime.ConfigError" || !bytes.Contains(ie[0].Payload, []byte("PARLEY_X")) {
		t.Errorf("init errors = %+v", ie)
	}
}

// An invocation Invoke gave up on before the runtime took it is never handed out, and
// Close releases a runtime waiting for work.
func TestAbandonedInvocationAndClose(t *testing.T) {
	s := start(t, runtimeapi.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.Invoke(ctx, []byte(`"stale"`)); err == nil {
		t.Fatal("Invoke with nobody taking it returned no error")
	}
	got := invokeAsync(s, context.Background(), `"fresh"`)
	h, event := next(t, s)
	if event != `"fresh"` {
		t.Fatalf("next handed out %s, want the live invocation", event)
	}
	post(t, s, "/invocation/"+h.Get(runtimeapi.HeaderRequestID)+"/response", `1`, nil)
	<-got

	waiting := make(chan int, 1)
	go func() {
		res, err := http.Get("http://" + s.Addr() + api + "/invocation/next")
		if err != nil {
			waiting <- -1
			return
		}
		res.Body.Close()
		waiting <- res.StatusCode
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case code := <-waiting:
		if code == 200 {
			t.Error("a closed server handed out an invocation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close left the runtime blocked on next")
	}
	if _, _, err := s.Invoke(context.Background(), []byte(`1`)); err != runtimeapi.ErrClosed {
		t.Errorf("Invoke after Close = %v, want ErrClosed", err)
	}
}

// The real thing: a function built with aws-lambda-go as the Parley functions are,
// run as a process against the server.
func TestRealRuntimeClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := runtimeapi.Build(ctx, "testdata/echo", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("invocations", func(t *testing.T) { testInvocations(ctx, t, bin) })
	t.Run("exit during init", func(t *testing.T) { testEarlyExit(ctx, t, bin) })
}

func testInvocations(ctx context.Context, t *testing.T, bin string) {
	f, err := runtimeapi.Run(bin, []string{"ECHO_VAR=from-env"}, runtimeapi.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	initTime, err := f.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if initTime <= 0 || initTime > 10*time.Second {
		t.Errorf("init took %s", initTime)
	}

	res, errPayload, err := f.Invoke(ctx, []byte(`{"say":"hi"}`))
	if err != nil || errPayload != nil {
		t.Fatalf("Invoke = %s, %s, %v", res, errPayload, err)
	}
	var a struct {
		Say, RequestID, FunctionARN, TraceID, Env string
		DeadlineMs                                int64
	}
	if err := json.Unmarshal(res, &a); err != nil {
		t.Fatalf("response %s: %v", res, err)
	}
	inv := f.Invocations()[0]
	if a.Say != "hi" || a.RequestID != inv.RequestID || a.TraceID != inv.TraceID || a.Env != "from-env" ||
		a.DeadlineMs != inv.Deadline.UnixMilli() || a.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:parley-test" {
		t.Errorf("the function saw %+v; the server sent %+v", a, inv)
	}

	_, errPayload, err = f.Invoke(ctx, []byte(`{"fail":true}`))
	if err != nil || !bytes.Contains(errPayload, []byte(`"errorMessage":"asked to fail"`)) {
		t.Errorf("failing invocation = %s, %v; want the error payload", errPayload, err)
	}
	// A panic is reported as an error, then the runtime exits.
	_, errPayload, err = f.Invoke(ctx, []byte(`{"panic":true}`))
	if err != nil || !bytes.Contains(errPayload, []byte("asked to panic")) {
		t.Errorf("panicking invocation = %s, %v; want the error payload", errPayload, err)
	}
	if code, err := f.Wait(ctx); err != nil || code == 0 {
		t.Errorf("after a panic: exit %d, %v; want a non-zero exit", code, err)
	}
	if _, _, err := f.Invoke(ctx, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Invoke after the process exited = %v, want an error saying so", err)
	}
}

func testEarlyExit(ctx context.Context, t *testing.T, bin string) {
	f, err := runtimeapi.Run(bin, []string{"ECHO_EXIT=1"}, runtimeapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if _, err := f.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "ECHO_EXIT is set") {
		t.Errorf("WaitReady = %v, want the exit with the process's output", err)
	}
	if code, err := f.Wait(ctx); code != 3 || err != nil {
		t.Errorf("exit = %d, %v; want 3", code, err)
	}
	if n := f.Nexts(); n != 0 {
		t.Errorf("%d requests for an invocation, want 0", n)
	}
}
