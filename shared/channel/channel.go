// Package channel turns channels — data in the table — into what the delivery side
// runs: each channel's bot, its signed sender and its retry policy, built once and kept
// for a minute per warm function, so a change to a channel takes effect within a
// minute without a redeploy, and a message costs no read for it.
package channel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/ttlmap"
	"github.com/parley-chat/parley/shared/webhook"
)

// Store reads channels.
type Store interface {
	GetChannel(ctx context.Context, id string) (message.Channel, bool, error)
}

// Secrets reads a secret by name or ARN: Secrets Manager in AWS.
type Secrets interface {
	Secret(ctx context.Context, name string) (string, error)
}

// CacheTTL is how long a built channel is used before it is read again.
const CacheTTL = time.Minute

// Registry implements delivery.Channels: the default channel, built at start from the
// deployment's settings, and every other channel from the store, cached.
type Registry struct {
	store   Store
	builder Builder
	def     *delivery.Channel
	now     func() time.Time
	cache   *ttlmap.Map[built]
}

// built is a channel's runtime and the settings' time it was built from.
type built struct {
	ch      *delivery.Channel
	updated time.Time
}

// NewRegistry returns a Registry serving def as the default channel and the others
// from store, built by b. store may be nil: then only the default channel exists.
func NewRegistry(def *delivery.Channel, store Store, b Builder) *Registry {
	return &Registry{store: store, builder: b, def: def, now: time.Now, cache: ttlmap.New[built](CacheTTL)}
}

// Channel implements delivery.Channels.
func (r *Registry) Channel(ctx context.Context, id string) (*delivery.Channel, error) {
	if id == message.DefaultChannel && r.def != nil {
		return r.def, nil
	}
	now := r.now()
	c, fresh, ok := r.cache.Get(id, now)
	if fresh {
		return c.ch, nil
	}
	if r.store == nil {
		return nil, fmt.Errorf("%w: %q", delivery.ErrNoChannel, id)
	}
	spec, found, err := r.store.GetChannel(ctx, id)
	if err != nil {
		if ok {
			return c.ch, nil // the last known settings beat a failed delivery
		}
		return nil, err
	}
	if !found {
		r.cache.Delete(id)
		return nil, fmt.Errorf("%w: %q", delivery.ErrNoChannel, id)
	}
	if ok && spec.UpdatedAt.Equal(c.updated) {
		r.cache.Put(id, c, now)
		return c.ch, nil
	}
	ch, err := r.builder.Build(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", id, err)
	}
	r.cache.Put(id, built{ch, spec.UpdatedAt}, now)
	return ch, nil
}

// Builder builds a channel's runtime from its settings and the deployment's.
type Builder struct {
	Settings delivery.Settings // the deployment's timeouts and default retry policy
	History  bot.HistoryReader // what the llm bot reads
	Secrets  Secrets           // nil: llm keys must be in the channel (the local stack)
	Client   *http.Client      // the bots' HTTP client; nil: their own
}

// Build implements the channel: its bot, its signed sender, its policy.
func (b Builder) Build(ctx context.Context, c message.Channel) (*delivery.Channel, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	opts := bot.Options{History: b.History, Client: b.Client, Rules: c.Bot.Rules, HTTPURL: c.Bot.HTTPURL}
	if l := c.Bot.LLM; l != nil {
		opts.LLM = bot.LLMConfig{Provider: l.Provider, BaseURL: l.BaseURL, Model: l.Model, APIKey: l.APIKey,
			SystemPrompt: l.SystemPrompt, Temperature: l.Temperature, MaxTokens: l.MaxTokens, History: bot.DefaultHistory}
		if l.History != nil {
			opts.LLM.History = *l.History
		}
		if l.APIKeySecret != "" {
			if b.Secrets == nil {
				return nil, errors.New("bot.llm.apiKeySecret: no secret store here; give the key itself")
			}
			key, err := b.Secrets.Secret(ctx, l.APIKeySecret)
			if err != nil {
				return nil, fmt.Errorf("bot.llm.apiKeySecret: %w", err)
			}
			opts.LLM.APIKey = key
		}
	}
	bt, err := bot.New(c.Bot.Kind, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", botField(c.Bot.Kind), err)
	}
	policy := b.Settings.Policy
	if r := c.Retry; r != nil {
		policy.MinDelay, policy.MaxDelay, policy.MaxAttempts = time.Duration(r.MinDelay), time.Duration(r.MaxDelay), r.MaxAttempts
		if err := policy.Validate(); err != nil {
			return nil, fmt.Errorf("retry: %w", err)
		}
	}
	return b.Assemble(c.ID, bt, c.ResponseURL, c.SigningSecrets, policy, c.RateLimit)
}

// Assemble makes a channel's runtime from its bot and endpoint: a sender signing with
// secrets, the deployment's timeouts, policy, and a rate limit (POSTs a second; 0:
// none). The default channel, made from the deployment's settings, is assembled here
// too. Errors name the channel field: signingSecrets or responseUrl.
func (b Builder) Assemble(id string, bt delivery.Bot, url, secrets string, policy delivery.Policy, rate float64) (*delivery.Channel, error) {
	signer, err := webhook.NewSigner(secrets)
	if err != nil {
		return nil, fmt.Errorf("signingSecrets: %w", err)
	}
	s := b.Settings
	sender, err := webhook.NewSender(webhook.Config{URL: url, Timeout: s.SendTimeout, Signer: signer})
	if err != nil {
		return nil, fmt.Errorf("responseUrl: %w", err)
	}
	return &delivery.Channel{ID: id, Bot: bt, BotTimeout: s.BotTimeout, Sender: sender, SendTimeout: s.SendTimeout, Policy: policy,
		Limiter: delivery.NewLimiter(rate)}, nil
}

// botField names the channel field a bot of kind is built from, for its errors.
func botField(kind string) string {
	switch kind {
	case "rules":
		return "bot.rules"
	case "llm":
		return "bot.llm"
	case "http":
		return "bot.httpUrl"
	}
	return "bot.kind"
}
