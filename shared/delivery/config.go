package delivery

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ConfigFromEnv reads the retry budget and the delivery timeout through getenv —
// PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS and
// PARLEY_DELIVERY_TIMEOUT — with the defaults for those unset, and reports every bad
// value at once. The Lambda and the local stack read them the same way.
func ConfigFromEnv(getenv func(string) string) (Policy, time.Duration, error) {
	p, timeout := DefaultPolicy, 10*time.Second
	var errs []error
	duration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a Go duration such as 5s or 2m", name, v))
				return
			}
			*dst = d
		}
	}
	duration("PARLEY_RETRY_MIN_DELAY", &p.MinDelay)
	duration("PARLEY_RETRY_MAX_DELAY", &p.MaxDelay)
	duration("PARLEY_DELIVERY_TIMEOUT", &timeout)
	if v := getenv("PARLEY_MAX_ATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PARLEY_MAX_ATTEMPTS=%q: want a whole number", v))
		}
		p.MaxAttempts = n
	}
	if err := p.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry budget (PARLEY_RETRY_MIN_DELAY, PARLEY_RETRY_MAX_DELAY, PARLEY_MAX_ATTEMPTS): %w", err))
	}
	if timeout <= 0 || timeout > 30*time.Second {
		errs = append(errs, fmt.Errorf("PARLEY_DELIVERY_TIMEOUT=%s: want more than 0 and at most 30s", timeout))
	}
	return p, timeout, errors.Join(errs...)
}
