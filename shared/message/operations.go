package message

import "time"

// Attempt is one delivery attempt as the attempt log keeps it. A first-try success is
// not kept (it is in the JSON log): the log costs a write only when something failed.
type Attempt struct {
	At        time.Time `json:"at"`
	Outcome   string    `json:"outcome"`          // delivered, retry, gone, permanent, dead
	Status    int       `json:"status,omitempty"` // the HTTP status; 0 when no answer came
	Reason    string    `json:"reason"`           // "http 503", "timeout after 10s", "redirect 301 not followed"
	LatencyMs float64   `json:"latencyMs"`
	Answer    string    `json:"answer,omitempty"`   // the first KiB of the receiver's answer
	Location  string    `json:"location,omitempty"` // where a redirect pointed
}

// Delivery statuses of a bot message, as GET /v1/deliveries/{webhookId} reports them.
const (
	StatusDelivered = "delivered"
	StatusRetrying  = "retrying"
	StatusDead      = "dead"
	StatusUnknown   = "unknown" // nothing recorded: not yet tried, or delivered at the first try
)

// DeliveryLog is a bot message's attempt log, kept only once an attempt failed.
type DeliveryLog struct {
	WebhookID      string    `json:"webhookId"`
	ConversationID string    `json:"conversationId,omitempty"`
	Status         string    `json:"status"`
	Attempts       []Attempt `json:"attempts"`
	// Where the message is: its exchange.
	Key       Key       `json:"-"`
	CreatedAt time.Time `json:"-"`
}

// MaxLoggedAttempts bounds an attempt log: the first attempts and the latest.
const MaxLoggedAttempts = 50

// Health is a channel endpoint's state: a streak of consecutive failures, and whether
// it is disabled. A disabled endpoint gets no attempts; its messages wait in the
// queue, in order, until it is enabled again.
type Health struct {
	Channel    string    `json:"channel"`
	Failures   int       `json:"failures"`       // consecutive failed attempts
	Since      time.Time `json:"since,omitzero"` // the streak's first failure
	Disabled   bool      `json:"disabled"`
	DisabledAt time.Time `json:"disabledAt,omitzero"`
	Reason     string    `json:"reason,omitempty"` // why it was disabled
	Recent     []Attempt `json:"recent"`           // the latest failures, newest last
}

// RecentFailures is how many failures Health keeps.
const RecentFailures = 5

// Target names the bot message a replay job sends again.
type Target struct {
	Ref       string    `json:"ref"`       // its exchange's ref
	CreatedAt time.Time `json:"createdAt"` // its exchange's time
	WebhookID string    `json:"webhookId"`
}

// DisableRule says when a failing endpoint is disabled: after Failures consecutive
// failed attempts spanning at least Span (Svix disables after five days of failures;
// Parley's defaults are 20 attempts over 24 hours). A 410 Gone disables at once.
type DisableRule struct {
	Failures int
	Span     time.Duration
}

// Disables reports whether h, just after a failure at now, crosses the rule.
func (r DisableRule) Disables(h Health, now time.Time) bool {
	return r.Failures > 0 && h.Failures >= r.Failures && !h.Since.IsZero() && now.Sub(h.Since) >= r.Span
}
