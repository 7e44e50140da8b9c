package devstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// InboxPath is where the built-in inbox listens on the local stack's own server.
const InboxPath = "/_parley/inbox"

// Stack is a running local stack.
type Stack struct {
	Store *inmem.Store
	Queue *inmem.Queue
	// URL is the webhook URL: the root of the server.
	URL string
	// ResponseURL is where bot messages go.
	ResponseURL string
	// SigningSecrets are the whsec_ secrets the webhooks are signed with.
	SigningSecrets string

	srv     *http.Server
	served  chan error
	cancel  context.CancelFunc
	workers sync.WaitGroup
}

// Start starts the stack and returns once it is listening. out receives what the
// inbox prints; log the request and delivery lines.
func Start(cfg Config, out io.Writer, log *slog.Logger) (*Stack, error) {
	b, err := bot.New(cfg.Bot)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	s := &Stack{
		Store:          inmem.NewStore(),
		Queue:          inmem.NewQueue(inmem.QueueConfig{VisibilityTimeout: 30 * time.Second, MaxReceives: cfg.Policy.MaxAttempts + 1}),
		URL:            "http://" + ln.Addr().String() + "/",
		ResponseURL:    cfg.ResponseURL,
		SigningSecrets: cfg.SigningSecrets,
		served:         make(chan error, 1),
	}
	if s.ResponseURL == "" {
		s.ResponseURL = "http://" + ln.Addr().String() + InboxPath
	}
	if s.SigningSecrets == "" {
		s.SigningSecrets = newSecret()
	}
	signer, err := webhook.NewSigner(s.SigningSecrets)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("PARLEY_SIGNING_SECRET: %w", err)
	}
	sender, err := webhook.NewSender(webhook.Config{URL: s.ResponseURL, Timeout: cfg.DeliveryTimeout, Signer: signer})
	if err != nil {
		ln.Close()
		return nil, err
	}
	secrets, _ := webhook.ParseSecrets(s.SigningSecrets)

	auth := token.NewStatic(cfg.Token)
	in := inbound.New(s.Store, s.Queue, b, auth, inbound.Config{RecordTTL: cfg.RecordTTL, BotTimeout: cfg.BotTimeout}, log)
	mux := http.NewServeMux()
	mux.Handle("POST "+InboxPath, &inbox{out: out, secrets: secrets})
	(&admin{stack: s, auth: auth}).routes(mux)
	mux.Handle("/", in)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	h := delivery.New(sender, s.Queue, s.Store, cfg.Policy, cfg.DeliveryTimeout, log)
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		delivery.Poll(ctx, s.Queue, h, cfg.Workers, log)
	}()
	return s, nil
}

// Close stops accepting requests, lets requests in flight and the batches being
// delivered finish, and returns. Messages still queued are lost with the process: the
// local stack keeps nothing on disk.
func (s *Stack) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.cancel()
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Run starts the stack and serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	s, err := Start(cfg, out, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Parley local stack\n  webhook URL   %s  (Authorization: bearer %s)\n  responses to  %s\n  bot           %s\n  signing       %s\n  retries       %d attempts, %s to %s apart\n\n",
		s.URL, redact(cfg.Token), s.ResponseURL, cfg.Bot, secretNote(cfg.SigningSecrets, s.SigningSecrets), cfg.Policy.MaxAttempts, cfg.Policy.MinDelay, cfg.Policy.MaxDelay)
	select {
	case <-ctx.Done():
	case err := <-s.served:
		s.served <- err
	}
	fmt.Fprintln(out, "\nshutting down…")
	shutdown, cancel := context.WithTimeout(context.Background(), cfg.DeliveryTimeout+5*time.Second)
	defer cancel()
	return s.Close(shutdown)
}

func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}

func secretNote(configured, used string) string {
	if configured != "" {
		return "with PARLEY_SIGNING_SECRET"
	}
	return "with a secret made for this run: " + used
}

// redact shows the default dev token, which is public anyway, and hides any other.
func redact(t string) string {
	if t == "dev-token" {
		return t
	}
	return "$PARLEY_TOKEN"
}
