package devstack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/shared/devstack"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write docs/console.png from the browser test even when it exists")

const (
	consoleToken  = "tok-console-7b1f0e"
	consoleAdmin  = "adm-console-55c2a9"
	consoleSecret = "whsec_Y29uc29sZSBzZWNyZXQgZm9yIHRoZSB0ZXN0cyE="
)

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// newChannel makes a channel through the operator API and returns its token.
func newChannel(t *testing.T, s *devstack.Stack, spec string) (id, token, secret string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"_parley/admin/channels", strings.NewReader(spec))
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var c struct{ ID, Token, SigningSecret string }
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil || res.StatusCode != 200 || c.Token == "" {
		t.Fatalf("create channel: %d %v %+v", res.StatusCode, err, c)
	}
	return c.ID, c.Token, c.SigningSecret
}

// stream reads a console event stream into lines until the test ends.
type stream struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func openStream(t *testing.T, url, token string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("events: got %d %s, want 200 text/event-stream", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &stream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close(); <-s.done })
	return s
}

func (s *stream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func (s *stream) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.text(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the stream has no %q within 10s:\n%s", want, s.text())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func consoleStack(t *testing.T, env map[string]string) *devstack.Stack {
	t.Helper()
	base := map[string]string{"PARLEY_TOKEN": consoleToken, "PARLEY_ADMIN_TOKEN": consoleAdmin, "PARLEY_SIGNING_SECRET": consoleSecret}
	for k, v := range env {
		base[k] = v
	}
	return startWith(t, base)
}

// The page and its assets are served from the binary with their content types and
// a policy that runs no script but the console's own.
func TestConsoleServesThePage(t *testing.T) {
	s := consoleStack(t, map[string]string{})
	for _, c := range []struct{ path, ctype, holds string }{
		{"_parley/", "text/html; charset=utf-8", `<script src="console/assets/console.js"`},
		{"_parley/console/assets/console.js", "text/javascript; charset=utf-8", "textContent"},
		{"_parley/console/assets/console.css", "text/css; charset=utf-8", ".bubble"},
	} {
		res, body := get(t, s.URL+c.path, "")
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != c.ctype || !strings.Contains(body, c.holds) {
			t.Errorf("GET /%s: got %d %q (holds %q: %v), want 200 %q", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.holds, strings.Contains(body, c.holds), c.ctype)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /%s: CSP %q, nosniff %q", c.path, csp, res.Header.Get("X-Content-Type-Options"))
		}
	}
	for _, p := range []string{"_parley/console/assets/nothing.js", "_parley/console/assets/"} {
		if res, _ := get(t, s.URL+p, ""); res.StatusCode != 404 {
			t.Errorf("GET /%s: got %d, want 404", p, res.StatusCode)
		}
	}
	// The page needs nothing from elsewhere: no CDN, works offline.
	for _, p := range []string{"_parley/", "_parley/console/assets/console.js", "_parley/console/assets/console.css"} {
		_, body := get(t, s.URL+p, "")
		for _, far := range []string{"<script src=\"http", "href=\"http", "@import", "url(http", "cdn."} {
			if strings.Contains(body, far) {
				t.Errorf("/%s loads %q from elsewhere", p, far)
			}
		}
	}
}

// The console's data needs an API token: none, a wrong one, another scheme or the
// admin token are refused.
func TestConsoleNeedsTheAPIToken(t *testing.T) {
	s := consoleStack(t, map[string]string{})
	for _, p := range []string{devstack.ConsoleInfoPath, devstack.ConsoleDeliveriesPath, devstack.ConsoleEventsPath} {
		for name, auth := range map[string]string{"none": "", "wrong": "Bearer nope", "basic": "Basic " + consoleToken, "admin": "Bearer " + consoleAdmin} {
			req, _ := http.NewRequest("GET", strings.TrimSuffix(s.URL, "/")+p, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 401 || !strings.Contains(string(b), `"invalid_token"`) {
				t.Errorf("GET %s with %s token: got %d %s, want 401 invalid_token", p, name, res.StatusCode, b)
			}
		}
	}
}

// Each token sees its own channel's deliveries, live and recent, and where they went;
// no response of the console holds a token or a signing secret.
func TestConsoleShowsOnlyTheTokensChannel(t *testing.T) {
	otherEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer otherEndpoint.Close()
	s := consoleStack(t, map[string]string{})
	id, otherToken, otherSecret := newChannel(t, s, `{"name":"other","responseUrl":"`+otherEndpoint.URL+`/hook?key=k3y-in-the-url","bot":{"kind":"echo"}}`)
	root := strings.TrimSuffix(s.URL, "/")

	mine := openStream(t, root+devstack.ConsoleEventsPath, consoleToken)
	theirs := openStream(t, root+devstack.ConsoleEventsPath, otherToken)
	for tok, text := range map[string]string{consoleToken: "for the default channel", otherToken: "for the other channel"} {
		if res := send(t, s.URL, tok, `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"`+text+`"}`); res.StatusCode != 200 {
			t.Fatalf("POST: %d", res.StatusCode)
		}
	}
	mine.waitFor(t, "for the default channel")
	theirs.waitFor(t, "for the other channel")
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(mine.text(), "for the other channel") || strings.Contains(theirs.text(), "for the default channel") {
		t.Errorf("a stream shows another channel's delivery:\nmine:\n%s\ntheirs:\n%s", mine.text(), theirs.text())
	}

	var bodies []string
	for _, c := range []struct {
		token, channel, endpoint, holds, not string
		inbox                                bool
	}{
		{consoleToken, "default", strings.TrimSuffix(s.URL, "/"), "for the default channel", "for the other channel", true},
		{otherToken, id, otherEndpoint.URL, "for the other channel", "for the default channel", false},
	} {
		res, body := get(t, root+devstack.ConsoleDeliveriesPath, c.token)
		var d struct {
			Deliveries []struct {
				ConversationID, WebhookID, InReplyTo string
				Message                              struct{ Type string }
				Attempt                              struct{ Outcome string }
			}
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil || res.StatusCode != 200 {
			t.Fatalf("deliveries: %d %v %s", res.StatusCode, err, body)
		}
		if len(d.Deliveries) != 1 || !strings.Contains(body, c.holds) || strings.Contains(body, c.not) {
			t.Errorf("%s deliveries: got %s, want its own one", c.channel, body)
		} else if e := d.Deliveries[0]; e.ConversationID != "c1" || e.InReplyTo != "m1" || e.Attempt.Outcome != "delivered" || e.Message.Type != "text" || !strings.HasPrefix(e.WebhookID, "msg_") {
			t.Errorf("%s delivery: got %+v", c.channel, e)
		}
		bodies = append(bodies, body)

		res, body = get(t, root+devstack.ConsoleInfoPath, c.token)
		var info struct {
			Channel, Bot, Endpoint string
			Inbox                  bool
		}
		if err := json.Unmarshal([]byte(body), &info); err != nil || res.StatusCode != 200 {
			t.Fatalf("info: %d %v %s", res.StatusCode, err, body)
		}
		if info.Channel != c.channel || info.Bot != "echo" || info.Endpoint != c.endpoint || info.Inbox != c.inbox {
			t.Errorf("info: got %+v, want channel %s, echo, endpoint %s, inbox %v", info, c.channel, c.endpoint, c.inbox)
		}
		bodies = append(bodies, body)
	}
	for _, p := range []string{"_parley/", "_parley/console/assets/console.js", "_parley/console/assets/console.css"} {
		_, body := get(t, s.URL+p, consoleToken)
		bodies = append(bodies, body)
	}
	bodies = append(bodies, mine.text(), theirs.text())
	for _, secret := range []string{consoleToken, consoleAdmin, consoleSecret, strings.TrimPrefix(consoleSecret, "whsec_"), otherToken, otherSecret,
		strings.TrimPrefix(otherSecret, "whsec_"), "k3y-in-the-url"} {
		for _, b := range bodies {
			if strings.Contains(b, secret) {
				t.Errorf("a console response holds the secret %q:\n%s", secret, b)
			}
		}
	}
}

// A stream that reconnects with ?after= gets what it missed; the server's shutdown
// ends open streams instead of waiting on them.
func TestConsoleStreamResumesAndEndsOnShutdown(t *testing.T) {
	s, err := devstack.Start(config(t, map[string]string{"PARLEY_TOKEN": consoleToken}), io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			s.Close(context.Background())
		}
	}()
	root := strings.TrimSuffix(s.URL, "/")
	first := openStream(t, root+devstack.ConsoleEventsPath, consoleToken)
	send(t, s.URL, consoleToken, `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"one"}`)
	first.waitFor(t, `"text":"one"`)
	send(t, s.URL, consoleToken, `{"userId":"u1","messageId":"m2","conversationId":"c1","type":"text","text":"two"}`)
	first.waitFor(t, `"text":"two"`)
	if !strings.Contains(first.text(), "id: 1\n") || !strings.Contains(first.text(), "id: 2\n") || !strings.Contains(first.text(), "event: delivery") {
		t.Errorf("stream:\n%s\nwant events 1 and 2", first.text())
	}
	resumed := openStream(t, root+devstack.ConsoleEventsPath+"?after=1", consoleToken)
	resumed.waitFor(t, `"text":"two"`)
	if strings.Contains(resumed.text(), `"text":"one"`) {
		t.Errorf("resumed after 1, got event 1 again:\n%s", resumed.text())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	closed = true
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close with open streams: %v after %s", err, time.Since(start))
	}
	select {
	case <-first.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end at shutdown")
	}
}

// chromium finds a headless Chromium: $PARLEY_CHROMIUM, where Debian's packages put
// it, or on PATH. The real binary comes before Debian's /usr/bin wrapper script, which
// would leave the browser running when the test ends it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/headless_shell", "/usr/lib/chromium/chromium"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	for _, name := range []string{"chromium-headless-shell", "headless-shell", "headless_shell", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal(installHint)
	return ""
}

const installHint = "no headless Chromium to run the console's browser test: install it with " +
	"`apt-get install chromium-headless-shell` (Debian; .ci/run does it), or set PARLEY_CHROMIUM to a Chromium or Chrome binary"

// browser starts a headless Chromium with a fresh profile. Background services are
// off: on a closed network they would only wait on connections that never come.
func browser(t *testing.T) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// The bots' media point at the internet: no name resolves but loopback's, so
		// nothing leaves the machine.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1240, 860),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1240, 860)); err != nil {
		t.Fatalf("start Chromium: %v\n%s", err, installHint)
	}
	return ctx
}

// page drives the console in the browser, failing the test on the first error or
// uncaught exception.
type page struct {
	t          *testing.T
	ctx        context.Context
	mu         sync.Mutex
	exceptions []string
}

func openConsole(t *testing.T, ctx context.Context, url string) *page {
	p := &page{t: t, ctx: ctx}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			text := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				text += " " + ev.ExceptionDetails.Exception.Description
			}
			p.mu.Lock()
			p.exceptions = append(p.exceptions, text)
			p.mu.Unlock()
		}
	}()
	p.do(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#token")))
	return p
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.fail(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.exceptions) > 0 {
		p.t.Fatalf("the page threw: %s", strings.Join(p.exceptions, "\n"))
	}
}

// click clicks the element sel names as a person does (mouse events where it stands).
// Lists that the live stream re-renders may replace the element between finding it and
// clicking it: then it is found again.
func (p *page) click(sel string) {
	p.t.Helper()
	var err error
	for range 5 {
		if err = chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(sel))); err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.fail(fmt.Errorf("click %s: %w", sel, err))
	}
	p.do()
}

func (p *page) fail(err error) {
	p.t.Helper()
	shot := p.screenshot("failure.png")
	body, _ := chromedp.Run(context.WithoutCancel(p.ctx), chromedp.Evaluate[string](`document.body.innerText`))
	p.t.Fatalf("%v\nscreenshot: %s\npage text:\n%s", err, shot, body)
}

// wait polls a JavaScript predicate until it is truthy, for 15 seconds at most; a
// predicate that throws is false.
func (p *page) wait(what, predicate string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	expr := `(() => { try { return !!(` + predicate + `); } catch (e) { return false; } })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		p.fail(fmt.Errorf("waiting for %s: %w", what, err))
	}
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.fail(fmt.Errorf("%s: %w", expr, err))
	}
	return v
}

func (p *page) screenshot(name string) string {
	b, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return "none: " + err.Error()
	}
	path := filepath.Join("..", "..", ".build", "console", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "none: " + err.Error()
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "none: " + err.Error()
	}
	abs, _ := filepath.Abs(path)
	return abs
}

func (p *page) connect(token string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#signin button")))
	p.wait("the live stream", `document.querySelector('#conn').classList.contains('live') && !document.querySelector('#text').disabled`)
}

func (p *page) say(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS("#text"), text), chromedp.Click(chromedp.CSS("#composer button")))
}

// conversation picks a conversation, as typing its id does.
func (p *page) conversation(id string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](`(() => { const c = document.querySelector('#conversation'); c.value = '` + id + `'; c.dispatchEvent(new Event('change')); })()`))
	p.wait("conversation "+id, `document.querySelector('#conversation').value === '`+id+`' && document.querySelector('#history-conversation').value === '`+id+`'`)
}

// raw POSTs a body of the person's own from the page.
func (p *page) raw(body string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('details.raw').open = true`),
		chromedp.SetValue(chromedp.CSS("#raw-body"), body), chromedp.Click(chromedp.CSS("#raw-send")))
}

func (p *page) tab(view string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(`.tab[data-view="` + view + `"]`)))
	p.wait("the "+view+" view", `!document.querySelector('#view-`+view+`').hidden`)
}

// A person's round trip in a real browser: chat with the rules bot (a carousel, a
// choice clicked and its answer), the deliveries the stack made, and a dead letter
// redriven from the page.
func TestConsoleInBrowser(t *testing.T) {
	start := time.Now()
	var failing atomic.Bool
	failing.Store(true)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down for the test", http.StatusInternalServerError)
		}
	}))
	defer endpoint.Close()

	s := startWith(t, map[string]string{"PARLEY_BOT": "rules"})
	ctx := browser(t)
	p := openConsole(t, ctx, s.URL+"_parley/")
	p.conversation("c-demo")
	p.connect("dev-token")
	if got := p.eval(`document.querySelector('#endpoint').textContent`); !strings.Contains(got, "bot rules") || !strings.Contains(got, "built-in inbox") {
		t.Errorf("chat header: %q, want the bot and the inbox", got)
	}

	p.say("show me the catalog")
	p.wait("the carousel's cards", `document.querySelectorAll('.bubble.bot[data-type="carousel"] .card').length === 2`)
	cards := p.eval(`[...document.querySelectorAll('.bubble.bot[data-type="carousel"] .card-title')].map(n => n.textContent).join(',')`)
	if cards != "T-shirt,Mug" {
		t.Errorf("carousel cards: %q, want T-shirt,Mug", cards)
	}
	p.wait("the message's status", `[...document.querySelectorAll('.bubble.user')].some(b => b.dataset.status === 'accepted' && b.textContent.includes('show me the catalog'))`)

	p.say("choose")
	p.wait("the choice", `document.querySelector('.bubble.bot[data-type="choice"] button.option[data-value="coffee"]')`)
	p.click(`.bubble.bot[data-type="choice"] button.option[data-value="coffee"]`)
	// The example answers the choice.
	p.wait("the answer to the choice", `[...document.querySelectorAll('.bubble.bot')].some(b => b.textContent.includes('Good choice. One is on its way.'))`)
	if got := p.eval(`[...document.querySelectorAll('.bubble.user .body')].map(n => n.textContent).join('|')`); got != "show me the catalog|choose|coffee" {
		t.Errorf("the person's messages: %q, want the two typed and the choice's value", got)
	}
	shot := p.screenshot("chat.png")
	docs := filepath.Join("..", "..", "docs", "console.png")
	if _, err := os.Stat(docs); errors.Is(err, os.ErrNotExist) || *updateScreenshot {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(docs, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The same messageId again is a replay, and says so; a body the API refuses shows
	// its error. Neither delivers anything.
	p.click(`.bubble.user .resend`)
	p.wait("the replay's status", `[...document.querySelectorAll('.bubble.user')].some(b => b.dataset.status === 'replayed' && b.textContent.includes('show me the catalog') && b.textContent.includes('Idempotent-Replayed'))`)
	p.raw(`{"userId":"u1","messageId":"m-bad","conversationId":"c-demo","type":"location","text":"here","payload":{"latitude":"north","longitude":2}}`)
	p.wait("the rejection", `[...document.querySelectorAll('.bubble.user')].some(b => b.dataset.status === 'rejected')`)
	if got := p.eval(`[...document.querySelectorAll('.bubble.user')].find(b => b.dataset.status === 'rejected').querySelector('.status').textContent`); !strings.HasPrefix(got, "rejected: 400 invalid_payload: ") || !strings.Contains(got, "latitude") {
		t.Errorf("rejected message's status: %q, want the 400 and the error's message", got)
	}

	carousel := p.eval(`document.querySelector('.bubble.bot[data-type="carousel"]').dataset.webhookId`)
	answer := p.eval(`[...document.querySelectorAll('.bubble.bot')].find(b => b.textContent.includes('Good choice. One is on its way.')).dataset.webhookId`)
	p.tab("deliveries")
	for _, id := range []string{carousel, answer} {
		p.wait("delivery "+id+" delivered", `document.querySelector('#deliveries tr[data-webhook-id="`+id+`"][data-status="delivered"]')`)
	}
	if got := p.eval(`String(document.querySelectorAll('#deliveries tbody tr[data-webhook-id]').length)`); got != "3" {
		t.Errorf("deliveries listed: %s, want 3 (the carousel, the choice, the answer to it)", got)
	}
	p.click(`#deliveries tr[data-webhook-id="` + carousel + `"] button.log`)
	p.wait("the attempt log", `document.querySelector('#attempt-log h3') && document.querySelector('#attempt-log h3').textContent.includes('unknown')`)
	p.click(`#deliveries tr[data-webhook-id="` + carousel + `"] button.replay`)
	p.wait("the replayed delivery", `(r => r && r.dataset.status === 'delivered' && r.children[5].textContent === '2')(document.querySelector('#deliveries tr[data-webhook-id="`+carousel+`"]'))`)
	p.screenshot("deliveries.png")

	// Every message type of the example rules, rendered as a person expects.
	p.tab("chat")
	p.conversation("c-types")
	p.wait("the empty conversation", `document.querySelector('#messages .empty')`)
	for _, c := range []struct{ say, typ string }{
		{"picture", "image"}, {"sound", "audio"}, {"video", "video"}, {"document", "file"}, {"where", "location"},
		{"product", "card"}, {"size", "dropdown"}, {"summary", "bloc"}, {"help", "markdown"},
	} {
		p.say(c.say)
		p.wait("the "+c.typ, `document.querySelector('.bubble.bot[data-type="`+c.typ+`"]')`)
	}
	for expr, want := range map[string]string{
		`document.querySelector('.bubble.bot[data-type="image"] img').src`:                                                                                                   "https://picsum.photos/id/237/400/300",
		`document.querySelector('.bubble.bot[data-type="image"] figcaption').textContent`:                                                                                    "A dog",
		`document.querySelector('.bubble.bot[data-type="audio"] audio[controls]').src`:                                                                                       "https://example.com/media/chime.mp3",
		`document.querySelector('.bubble.bot[data-type="video"] video[controls]').src`:                                                                                       "https://example.com/media/intro.mp4",
		`document.querySelector('.bubble.bot[data-type="file"] a').href`:                                                                                                     "https://example.com/docs/terms.pdf",
		`document.querySelector('.bubble.bot[data-type="file"] a').textContent`:                                                                                              "Terms of service",
		`document.querySelector('.bubble.bot[data-type="location"] .coords').textContent`:                                                                                    "45.50170, -73.56730",
		`document.querySelector('.bubble.bot[data-type="location"] a').href`:                                                                                                 "https://www.openstreetmap.org/?mlat=45.5017&mlon=-73.5673#map=16/45.5017/-73.5673",
		`document.querySelector('.bubble.bot[data-type="card"] .card-title').textContent`:                                                                                    "Parley T-shirt",
		`document.querySelector('.bubble.bot[data-type="card"] .card-subtitle').textContent`:                                                                                 "Organic cotton, 25 EUR",
		`document.querySelector('.bubble.bot[data-type="card"] .actions a').href`:                                                                                            "https://example.com/shop/tshirt",
		`[...document.querySelectorAll('.bubble.bot[data-type="card"] .actions > *')].map(n => n.textContent).join(',')`:                                                     "Buy,Details,Other colours?",
		`[...document.querySelectorAll('.bubble.bot[data-type="dropdown"] option')].map(n => n.value).join(',')`:                                                             ",s,m,l",
		`String(document.querySelectorAll('.bubble.bot[data-type="bloc"] .bloc-item').length)`:                                                                               "3",
		`String(!!document.querySelector('.bubble.bot[data-type="bloc"] .bloc-item img') && !!document.querySelector('.bubble.bot[data-type="bloc"] .bloc-item .location'))`: "true",
		`document.querySelector('.bubble.bot[data-type="markdown"] strong').textContent`:                                                                                     "picture",
	} {
		if got := p.eval(expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	p.screenshot("types.png")
	p.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#messages').scrollTop = 0`))
	p.screenshot("types-top.png")
	// A say button and a dropdown send their value as the next message.
	p.click(`.bubble.bot[data-type="card"] button.action[data-value="What other colours are there?"]`)
	p.wait("the say button's message", `[...document.querySelectorAll('.bubble.user')].some(b => b.textContent.includes('What other colours are there?') && b.dataset.status === 'accepted')`)
	p.do(chromedp.SetValue(chromedp.CSS(`.bubble.bot[data-type="dropdown"] select`), "m"), chromedp.Click(chromedp.CSS(`.bubble.bot[data-type="dropdown"] button.option`)))
	p.wait("the dropdown's message", `[...document.querySelectorAll('.bubble.user .body')].some(b => b.textContent === 'm')`)
	p.wait("the answers to both", `[...document.querySelectorAll('.bubble.bot')].filter(b => b.textContent.includes('Sorry, I did not get that.')).length === 2`+
		` && document.querySelectorAll('.bubble.bot').length === 13`)

	// The conversation's 24 messages, 20 a page, newest first.
	p.tab("history")
	p.wait("the first page", `document.querySelectorAll('#history .entry').length === 20 && !document.querySelector('#history-more').hidden`)
	p.click("#history-more")
	p.wait("the last page", `document.querySelectorAll('#history .entry').length === 24 && document.querySelector('#history-more').hidden`)
	for expr, want := range map[string]string{
		`document.querySelector('#history .entry:first-child .choice .text').textContent`:      "Would you like help?",
		`document.querySelector('#history .entry:last-child').className`:                       "entry incoming",
		`document.querySelector('#history .entry:last-child .text').textContent`:               "picture",
		`String(document.querySelector('#history .entry:first-child button.option').disabled)`: "true",
	} {
		if got := p.eval(expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	p.tab("chat")
	p.conversation("c-demo")

	// A channel whose endpoint fails, with one attempt: its message goes to the
	// dead-letter queue, and the page redrives it once the endpoint is back.
	id, token, _ := newChannel(t, s, `{"name":"failing","responseUrl":"`+endpoint.URL+`/hook","bot":{"kind":"echo"},"retry":{"minDelay":"1s","maxDelay":"1s","maxAttempts":1}}`)
	p.connect(token)
	p.wait("the other channel's info", `document.querySelector('#endpoint').textContent.includes('`+id+`')`)
	if got := p.eval(`document.querySelector('#endpoint').textContent`); !strings.Contains(got, endpoint.URL) || strings.Contains(got, "/hook") {
		t.Errorf("chat header: %q, want the endpoint's origin %s", got, endpoint.URL)
	}
	if got := p.eval(`String(document.querySelectorAll('#deliveries tbody tr[data-webhook-id]').length)`); got != "0" {
		t.Errorf("the failing channel's token lists %s deliveries of another channel", got)
	}
	p.tab("chat")
	p.say("hello dead letter")
	p.wait("the failed delivery in the chat", `[...document.querySelectorAll('.bubble.bot')].some(b => b.textContent.includes('hello dead letter') && b.dataset.status === 'dead-lettered')`)
	failed := p.eval(`[...document.querySelectorAll('.bubble.bot')].find(b => b.textContent.includes('hello dead letter')).dataset.webhookId`)
	p.tab("deliveries")
	p.wait("the dead letter", `[...document.querySelectorAll('#dlq tbody tr')].some(r => r.dataset.conversation === 'c-demo' && r.textContent.includes('http 500'))`)
	p.wait("the delivery marked dead", `document.querySelector('#deliveries tr[data-webhook-id="`+failed+`"][data-status="dead-lettered"]')`)
	p.screenshot("dead-letter.png")
	failing.Store(false)
	p.click("#dlq-redrive")
	p.wait("the redriven delivery", `document.querySelector('#deliveries tr[data-webhook-id="`+failed+`"][data-status="delivered"]')`)
	p.wait("an empty dead-letter queue", `!document.querySelector('#dlq tbody tr[data-conversation]')`)
	p.screenshot("redriven.png")

	// What a bot sends is text, never markup: tags stay text, only http(s) URLs become
	// links or images.
	p.tab("chat")
	p.raw(`{"userId":"u1","messageId":"m-x1","conversationId":"c-demo","type":"markdown","text":"x","payload":{"markdown":"**bold** <img src=x onerror=\"window.pwned=1\"> [click](javascript:window.pwned=2) [site](https://example.com/a)"}}`)
	p.raw(`{"userId":"u1","messageId":"m-x2","conversationId":"c-demo","type":"card","text":"x","payload":{"title":"<b>t</b>","imageUrl":"javascript:window.pwned=3","actions":[{"action":"url","label":"go","value":"javascript:window.pwned=4"},{"action":"postback","label":"<i>p</i>","value":"v"}]}}`)
	p.wait("the echoed markup", `document.querySelector('.bubble.bot[data-type="markdown"]') && document.querySelector('.bubble.bot[data-type="card"]')`)
	for expr, want := range map[string]string{
		`String(document.querySelectorAll('img[src="x"], img[src^="javascript"], a[href^="javascript"], b, i, [onerror]').length)`: "0",
		`String(window.pwned)`: "undefined",
		`document.querySelector('.bubble.bot[data-type="markdown"] strong').textContent`:                               "bold",
		`document.querySelector('.bubble.bot[data-type="markdown"] a[href="https://example.com/a"]').textContent`:      "site",
		`String(document.querySelector('.bubble.bot[data-type="markdown"] .body').textContent.includes('<img src=x'))`: "true",
		`document.querySelector('.bubble.bot[data-type="card"] .card-title').textContent`:                              "<b>t</b>",
		`document.querySelector('.bubble.bot[data-type="card"] button.action').textContent`:                            "<i>p</i>",
	} {
		if got := p.eval(expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}

	p.screenshot("markup.png")

	p.tab("history")
	p.wait("the history", `document.querySelectorAll('#history .entry').length === 6 && document.querySelector('#history').textContent.includes('hello dead letter')`)
	t.Logf("browser test took %s; screenshots in .build/console/", time.Since(start).Round(time.Millisecond))
}
