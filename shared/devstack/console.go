package devstack

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
)

// Paths of the console: a page in the browser to talk to the bot and watch what the
// stack delivers. The page is public (it holds no secret); its data needs an API token,
// and shows that token's channel only.
const (
	ConsoleEventsPath     = "/_parley/console/events"
	ConsoleDeliveriesPath = "/_parley/console/deliveries"
	ConsoleInfoPath       = "/_parley/console/info"
	consoleAssetsPrefix   = "/_parley/console/assets/"
)

// consoleRing is how many recent POST attempts the console keeps per channel: what
// the Deliveries view and a reloaded page start from.
const consoleRing = 500

// consoleBacklog is how many events a stream may fall behind before it is dropped; the
// page reconnects and catches up from the ring.
const consoleBacklog = 256

//go:embed console
var consoleFiles embed.FS

// console serves the page and feeds it the stack's deliveries. It hears them through
// delivery.Config.Observe, so it sees what the stack POSTed wherever the endpoint is.
type console struct {
	inbox string // the built-in inbox's URL: deliveries there need no "sent to" note

	mu     sync.Mutex
	seq    int64
	rings  map[string]*ring // by channel
	subs   map[*subscriber]struct{}
	closed bool
}

// consoleEvent is one POST attempt as the page sees it.
type consoleEvent struct {
	Seq            int64           `json:"seq"`
	ConversationID string          `json:"conversationId"`
	WebhookID      string          `json:"webhookId"`
	InReplyTo      string          `json:"inReplyTo,omitempty"`
	Index          int             `json:"index,omitempty"`
	Count          int             `json:"count,omitempty"`
	Message        json.RawMessage `json:"message"` // the body, as POSTed
	Attempt        message.Attempt `json:"attempt"`
	// FailedBefore counts the message's failed attempts before this one.
	FailedBefore int `json:"failedBefore"`
}

// event is a consoleEvent encoded once, for every stream and the ring.
type event struct {
	seq     int64
	channel string
	data    []byte
}

type ring struct {
	items []event
	next  int // where the next one goes once the ring is full
}

func (r *ring) add(e event) {
	if len(r.items) < consoleRing {
		r.items = append(r.items, e)
		return
	}
	r.items[r.next] = e
	r.next = (r.next + 1) % consoleRing
}

// after lists the events after seq, oldest first.
func (r *ring) after(seq int64) []event {
	var out []event
	for i := range r.items {
		if e := r.items[(r.next+i)%len(r.items)]; e.seq > seq {
			out = append(out, e)
		}
	}
	return out
}

type subscriber struct {
	channel string
	events  chan event
	// gone is closed when the stream must end: it fell behind, or the stack stops.
	gone chan struct{}
}

func newConsole(inbox string) *console {
	return &console{inbox: inbox, rings: map[string]*ring{}, subs: map[*subscriber]struct{}{}}
}

// observe is delivery.Config.Observe. It never blocks the delivery worker: a stream
// that cannot keep up is dropped.
func (c *console) observe(o delivery.Observation) {
	body := json.RawMessage(o.Delivery.Body)
	if !json.Valid(body) {
		body, _ = json.Marshal(string(o.Delivery.Body))
	}
	ch := o.Channel
	if ch == "" {
		ch = message.DefaultChannel
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	data, err := json.Marshal(consoleEvent{Seq: c.seq, ConversationID: o.ConversationID, WebhookID: o.Delivery.ID, InReplyTo: o.Delivery.InReplyTo,
		Index: o.Delivery.Index, Count: o.Delivery.Count, Message: body, Attempt: o.Attempt, FailedBefore: o.Attempts})
	if err != nil {
		return
	}
	e := event{seq: c.seq, channel: ch, data: data}
	r := c.rings[ch]
	if r == nil {
		if len(c.rings) >= 1000 {
			clear(c.rings) // a local stack with a thousand channels: forget, rather than grow
		}
		r = &ring{}
		c.rings[ch] = r
	}
	r.add(e)
	for s := range c.subs {
		if s.channel != ch {
			continue
		}
		select {
		case s.events <- e:
		default:
			close(s.gone)
			delete(c.subs, s)
		}
	}
}

// subscribe registers a stream and returns the ring's events after seq, atomically:
// nothing falls between the two.
func (c *console) subscribe(channel string, after int64) (*subscriber, []event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &subscriber{channel: channel, events: make(chan event, consoleBacklog), gone: make(chan struct{})}
	if c.closed {
		close(s.gone)
		return s, nil
	}
	c.subs[s] = struct{}{}
	var past []event
	if r := c.rings[channel]; r != nil {
		past = r.after(after)
	}
	return s, past
}

func (c *console) unsubscribe(s *subscriber) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[s]; ok {
		delete(c.subs, s)
		close(s.gone)
	}
}

// shutdown ends every stream, so the server's graceful shutdown does not wait on them.
func (c *console) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for s := range c.subs {
		close(s.gone)
		delete(c.subs, s)
	}
}

func (c *console) recent(channel string) []json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []json.RawMessage{}
	if r := c.rings[channel]; r != nil {
		for _, e := range r.after(0) {
			out = append(out, e.data)
		}
	}
	return out
}

// routes serves the page to anyone and its data to API tokens, through the operator's
// token check and channel lookup.
func (c *console) routes(mux *http.ServeMux, op *operator) {
	mux.HandleFunc("GET "+ConsolePrefix+"{$}", c.asset("index.html"))
	mux.HandleFunc("GET "+consoleAssetsPrefix+"{name}", func(w http.ResponseWriter, r *http.Request) {
		c.asset(r.PathValue("name"))(w, r)
	})
	mux.HandleFunc("GET "+ConsoleInfoPath, op.apiToken(func(w http.ResponseWriter, r *http.Request, tok message.Token) {
		ch, err := op.service.Channel(r.Context(), tok.Channel)
		if err != nil {
			writeError(w, err)
			return
		}
		noStore(w)
		writeJSON(w, map[string]any{"channel": ch.ID, "name": ch.Name, "bot": ch.Bot.Kind,
			"endpoint": origin(ch.ResponseURL), "inbox": ch.ResponseURL == c.inbox})
	}))
	mux.HandleFunc("GET "+ConsoleDeliveriesPath, op.apiToken(func(w http.ResponseWriter, r *http.Request, tok message.Token) {
		noStore(w)
		writeJSON(w, map[string]any{"deliveries": c.recent(tok.Channel)})
	}))
	mux.HandleFunc("GET "+ConsoleEventsPath, op.apiToken(c.events))
}

// events streams the channel's POST attempts as server-sent events, starting with
// those after ?after= still in the ring. The page reads it with fetch, which can send
// the Authorization header (EventSource cannot).
func (c *console) events(w http.ResponseWriter, r *http.Request, tok message.Token) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	rc := http.NewResponseController(w)
	// The server's read timeout would cut a stream that outlives it.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	s, past := c.subscribe(tok.Channel, after)
	defer c.unsubscribe(s)
	w.Header().Set("Content-Type", "text/event-stream")
	noStore(w)
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(e event) error {
		_, err := fmt.Fprintf(w, "id: %d\nevent: delivery\ndata: %s\n\n", e.seq, e.data)
		return err
	}
	if _, err := fmt.Fprint(w, ": parley console\n\n"); err != nil {
		return
	}
	for _, e := range past {
		if write(e) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.gone:
			return
		case e := <-s.events:
			if write(e) != nil {
				return
			}
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// asset serves one of the embedded files, with headers that keep the page's own
// scripts the only ones it runs.
func (c *console) asset(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(consoleFiles, path.Join("console", path.Base(name)))
		if err != nil || path.Base(name) != name {
			writeStatus(w, http.StatusNotFound, "not_found", "no such console file")
			return
		}
		ct, ok := consoleTypes[path.Ext(name)]
		if !ok {
			ct = "application/octet-stream"
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Bots' images and media come from anywhere; scripts, styles and connections only
		// from the stack itself.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
			"img-src 'self' http: https:; media-src http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		_, _ = w.Write(b)
	}
}

// consoleTypes are the console files' content types: fixed here, not read from the
// machine's mime.types, which may differ.
var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// origin is where an endpoint is, without what its URL may carry beyond the host (a
// user, a path or a query can hold a key).
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

// consoleNote is the console's line in the banner.
func consoleNote(stackURL string) string {
	if stackURL == "" {
		return "none: the delivery role serves no pages"
	}
	return stackURL + ConsolePrefix[1:] + "  (talk to the bot, watch its deliveries; sign in with the API token)"
}
