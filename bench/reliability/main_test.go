package reliability

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/proc"
)

// summaries are the scenarios' one-line results, printed together at the end.
var (
	summaryMu sync.Mutex
	summaries []string
	builtDir  string // where TestMain built the parley CLI, when a scenario needs it
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopAll()
	if len(summaries) > 0 {
		fmt.Println("\nreliability summary (" + os.Getenv("PARLEY_RELIABILITY") + "):")
		for _, s := range summaries {
			fmt.Println("  " + s)
		}
	}
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// mode is the size of a run.
type mode struct {
	Short bool
	Name  string
}

// scenario returns the run's mode. The scenarios build only with the reliability tag
// (`make test-reliability`), so plain `go test ./...` neither runs nor skips them; with
// the tag, PARLEY_RELIABILITY must say the size.
func scenario(t *testing.T) mode {
	t.Helper()
	switch v := os.Getenv("PARLEY_RELIABILITY"); v {
	case "short", "full":
		return mode{Short: v == "short", Name: v}
	default:
		t.Fatalf("PARLEY_RELIABILITY=%q: want short or full", v)
	}
	return mode{}
}

// pick is short's value in a short run, full's otherwise.
func pick[T any](m mode, short, full T) T {
	if m.Short {
		return short
	}
	return full
}

// summarize prints a scenario's result now and again at the end of the run.
func summarize(t *testing.T, format string, args ...any) {
	t.Helper()
	line := t.Name() + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	summaryMu.Lock()
	summaries = append(summaries, line)
	summaryMu.Unlock()
}

// logDir is where a scenario's processes write their logs: a temporary folder, or one
// under PARLEY_RELIABILITY_LOGS, kept, to read after a failure.
func logDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("PARLEY_RELIABILITY_LOGS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// parleyCLI builds cmd/parley once per run and returns the binary.
func parleyCLI(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		builtDir, buildErr = os.MkdirTemp("", "parley-reliability-")
		if buildErr == nil {
			buildErr = proc.GoBuild(context.Background(), "", "./cmd/parley", filepath.Join(builtDir, "parley"), []string{"-trimpath"})
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(builtDir, "parley")
}

// arrival is one POST the receiver got.
type arrival struct {
	ID, InReplyTo, Conversation string
	Index                       int
	Header                      http.Header
	Body                        []byte
	Status                      int // what the receiver answered
	At                          time.Time
}

// receiver is a Response Endpoint that records every POST. decide, when set, picks
// each answer: a status, or a stall (the handler waits and answers 503 after it).
type receiver struct {
	URL    string
	ln     net.Listener
	srv    *http.Server
	decide func(d *arrival) (status int, retryAfter string, stall time.Duration)
	mu     sync.Mutex
	got    []arrival
	addr   string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{ln: ln, addr: ln.Addr().String()}
	r.URL = "http://" + r.addr + "/hooks/parley"
	r.srv = &http.Server{Handler: r}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// down closes the receiver's port: connections are refused until up.
func (r *receiver) down() { r.srv.Close() }

// up listens on the same port again.
func (r *receiver) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("receiver back on %s: %v", r.addr, err)
	}
	r.srv = &http.Server{Handler: r}
	go func() { _ = r.srv.Serve(ln) }()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := arrival{ID: req.Header.Get("webhook-id"), InReplyTo: req.Header.Get("Parley-In-Reply-To"), Header: req.Header.Clone(), Body: body, At: time.Now()}
	d.Index, _ = strconv.Atoi(req.Header.Get("Parley-Reply-Index"))
	var wb struct {
		ConversationID string `json:"conversationId"`
	}
	_ = json.Unmarshal(body, &wb)
	d.Conversation = wb.ConversationID
	status, retryAfter, stall := 200, "", time.Duration(0)
	if r.decide != nil {
		status, retryAfter, stall = r.decide(&d)
	}
	if stall > 0 {
		select {
		case <-time.After(stall):
		case <-req.Context().Done():
		}
		status = 503 // too late: the sender has given up on this attempt
	}
	d.Status = status
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
}

// all returns what the receiver got so far.
func (r *receiver) all() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// acked returns the deliveries answered 2xx.
func (r *receiver) acked() []arrival {
	var out []arrival
	for _, d := range r.all() {
		if d.Status/100 == 2 {
			out = append(out, d)
		}
	}
	return out
}

// tally compares what should have arrived (webhook ids) with what did.
type tally struct {
	Expected     int
	Delivered    int // expected ids acknowledged at least once
	DeadLettered int // expected ids whose job is in the dead-letter queue, never acknowledged
	Missing      []string
	Redelivered  int      // extra acknowledged copies of an id (allowed: at least once)
	DifferentIDs []string // one bot message acknowledged under two webhook ids
	NotDerived   []string // acknowledged under an id that is not the one derived for it
	Changed      []string // one webhook id acknowledged with two different bodies
	Unexpected   []string // acknowledged ids nobody expected
	OrderBreaks  []string
	// BothDLQAndAck counts ids delivered although their job is dead-lettered: allowed
	// for the replies before the one that failed, so only reported.
	BothDLQAndAck int
}

// count builds the tally. expected maps each webhook id to the messageId it answers;
// dead holds the webhook ids of dead-lettered jobs; order, when set, lists each
// conversation's webhook ids in the order they must first arrive.
func count(expected map[string]string, acked []arrival, dead map[string]bool, order map[string][]string) tally {
	tl := tally{Expected: len(expected)}
	seen := map[string]int{}
	body := map[string][]byte{}
	byMessage := map[string]map[string]bool{}
	first := map[string]time.Time{}
	for _, d := range acked {
		seen[d.ID]++
		if _, ok := first[d.ID]; !ok {
			first[d.ID] = d.At
		}
		if b, ok := body[d.ID]; !ok {
			body[d.ID] = d.Body
		} else if !bytes.Equal(b, d.Body) && !slices.Contains(tl.Changed, d.ID) {
			tl.Changed = append(tl.Changed, d.ID)
		}
		key := d.Conversation + "\x00" + d.InReplyTo + "\x00" + strconv.Itoa(d.Index)
		if byMessage[key] == nil {
			byMessage[key] = map[string]bool{}
		}
		byMessage[key][d.ID] = true
		if d.InReplyTo != "" && d.ID != replyRef(d.Conversation, d.InReplyTo, d.Index-1) && !slices.Contains(tl.NotDerived, d.ID) {
			tl.NotDerived = append(tl.NotDerived, d.ID)
		}
		if _, ok := expected[d.ID]; !ok {
			tl.Unexpected = append(tl.Unexpected, d.ID)
		}
	}
	for id := range expected {
		switch {
		case seen[id] > 0:
			tl.Delivered++
			tl.Redelivered += seen[id] - 1
			if dead[id] {
				tl.BothDLQAndAck++
			}
		case dead[id]:
			tl.DeadLettered++
		default:
			tl.Missing = append(tl.Missing, id)
		}
	}
	for key, ids := range byMessage {
		if len(ids) > 1 {
			tl.DifferentIDs = append(tl.DifferentIDs, strings.ReplaceAll(key, "\x00", "/"))
		}
	}
	for conv, ids := range order {
		var last time.Time
		var lastID string
		for _, id := range ids {
			at, ok := first[id]
			if !ok {
				continue // dead-lettered: the next ones may pass it
			}
			if at.Before(last) {
				tl.OrderBreaks = append(tl.OrderBreaks, fmt.Sprintf("%s: %s (answering %s) arrived %s before %s (answering %s)",
					conv, id, expected[id], last.Sub(at).Round(time.Millisecond), lastID, expected[lastID]))
			}
			last, lastID = at, id
		}
	}
	sort.Strings(tl.Missing)
	sort.Strings(tl.DifferentIDs)
	return tl
}

func (tl tally) String() string {
	return fmt.Sprintf("expected %d bot messages: delivered %d, dead-lettered %d, missing %d; redelivered with the same id %d, under a different id %d, under an id not derived %d, with a changed body %d; unexpected %d; order breaks %d",
		tl.Expected, tl.Delivered, tl.DeadLettered, len(tl.Missing), tl.Redelivered, len(tl.DifferentIDs), len(tl.NotDerived), len(tl.Changed), len(tl.Unexpected), len(tl.OrderBreaks))
}

// check fails the test on anything lost, doubled under another id, changed,
// unexpected or, when ordered, out of order.
func (tl tally) check(t *testing.T) {
	t.Helper()
	show := func(xs []string) []string { return xs[:min(len(xs), 5)] }
	if len(tl.Missing) > 0 {
		t.Errorf("%d bot messages neither delivered nor dead-lettered, e.g. %v", len(tl.Missing), show(tl.Missing))
	}
	if len(tl.DifferentIDs) > 0 {
		t.Errorf("%d bot messages delivered under different webhook ids, e.g. %v", len(tl.DifferentIDs), show(tl.DifferentIDs))
	}
	if len(tl.NotDerived) > 0 {
		t.Errorf("%d deliveries under a webhook id that is not the derived one, e.g. %v", len(tl.NotDerived), show(tl.NotDerived))
	}
	if len(tl.Changed) > 0 {
		t.Errorf("%d webhook ids delivered with two different bodies, e.g. %v", len(tl.Changed), show(tl.Changed))
	}
	if len(tl.Unexpected) > 0 {
		t.Errorf("%d deliveries of ids nobody expected, e.g. %v", len(tl.Unexpected), show(tl.Unexpected))
	}
	if len(tl.OrderBreaks) > 0 {
		t.Errorf("%d order breaks within a conversation, e.g. %v", len(tl.OrderBreaks), show(tl.OrderBreaks))
	}
}

// deadJobs reads dead letters: the webhook ids of the first `replies` bot messages of each
// dead-lettered turn, and the count of each reason (clipped).
func deadJobs(msgs []events.SQSMessage, replies int) (ids map[string]bool, reasons map[string]int) {
	ids, reasons = map[string]bool{}, map[string]int{}
	for _, m := range msgs {
		if j, err := message.DecodeJob([]byte(m.Body)); err == nil && j.Kind == message.KindTurn {
			for i := range replies {
				ids[replyRef(j.ConversationID, j.Message.MessageID, i)] = true
			}
		}
		reason := "(none: the queue's redrive policy)"
		if a, ok := m.MessageAttributes[message.AttrFailureReason]; ok && a.StringValue != nil {
			reason = *a.StringValue
			if len(reason) > 40 {
				reason = reason[:40]
			}
		}
		reasons[reason]++
	}
	return ids, reasons
}

// deadLetterReader is a queue whose dead letters can be read without taking them.
type deadLetterReader interface {
	DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error)
}

// settled reports whether every expected webhook id was acknowledged by rcv or
// belongs to a dead-lettered turn (its first replies bot messages), and returns the
// dead-lettered ids and the dead letters' reasons.
func settled(rcv *receiver, dlq deadLetterReader, expected map[string]string, replies int) (ok bool, dead map[string]bool, reasons map[string]int) {
	dl, err := dlq.DeadLetters(context.Background(), 100000)
	for try := 0; err != nil && try < 3; try++ { // an emulator restarting, say
		time.Sleep(time.Second)
		dl, err = dlq.DeadLetters(context.Background(), 100000)
	}
	if err != nil {
		return false, map[string]bool{}, map[string]int{}
	}
	dead, reasons = deadJobs(dl, replies)
	acked := map[string]bool{}
	for _, d := range rcv.acked() {
		acked[d.ID] = true
	}
	for id := range expected {
		if !acked[id] && !dead[id] {
			return false, dead, reasons
		}
	}
	return true, dead, reasons
}

// waitFor polls cond until it holds or d passes; it reports whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verifySignature is an independent Standard Webhooks verifier, written from the
// specification (research/peers.md), sharing no code with shared/webhook: the signed
// content is "<webhook-id>.<webhook-timestamp>.<body>", the key the base64 after
// "whsec_", the header space-separated "v1,<base64 HMAC-SHA256>" entries.
func verifySignature(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp outside 5 minutes")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// leaks returns the lines of logs that contain any of secrets.
func leaks(logs string, secrets map[string]string) []string {
	var out []string
	for i, line := range strings.Split(logs, "\n") {
		for what, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				out = append(out, fmt.Sprintf("line %d holds %s: %.200s", i+1, what, line))
			}
		}
	}
	return out
}

// post sends one inbound message and returns the status, the headers and the body.
func post(ctx context.Context, client *http.Client, url, token, body string) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header, string(b), nil
}

// messageBody is an inbound text message.
func messageBody(user, conv, id, text string) string {
	b, _ := json.Marshal(map[string]string{"userId": user, "conversationId": conv, "messageId": id, "type": "text", "text": text})
	return string(b)
}

// errorCode is the error.code of an error answer.
func errorCode(body string) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}
