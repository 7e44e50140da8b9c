package delivery

import (
	"fmt"
	"time"

	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/settings"
	"github.com/parley-chat/parley/shared/webhook"
)

// Bot timeouts. LLM and agent bots routinely take 5–60 s; the bot runs behind the
// queue, so the POST that brought the message is answered long before.
const (
	DefaultBotTimeout = 30 * time.Second
	MaxBotTimeout     = 5 * time.Minute
)

// FunctionTimeout is how long one batch may run: one job's bot and two POSTs at their
// longest, with room to settle. A batch with more work than that hands the rest back;
// every job gets a whole budget when it starts.
func FunctionTimeout(botTimeout time.Duration) time.Duration {
	return botTimeout + 2*webhook.MaxTimeout + 20*time.Second
}

// VisibilityTimeout is the queue's: six times the function timeout, Lambda's guidance
// for SQS sources, so a batch Lambda retries after a throttle is not handed out twice.
func VisibilityTimeout(botTimeout time.Duration) time.Duration {
	return min(6*FunctionTimeout(botTimeout), MaxVisibility)
}

// Settings are the delivery side's settings: the default channel's, and for every
// channel what it does not set itself.
type Settings struct {
	Policy      Policy
	SendTimeout time.Duration // one POST
	BotTimeout  time.Duration
	HistoryTTL  time.Duration
	Disable     message.DisableRule // when a failing endpoint is disabled
	RateLimit   float64             // the default channel's POSTs a second per function; 0: none
}

// ConfigFromEnv reads the retry budget, the timeouts and the history TTL —
// PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS,
// PARLEY_DELIVERY_TIMEOUT, PARLEY_BOT_TIMEOUT and PARLEY_HISTORY_TTL — with the
// defaults for those unset. The Lambda and the local stack read them the same way;
// problems are noted in r.
func ConfigFromEnv(r *envvar.Reader) Settings {
	p := DefaultPolicy
	p.MinDelay = settings.RetryMinDelay.Duration(r)
	p.MaxDelay = settings.RetryMaxDelay.Duration(r)
	p.MaxAttempts = settings.MaxAttempts.Int(r)
	p.HoldLimit = settings.HoldLimit.Duration(r)
	s := Settings{
		Disable:     message.DisableRule{Failures: settings.DisableAfterFailures.Int(r), Span: settings.DisableAfter.Duration(r)},
		RateLimit:   *settings.EndpointRateLimit.Float(r),
		Policy:      p,
		SendTimeout: settings.DeliveryTimeout.Duration(r),
		BotTimeout:  settings.BotTimeout.Duration(r),
		HistoryTTL:  settings.HistoryTTL.Duration(r),
	}
	r.Check(s.Validate())
	return s
}

// Validate checks the rules between settings — the one place they live, used by the
// functions, the local stack and the CDK app: the retry budget, at the maximum delay a
// receiver can force, and the hold limit must fit in the queue's retention.
func (s Settings) Validate() error {
	if err := s.Policy.Validate(); err != nil {
		return fmt.Errorf("retry budget (PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS, PARLEY_HOLD_LIMIT): %w", err)
	}
	return nil
}
