// Package admin is what an operator does to a deployment: channels and their tokens.
// The CLI runs it against the table in AWS, and the local stack serves it over HTTP
// to the same CLI, so both behave the same.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

// Store keeps channels and tokens.
type Store interface {
	// PutChannel writes c: a new one when create (message.ErrExists if the id is taken),
	// otherwise over an existing one (message.ErrNotFound if there is none).
	PutChannel(ctx context.Context, c message.Channel, create bool) error
	GetChannel(ctx context.Context, id string) (message.Channel, bool, error)
	ListChannels(ctx context.Context) ([]message.Channel, error)
	DeleteChannel(ctx context.Context, id string) error
	PutToken(ctx context.Context, t message.Token) error
	ListTokens(ctx context.Context) ([]message.Token, error)
	DeleteTokens(ctx context.Context, id string) (int, error)
	Health(ctx context.Context, channel string) (message.Health, error)
	EnableEndpoint(ctx context.Context, channel string) error
}

// Errors a Store and the Service return: message.ErrExists, message.ErrNotFound, and
var (
	// ErrDefault: the default channel is the deployment's settings, not data.
	ErrDefault = errors.New("the default channel is defined by the deployment's settings (PARLEY_* variables locally, the CDK context or SAM parameters in AWS); change them there")
)

// Service runs the operations on a Store.
type Service struct {
	store Store
	// def describes the default channel, when the caller knows it (the local stack
	// does; the CLI against AWS does not: it lives in the stack's settings).
	def *message.Channel
	now func() time.Time
}

// New returns a Service. def may be nil.
func New(store Store, def *message.Channel) *Service {
	return &Service{store: store, def: def, now: time.Now}
}

// Created is a new channel with what is shown only once: its first (backend) token and
// its signing secret.
type Created struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Token         string          `json:"token"`
	SigningSecret string          `json:"signingSecret"`
	Channel       message.Channel `json:"channel"`
}

// CreateChannel stores a new channel — a fresh id unless c has one, a fresh signing
// secret unless c has some — with a first backend token.
func (s *Service) CreateChannel(ctx context.Context, c message.Channel) (Created, error) {
	if c.ID == "" {
		c.ID = message.NewChannelID()
	}
	if c.ID == message.DefaultChannel {
		return Created{}, ErrDefault
	}
	if c.SigningSecrets == "" {
		c.SigningSecrets = NewSigningSecret()
	}
	if c.Bot.Kind == "" {
		c.Bot.Kind = "echo"
	}
	c.CreatedAt = s.now().UTC().Truncate(time.Millisecond)
	c.UpdatedAt = c.CreatedAt
	if err := c.Check(); err != nil {
		return Created{}, err
	}
	// Check looks at the whsec_ prefix only: a secret that does not decode would fail
	// every delivery of the channel, when its sender is built.
	if _, err := webhook.ParseSecrets(c.SigningSecrets); err != nil {
		return Created{}, message.Invalidf("signingSecrets", "invalid_channel", "signingSecrets: %s", err)
	}
	if err := s.store.PutChannel(ctx, c, true); err != nil {
		return Created{}, fmt.Errorf("channel %s: %w", c.ID, err)
	}
	plain, _, err := s.CreateToken(ctx, c.ID, c.Name+" backend", message.ScopeBackend)
	if err != nil {
		return Created{}, err
	}
	return Created{ID: c.ID, Name: c.Name, Token: plain, SigningSecret: strings.Fields(c.SigningSecrets)[0], Channel: c.Redacted()}, nil
}

// Patch changes some of a channel's settings; nil fields stay as they are.
type Patch struct {
	Name        *string            `json:"name,omitempty"`
	ResponseURL *string            `json:"responseUrl,omitempty"`
	Bot         *message.BotSpec   `json:"bot,omitempty"`
	Retry       *message.RetrySpec `json:"retry,omitempty"`
	// RotateSecret adds a fresh signing secret in front of the current ones: deliveries
	// carry a signature for each, so receivers can switch; DropOldSecrets then keeps only
	// the newest.
	RotateSecret   bool `json:"rotateSecret,omitempty"`
	DropOldSecrets bool `json:"dropOldSecrets,omitempty"`
}

// Updated is a changed channel, with the new signing secret when one was made.
type Updated struct {
	Channel       message.Channel `json:"channel"`
	SigningSecret string          `json:"signingSecret,omitempty"`
}

// UpdateChannel applies p to a channel.
func (s *Service) UpdateChannel(ctx context.Context, id string, p Patch) (Updated, error) {
	if id == message.DefaultChannel {
		return Updated{}, ErrDefault
	}
	c, found, err := s.store.GetChannel(ctx, id)
	if err != nil {
		return Updated{}, err
	}
	if !found {
		return Updated{}, fmt.Errorf("channel %s: %w", id, message.ErrNotFound)
	}
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.ResponseURL != nil {
		c.ResponseURL = *p.ResponseURL
	}
	if p.Bot != nil {
		c.Bot = *p.Bot
	}
	if p.Retry != nil {
		c.Retry = p.Retry
		if p.Retry.MaxAttempts == 0 {
			c.Retry = nil // back to the deployment's policy
		}
	}
	var fresh string
	if p.RotateSecret {
		fresh = NewSigningSecret()
		c.SigningSecrets = strings.TrimSpace(fresh + " " + c.SigningSecrets)
	}
	if p.DropOldSecrets {
		c.SigningSecrets = strings.Fields(c.SigningSecrets)[0]
	}
	c.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	if err := c.Check(); err != nil {
		return Updated{}, err
	}
	if err := s.store.PutChannel(ctx, c, false); err != nil {
		return Updated{}, fmt.Errorf("channel %s: %w", id, err)
	}
	return Updated{Channel: c.Redacted(), SigningSecret: fresh}, nil
}

// DeleteChannel deletes a channel and its tokens, and returns how many tokens went.
// Its conversations are not touched: they expire with their TTL, and its jobs still
// queued go to the dead-letter queue ("channel does not exist").
func (s *Service) DeleteChannel(ctx context.Context, id string) (int, error) {
	if id == message.DefaultChannel {
		return 0, ErrDefault
	}
	if _, found, err := s.store.GetChannel(ctx, id); err != nil {
		return 0, err
	} else if !found {
		return 0, fmt.Errorf("channel %s: %w", id, message.ErrNotFound)
	}
	toks, err := s.Tokens(ctx, id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range toks {
		d, err := s.store.DeleteTokens(ctx, t.Hash)
		if err != nil {
			return n, err
		}
		n += d
	}
	return n, s.store.DeleteChannel(ctx, id)
}

// Channels lists the channels, the default first when known, secrets redacted.
func (s *Service) Channels(ctx context.Context) ([]message.Channel, error) {
	list, err := s.store.ListChannels(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]message.Channel, 0, len(list)+1)
	if s.def != nil {
		out = append(out, s.def.Redacted())
	}
	for _, c := range list {
		out = append(out, c.Redacted())
	}
	return out, nil
}

// Channel returns one channel, secrets redacted.
func (s *Service) Channel(ctx context.Context, id string) (message.Channel, error) {
	if id == message.DefaultChannel {
		if s.def == nil {
			return message.Channel{}, ErrDefault
		}
		return s.def.Redacted(), nil
	}
	c, found, err := s.store.GetChannel(ctx, id)
	if err != nil {
		return message.Channel{}, err
	}
	if !found {
		return message.Channel{}, fmt.Errorf("channel %s: %w", id, message.ErrNotFound)
	}
	return c.Redacted(), nil
}

// Scopes are the token scopes.
var Scopes = []string{message.ScopeBackend, message.ScopeBot}

// CreateToken makes a token for a channel and returns it; only its hash is stored.
func (s *Service) CreateToken(ctx context.Context, channel, name, scope string) (string, message.Token, error) {
	if scope == "" {
		scope = message.ScopeBackend
	}
	if !slices.Contains(Scopes, scope) {
		return "", message.Token{}, fmt.Errorf("scope %q: want backend or bot", scope)
	}
	if strings.TrimSpace(name) == "" {
		return "", message.Token{}, errors.New("a token needs a name (--name)")
	}
	if channel == "" {
		channel = message.DefaultChannel
	}
	if channel != message.DefaultChannel {
		if _, found, err := s.store.GetChannel(ctx, channel); err != nil {
			return "", message.Token{}, err
		} else if !found {
			return "", message.Token{}, fmt.Errorf("channel %s: %w", channel, message.ErrNotFound)
		}
	}
	plain, t := token.Generate(name, s.now())
	t.Channel, t.Scope = channel, scope
	if err := s.store.PutToken(ctx, t); err != nil {
		return "", message.Token{}, err
	}
	return plain, t, nil
}

// Tokens lists a channel's tokens ("" for all), oldest first.
func (s *Service) Tokens(ctx context.Context, channel string) ([]message.Token, error) {
	all, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	var out []message.Token
	for _, t := range all {
		ch := t.Channel
		if ch == "" {
			ch = message.DefaultChannel
		}
		if channel == "" || ch == channel {
			out = append(out, t)
		}
	}
	return out, nil
}

// RevokeToken deletes the tokens whose id starts with id; functions stop accepting
// them within a minute (their cache).
func (s *Service) RevokeToken(ctx context.Context, id string) (int, error) {
	n, err := s.store.DeleteTokens(ctx, id)
	if err == nil && n == 0 {
		err = fmt.Errorf("token %s: %w", id, message.ErrNotFound)
	}
	return n, err
}

// EndpointStatus is a channel endpoint's health: its failure streak, its recent
// failures, and whether it is disabled.
func (s *Service) EndpointStatus(ctx context.Context, channel string) (message.Health, error) {
	if err := s.exists(ctx, channel); err != nil {
		return message.Health{}, err
	}
	return s.store.Health(ctx, channel)
}

// EnableEndpoint gives a disabled endpoint attempts again: its waiting messages go out
// in order, within the minute functions keep its health.
func (s *Service) EnableEndpoint(ctx context.Context, channel string) (message.Health, error) {
	if err := s.exists(ctx, channel); err != nil {
		return message.Health{}, err
	}
	if err := s.store.EnableEndpoint(ctx, channel); err != nil {
		return message.Health{}, err
	}
	return s.store.Health(ctx, channel)
}

func (s *Service) exists(ctx context.Context, channel string) error {
	if channel == message.DefaultChannel {
		return nil
	}
	_, found, err := s.store.GetChannel(ctx, channel)
	if err == nil && !found {
		err = fmt.Errorf("channel %s: %w", channel, message.ErrNotFound)
	}
	return err
}

// NewSigningSecret makes a signing secret: whsec_ and 32 random bytes in base64.
func NewSigningSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}
