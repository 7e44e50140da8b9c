// Package fakeclock is a time that moves only when a test moves it, safe to read from
// the goroutines of the code under test.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a settable time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New is a clock standing at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
