package message

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Channel is the unit of tenancy: one backend and its bot. Everything a message
// touches — its de-duplication, its ids, its history, its deliveries, its dead letters —
// is scoped by its channel, and a token acts for one channel only.
//
// The default channel is the deployment's own settings (the environment); every other
// channel is data in the table, so a change takes effect within a minute, without a
// redeploy.
type Channel struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ResponseURL string `json:"responseUrl"`
	// SigningSecrets are the whsec_ secrets, newest first, space-separated: every
	// delivery carries one signature per secret, so a receiver can rotate.
	SigningSecrets string     `json:"signingSecrets,omitempty"`
	Bot            BotSpec    `json:"bot"`
	Retry          *RetrySpec `json:"retry,omitempty"` // nil: the deployment's policy
	// RateLimit spaces its POSTs to at most this many a second per function; 0: none.
	RateLimit float64   `json:"rateLimit,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// BotSpec says which bot answers a channel and how.
type BotSpec struct {
	Kind    string          `json:"kind"`            // echo, rules, llm or http
	Rules   json.RawMessage `json:"rules,omitempty"` // rules: the intents file's content; absent: the built-in example
	LLM     *LLMSpec        `json:"llm,omitempty"`
	HTTPURL string          `json:"httpUrl,omitempty"` // http: the bot service's Rasa REST webhook
}

// LLMSpec configures the llm bot of a channel. The API key is never stored with the
// channel in AWS: APIKeySecret names a Secrets Manager secret holding it. The local
// stack, which keeps nothing on disk, may hold the key itself.
type LLMSpec struct {
	Provider     string   `json:"provider,omitempty"`
	BaseURL      string   `json:"baseUrl,omitempty"`
	Model        string   `json:"model"`
	APIKeySecret string   `json:"apiKeySecret,omitempty"`
	APIKey       string   `json:"apiKey,omitempty"`
	SystemPrompt string   `json:"systemPrompt,omitempty"`
	Temperature  *float64 `json:"temperature,omitempty"`
	MaxTokens    int      `json:"maxTokens,omitempty"`
	History      *int     `json:"history,omitempty"`
}

// RetrySpec is a channel's own retry budget.
type RetrySpec struct {
	MinDelay    Duration `json:"minDelay"`
	MaxDelay    Duration `json:"maxDelay"`
	MaxAttempts int      `json:"maxAttempts"`
}

// Duration is a time.Duration that reads and writes as Go's text ("5s", "12h").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// BotKinds are the bots a channel can have.
var BotKinds = []string{"echo", "rules", "llm", "http"}

var channelID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// NewChannelID returns a fresh channel id: "ch_" and 16 base32 characters.
func NewChannelID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "ch_" + idEncoding.EncodeToString(b[:])
}

// Check reports what is wrong with a channel's settings, every problem at once, each
// naming its field. It does not check what only the delivery side can (a rules file's
// intents, a secret's existence): that happens when the channel's bot is built.
func (c Channel) Check() error {
	var problems []string
	bad := func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	}
	if !channelID.MatchString(c.ID) {
		bad("id", "%q: want 1–63 lowercase letters, digits, - or _", c.ID)
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > 200 {
		bad("name", "want 1–200 characters")
	}
	if u, err := url.Parse(c.ResponseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("responseUrl", "want an absolute http or https URL")
	}
	for _, s := range strings.Fields(c.SigningSecrets) {
		if !strings.HasPrefix(s, "whsec_") {
			bad("signingSecrets", "each secret starts with whsec_")
			break
		}
	}
	switch c.Bot.Kind {
	case "echo":
	case "rules":
		if len(c.Bot.Rules) > 0 && !json.Valid(c.Bot.Rules) {
			bad("bot.rules", "not valid JSON")
		}
	case "llm":
		if c.Bot.LLM == nil || c.Bot.LLM.Model == "" {
			bad("bot.llm.model", "the llm bot needs a model")
		}
	case "http":
		if u, err := url.Parse(c.Bot.HTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("bot.httpUrl", "the http bot needs an absolute http or https URL")
		}
	default:
		bad("bot.kind", "%q: want one of %s", c.Bot.Kind, strings.Join(BotKinds, ", "))
	}
	if c.RateLimit < 0 || c.RateLimit > 10000 {
		bad("rateLimit", "want 0 (none) to 10000 a second")
	}
	if r := c.Retry; r != nil && (r.MinDelay <= 0 || r.MaxDelay < r.MinDelay || r.MaxAttempts < 1) {
		bad("retry", "want minDelay > 0, maxDelay ≥ minDelay and maxAttempts ≥ 1")
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return Invalidf(strings.SplitN(problems[0], ":", 2)[0], "invalid_channel", "%s", strings.Join(problems, "; "))
}

// Redacted is the channel as it may be shown after it was created: the signing
// secrets and an llm key replaced by a mark that they are set.
func (c Channel) Redacted() Channel {
	if c.SigningSecrets != "" {
		c.SigningSecrets = fmt.Sprintf("(%d set)", len(strings.Fields(c.SigningSecrets)))
	}
	if c.Bot.LLM != nil && c.Bot.LLM.APIKey != "" {
		llm := *c.Bot.LLM
		llm.APIKey = "(set)"
		c.Bot.LLM = &llm
	}
	return c
}
