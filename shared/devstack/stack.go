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
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/awsenv"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/channel"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// Paths the local stack serves beside the API. Nothing under /_parley/ is deployed.
const (
	ConsolePrefix = "/_parley/"
	InboxPath     = "/_parley/inbox"
)

// queue is what the stack needs of its queue: the inbound side, the worker's side and
// the operator's side. The embedded queue and the SQS adapter both have it all.
type queue interface {
	inbound.Queue
	delivery.Queue
	delivery.Source
	DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error)
	Redrive(ctx context.Context, limit int) (int, error)
	RedriveMatching(ctx context.Context, limit int, match func(events.SQSMessage) bool) (int, error)
}

// store is what the stack needs of its store.
type store interface {
	inbound.Store
	delivery.Store
	bot.HistoryReader
	admin.Store
	token.Lookup
}

// Stack is a running local stack.
type Stack struct {
	// Store and Queue are the embedded parts; nil when the stack runs on DynamoDB and
	// SQS (PARLEY_TABLE_NAME and PARLEY_QUEUE_URL set).
	Store *inmem.Store
	Queue *inmem.Queue
	// URL is the webhook URL: the root of the server; empty for the delivery role.
	URL string
	// ResponseURL is where bot messages go.
	ResponseURL string
	// SigningSecrets are the whsec_ secrets the default channel's webhooks are signed with.
	SigningSecrets string
	// AdminToken authenticates the operator API (channels and tokens).
	AdminToken string

	queue   queue
	srv     *http.Server
	served  chan error
	cancel  context.CancelFunc
	workers sync.WaitGroup
}

// Server timeouts: a client dripping its body or holding an idle connection does not
// hold a connection for ever.
const (
	readTimeout = 30 * time.Second
	idleTimeout = 2 * time.Minute
)

// Start starts the stack and returns once it is listening. out receives what the
// inbox prints; log the request and delivery lines.
func Start(cfg Config, out io.Writer, log *slog.Logger) (*Stack, error) {
	s := &Stack{ResponseURL: cfg.ResponseURL, SigningSecrets: cfg.SigningSecrets, AdminToken: cfg.AdminToken, served: make(chan error, 1)}
	if s.AdminToken == "" {
		s.AdminToken = "adm_" + strings.TrimRight(base64.URLEncoding.EncodeToString(randomBytes(18)), "=")
	}
	var st store
	var err error
	if cfg.TableName != "" {
		st, s.queue, err = awsBackend(cfg)
		if err != nil {
			return nil, err
		}
	} else {
		s.Store = inmem.NewStore()
		s.Queue = inmem.NewQueue(inmem.QueueConfig{VisibilityTimeout: delivery.VisibilityTimeout(cfg.Delivery.BotTimeout), MaxReceives: delivery.MaxReceives})
		st, s.queue = s.Store, s.Queue
	}

	var ln net.Listener
	if cfg.Role != RoleDelivery {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
		}
		s.URL = "http://" + ln.Addr().String() + "/"
		if s.ResponseURL == "" {
			s.ResponseURL = "http://" + ln.Addr().String() + InboxPath
		}
	}
	if s.SigningSecrets == "" {
		s.SigningSecrets = newSecret()
	}
	closeAll := func(err error) (*Stack, error) {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	if s.ResponseURL == "" {
		return closeAll(errors.New("PARLEY_RESPONSE_ENDPOINT_URL is required for the delivery role: it has no inbox"))
	}
	var ch *delivery.Channel
	if cfg.Role != RoleInbound {
		if ch, err = defaultChannel(cfg, s, st); err != nil {
			return closeAll(err)
		}
	}

	con := newConsole(s.URL + strings.TrimPrefix(InboxPath, "/"))
	if ln != nil {
		secrets, _ := webhook.ParseSecrets(s.SigningSecrets)
		// PARLEY_TOKEN acts for the default channel; the tokens made with `parley token`
		// or `parley channel create` for theirs.
		auth := token.Either{token.NewStatic(cfg.Token), token.NewTable(st, time.Second)}
		in := inbound.New(st, s.queue, auth, inbound.Config{RecordTTL: cfg.RecordTTL, HistoryTTL: cfg.Delivery.HistoryTTL}, log)
		mux := http.NewServeMux()
		mux.Handle("POST "+InboxPath, &inbox{out: out, secrets: secrets})
		def := defaultSpec(cfg, s)
		op := &operator{queue: s.queue, auth: auth, service: admin.New(st, &def), adminToken: s.AdminToken}
		op.routes(mux)
		con.routes(mux, op)
		s.srv = &http.Server{Handler: route(mux, in), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
		s.srv.RegisterOnShutdown(con.shutdown)
		go func() { s.served <- s.srv.Serve(ln) }()
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if ch != nil {
		channels := channel.NewRegistry(ch, st, channel.Builder{Settings: cfg.Delivery, History: st})
		h := delivery.New(st, s.queue, channels, delivery.Config{HistoryTTL: cfg.Delivery.HistoryTTL, Disable: cfg.Delivery.Disable, Observe: con.observe}, log)
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			delivery.Poll(ctx, s.queue, h, delivery.PollConfig{Budget: delivery.FunctionTimeout(cfg.Delivery.BotTimeout)}, log)
		}()
	}
	return s, nil
}

// defaultChannel is the channel the stack's settings describe.
func defaultChannel(cfg Config, s *Stack, st store) (*delivery.Channel, error) {
	opts := cfg.BotOptions
	opts.History = st
	b, err := bot.New(cfg.Bot, opts)
	if err != nil {
		return nil, err
	}
	return channel.Builder{Settings: cfg.Delivery, History: st}.Assemble(message.DefaultChannel, b, s.ResponseURL, s.SigningSecrets, cfg.Delivery.Policy, cfg.Delivery.RateLimit)
}

// defaultSpec describes the default channel as the operator API lists it.
func defaultSpec(cfg Config, s *Stack) message.Channel {
	spec := message.Channel{ID: message.DefaultChannel, Name: "default (the local stack's settings)", ResponseURL: s.ResponseURL,
		SigningSecrets: s.SigningSecrets, Bot: message.BotSpec{Kind: cfg.Bot, HTTPURL: cfg.BotOptions.HTTPURL}}
	if spec.Bot.Kind == "" {
		spec.Bot.Kind = "echo"
	}
	if cfg.Bot == "llm" {
		l := cfg.BotOptions.LLM
		spec.Bot.LLM = &message.LLMSpec{Provider: l.Provider, BaseURL: l.BaseURL, Model: l.Model, APIKey: l.APIKey, SystemPrompt: l.SystemPrompt}
	}
	return spec
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// route sends /_parley/ to the stack's own pages and everything else to the API.
// Paths are not cleaned or redirected: "//" or "/./" is the API's JSON 404, as in AWS.
func route(local *http.ServeMux, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, ConsolePrefix) && (path.Clean(p) == p || path.Clean(p)+"/" == p) {
			local.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// awsBackend connects to DynamoDB and SQS — in AWS, or emulators through
// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SQS — with the usual AWS configuration.
func awsBackend(cfg Config) (store, queue, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		return nil, nil, fmt.Errorf("aws configuration: %w", err)
	}
	// DynamoDB Local's error answers fail the SDK's CRC32 check, which then warns on
	// every duplicate message; the check guards against a corrupt network, not a local one.
	ddb := awsenv.DynamoDB(awsCfg, os.Getenv, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = o.BaseEndpoint != nil })
	sq := awsenv.SQS(awsCfg, os.Getenv)
	return dynamo.New(ddb, cfg.TableName), sqsfifo.New(sq, cfg.QueueURL, cfg.DeadLetterQueueURL), nil
}

// Close stops accepting requests, lets requests in flight and the batches being
// delivered finish, and returns. Messages still queued are lost with the process: the
// local stack keeps nothing on disk.
func (s *Stack) Close(ctx context.Context) error {
	var err error
	if s.srv != nil {
		err = s.srv.Shutdown(ctx)
	} else {
		s.served <- http.ErrServerClosed
	}
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
	backend := "embedded store and queue (nothing kept on disk)"
	if cfg.TableName != "" {
		backend = "DynamoDB table " + cfg.TableName + " and SQS queue " + cfg.QueueURL
	}
	p := cfg.Delivery.Policy
	fmt.Fprintf(out, "Parley local stack (%s)\n  webhook URL   %s  (Authorization: bearer %s)\n  responses to  %s\n  bot           %s (answers after the POST, within %s)\n  signing       %s\n  retries       %d attempts, %s to %s apart\n  backend       %s\n  operator      PARLEY_ADMIN_TOKEN=%s  (parley channel|token ... --local %s)\n  console       %s\n\n",
		cfg.Role, s.URL, redact(cfg.Token), s.ResponseURL, cfg.Bot, cfg.Delivery.BotTimeout, secretNote(cfg.SigningSecrets, s.SigningSecrets), p.MaxAttempts, p.MinDelay, p.MaxDelay, backend,
		adminNote(cfg.AdminToken, s.AdminToken), strings.TrimSuffix(s.URL, "/"), consoleNote(s.URL))
	select {
	case <-ctx.Done():
	case err := <-s.served:
		s.served <- err
	}
	fmt.Fprintln(out, "\nshutting down…")
	shutdown, cancel := context.WithTimeout(context.Background(), cfg.Delivery.BotTimeout+cfg.Delivery.SendTimeout+5*time.Second)
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

// adminNote shows a token made for this run, and hides one that was configured.
func adminNote(configured, used string) string {
	if configured != "" {
		return "(as set)"
	}
	return used
}

// redact shows the default dev token, which is public anyway, and hides any other.
func redact(t string) string {
	if t == "dev-token" {
		return t
	}
	return "$PARLEY_TOKEN"
}
