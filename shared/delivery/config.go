package delivery

import (
	"fmt"
	"time"

	"github.com/parley-chat/parley/shared/envvar"
)

// ConfigFromEnv reads the retry budget and the delivery timeout —
// PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS and
// PARLEY_DELIVERY_TIMEOUT — with the defaults for those unset. The Lambda and the
// local stack read them the same way; problems are noted in r.
func ConfigFromEnv(r *envvar.Reader) (Policy, time.Duration) {
	p := DefaultPolicy
	p.MinDelay = r.Duration("PARLEY_RETRY_MIN_DELAY", p.MinDelay, time.Millisecond, MaxVisibility)
	p.MaxDelay = r.Duration("PARLEY_RETRY_MAX_DELAY", p.MaxDelay, time.Millisecond, MaxVisibility)
	p.MaxAttempts = r.Int("PARLEY_MAX_ATTEMPTS", p.MaxAttempts, 1, 100)
	timeout := r.Duration("PARLEY_DELIVERY_TIMEOUT", 10*time.Second, time.Millisecond, 30*time.Second)
	if err := p.Validate(); err != nil {
		r.Check(fmt.Errorf("retry budget (PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS): %w", err))
	}
	return p, timeout
}
