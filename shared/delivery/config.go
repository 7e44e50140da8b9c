package delivery

import (
	"fmt"
	"time"

	"github.com/parley-chat/parley/shared/envvar"
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

// Settings are the delivery side's settings that are the same for every channel.
type Settings struct {
	Policy      Policy
	SendTimeout time.Duration // one POST
	BotTimeout  time.Duration
	HistoryTTL  time.Duration
}

// ConfigFromEnv reads the retry budget, the timeouts and the history TTL —
// PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS,
// PARLEY_DELIVERY_TIMEOUT, PARLEY_BOT_TIMEOUT and PARLEY_HISTORY_TTL — with the
// defaults for those unset. The Lambda and the local stack read them the same way;
// problems are noted in r.
func ConfigFromEnv(r *envvar.Reader) Settings {
	p := DefaultPolicy
	p.MinDelay = r.Duration("PARLEY_RETRY_MIN_DELAY", p.MinDelay, time.Millisecond, MaxVisibility)
	p.MaxDelay = r.Duration("PARLEY_RETRY_MAX_DELAY", p.MaxDelay, time.Millisecond, MaxVisibility)
	p.MaxAttempts = r.Int("PARLEY_MAX_ATTEMPTS", p.MaxAttempts, 1, 100)
	if err := p.Validate(); err != nil {
		r.Check(fmt.Errorf("retry budget (PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS): %w", err))
	}
	return Settings{
		Policy:      p,
		SendTimeout: r.Duration("PARLEY_DELIVERY_TIMEOUT", webhook.DefaultTimeout, time.Millisecond, webhook.MaxTimeout),
		BotTimeout:  r.Duration("PARLEY_BOT_TIMEOUT", DefaultBotTimeout, time.Millisecond, MaxBotTimeout),
		HistoryTTL:  r.Duration("PARLEY_HISTORY_TTL", 30*24*time.Hour, MinHistoryTTL, 365*24*time.Hour),
	}
}
