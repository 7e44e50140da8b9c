package delivery_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
)

func TestPolicy(t *testing.T) {
	p := delivery.DefaultPolicy
	want := []time.Duration{5 * time.Second, 15 * time.Second, 45 * time.Second, 135 * time.Second, 405 * time.Second,
		1215 * time.Second, 3645 * time.Second, 10935 * time.Second, 32805 * time.Second, 12 * time.Hour, 12 * time.Hour}
	var total time.Duration
	for n := 1; n <= len(want); n++ {
		if got := p.Delay(n); got != want[n-1] {
			t.Errorf("Delay(%d) = %s, want %s", n, got, want[n-1])
		}
		if n < p.MaxAttempts {
			total += p.Delay(n)
		}
	}
	if total < 24*time.Hour || total > 30*time.Hour {
		t.Errorf("the default budget spans %s, want about a day", total)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("the default policy: %v", err)
	}
	// Every wait at the maximum, which a receiver's Retry-After can force: 28 waits of
	// 12h fit in 14 days, 29 do not.
	if err := (delivery.Policy{MinDelay: time.Second, MaxDelay: 12 * time.Hour, MaxAttempts: 29}).Validate(); err != nil {
		t.Errorf("29 attempts, 28 waits of at most 12h, fit in 14 days: %v", err)
	}
	// The case that used to pass: a 1h cap that a receiver's Retry-After overrode.
	if err := (delivery.Policy{MinDelay: 5 * time.Second, MaxDelay: time.Hour, MaxAttempts: 50}).Validate(); err != nil {
		t.Errorf("49 waits of at most 1h fit now that Retry-After is capped too: %v", err)
	}
	for _, bad := range []delivery.Policy{
		{MinDelay: 0, MaxDelay: time.Hour, MaxAttempts: 3},
		{MinDelay: time.Minute, MaxDelay: time.Second, MaxAttempts: 3},
		{MinDelay: time.Second, MaxDelay: 13 * time.Hour, MaxAttempts: 3},
		{MinDelay: time.Second, MaxDelay: time.Hour, MaxAttempts: 0},
		{MinDelay: time.Second, MaxDelay: 12 * time.Hour, MaxAttempts: 30}, // 29 waits of 12h: 14.5 days
		{MinDelay: 5 * time.Second, MaxDelay: 4 * time.Hour, MaxAttempts: 100},
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

// A receiver's Retry-After stretches a wait, but never past the maximum delay.
func TestRetryDelay(t *testing.T) {
	p := delivery.Policy{MinDelay: time.Second, MaxDelay: time.Minute, MaxAttempts: 10, Jitter: 0.2}
	for _, tc := range []struct {
		n          int
		spread     float64
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 1, 0, time.Second},
		{1, 0.8, 0, time.Second}, // jitter never goes below the minimum
		{2, 1.2, 0, 3600 * time.Millisecond},
		{6, 1.2, 0, time.Minute}, // nor above the maximum
		{1, 1, 10 * time.Second, 10 * time.Second},
		{1, 1, 12 * time.Hour, time.Minute},
	} {
		if got := p.RetryDelay(tc.n, tc.spread, tc.retryAfter); got != tc.want {
			t.Errorf("RetryDelay(%d, %g, %s) = %s, want %s", tc.n, tc.spread, tc.retryAfter, got, tc.want)
		}
	}
}

// The function timeout fits one job's bot and POSTs; the visibility outlasts it six
// times, within SQS's 12 hours.
func TestTiming(t *testing.T) {
	for _, bot := range []time.Duration{time.Second, delivery.DefaultBotTimeout, delivery.MaxBotTimeout} {
		fn, vis := delivery.FunctionTimeout(bot), delivery.VisibilityTimeout(bot)
		if fn < bot+2*30*time.Second || fn > 15*time.Minute || vis != 6*fn || vis > delivery.MaxVisibility {
			t.Errorf("bot %s: function %s, visibility %s", bot, fn, vis)
		}
	}
}
