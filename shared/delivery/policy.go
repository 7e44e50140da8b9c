package delivery

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxReceives is the queue's redrive budget: SQS's maximum. The redrive policy is only
// the backstop for a job that crashes the function every time; the delivery side's own
// attempt count decides when a job is given up. A tighter budget would dead-letter jobs
// never attempted: every job held back behind a failing one of its conversation is
// received again with it.
const MaxReceives = 1000

// Retention is how long the queues keep a message (SQS's maximum, as deployed).
const Retention = 14 * 24 * time.Hour

// MaxVisibility is SQS's ceiling for a visibility timeout, so for one retry delay.
const MaxVisibility = 12 * time.Hour

// Policy is the retry budget.
type Policy struct {
	MinDelay    time.Duration // delay after the first failed attempt; default 5s
	MaxDelay    time.Duration // cap on one delay, a receiver's Retry-After included; default 12h
	MaxAttempts int           // attempts in all, the first included; default 11
	// Jitter spreads each delay by up to ± this fraction, so receivers coming back
	// from an outage are not hit by every message at once.
	Jitter float64
	// HoldLimit is how long a failing message may hold the rest of its conversation
	// back; past it, it goes to the dead-letter queue and the conversation goes on.
	// 0: strict order for ever.
	HoldLimit time.Duration
}

// DefaultPolicy spaces 11 attempts over about 26 hours: 5s, 15s, 45s, 2m15s, ~7m,
// ~20m, ~1h, ~3h, ~9h, 12h — seconds first, then hours, like Svix and Standard Webhooks.
var DefaultPolicy = Policy{MinDelay: 5 * time.Second, MaxDelay: MaxVisibility, MaxAttempts: 11, Jitter: 0.2, HoldLimit: time.Hour}

// Validate reports a policy SQS cannot carry out.
func (p Policy) Validate() error {
	var errs []error
	if p.MinDelay <= 0 {
		errs = append(errs, fmt.Errorf("minimum retry delay %s must be positive", p.MinDelay))
	}
	if p.MaxDelay < p.MinDelay || p.MaxDelay > MaxVisibility {
		errs = append(errs, fmt.Errorf("maximum retry delay %s must be between the minimum %s and %s", p.MaxDelay, p.MinDelay, MaxVisibility))
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("jitter %g must be at least 0 and below 1", p.Jitter))
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("max attempts %d must be between 1 and 100", p.MaxAttempts))
	}
	if errs == nil {
		// SQS deletes a message after its retention: a schedule longer than that would
		// lose a message between attempts instead of dead-lettering it. The worst case
		// is a receiver whose Retry-After stretches every wait to the maximum delay.
		if span := p.WorstCase() + p.Behind(); span > Retention {
			errs = append(errs, fmt.Errorf("a message may wait %s behind its conversation's failing head and then take %s for %d attempts when a receiver asks for the maximum delay each time: more than the queue's %s retention; lower the attempts, the maximum delay or the hold limit",
				p.Behind(), p.WorstCase().Round(time.Minute), p.MaxAttempts, Retention))
		}
		if p.HoldLimit < 0 {
			errs = append(errs, fmt.Errorf("hold limit %s must not be negative (0: strict order)", p.HoldLimit))
		}
	}
	return errors.Join(errs...)
}

// WorstCase is the longest time the attempts of one message can span: every wait at
// the maximum delay, which a receiver's Retry-After can force.
func (p Policy) WorstCase() time.Duration {
	return time.Duration(max(p.MaxAttempts-1, 0)) * p.MaxDelay
}

// Behind is the longest a message may wait behind a failing head of its conversation:
// the hold limit, and the head's last wait, since it steps aside at its next failed
// attempt. Strict order (no hold limit) bounds nothing: the operator watches the
// oldest-message alarm instead.
func (p Policy) Behind() time.Duration {
	if p.HoldLimit <= 0 {
		return 0
	}
	return p.HoldLimit + p.MaxDelay
}

// Delay is the wait after failed attempt n (1-based), without jitter: MinDelay·3^(n-1),
// capped at MaxDelay.
func (p Policy) Delay(n int) time.Duration {
	d := float64(p.MinDelay) * math.Pow(3, float64(max(n-1, 0)))
	if d > float64(p.MaxDelay) {
		return p.MaxDelay
	}
	return time.Duration(d)
}

// RetryDelay is the wait after failed attempt n: the backoff spread by spread (a
// factor in [1-Jitter, 1+Jitter]) and kept within [MinDelay, MaxDelay], or the
// receiver's Retry-After when that is longer — but never past MaxDelay, which is the
// operator's promise of how long a message may wait.
func (p Policy) RetryDelay(n int, spread float64, retryAfter time.Duration) time.Duration {
	d := min(max(time.Duration(float64(p.Delay(n))*spread), p.MinDelay), p.MaxDelay)
	return min(max(d, retryAfter), p.MaxDelay)
}
