// Package ttlmap is the cache a warm function keeps of what it reads from the table or
// Secrets Manager — tokens, channels, endpoint health, secrets — so that it reads each
// about once per TTL, not once a message.
package ttlmap

import (
	"sync"
	"time"
)

// MaxEntries bounds a Map: past it the map is cleared and the next reads refill it.
const MaxEntries = 10000

// Map keeps values by key for TTL. Callers pass the time, so each keeps its own clock.
type Map[V any] struct {
	TTL   time.Duration
	mu    sync.Mutex
	items map[string]entry[V]
}

type entry[V any] struct {
	value V
	until time.Time
}

// New is a map keeping values for ttl.
func New[V any](ttl time.Duration) *Map[V] {
	return &Map[V]{TTL: ttl, items: map[string]entry[V]{}}
}

// Get is key's value at now. fresh: within its TTL. found: there is one at all — an
// expired value is returned too, for a caller whose read fails to fall back on.
func (m *Map[V]) Get(key string, now time.Time) (v V, fresh, found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, found := m.items[key]
	return e.value, found && now.Before(e.until), found
}

// Put keeps v for key from now for the TTL.
func (m *Map[V]) Put(key string, v V, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.items) >= MaxEntries {
		clear(m.items)
	}
	m.items[key] = entry[V]{v, now.Add(m.TTL)}
}

// Delete forgets key.
func (m *Map[V]) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
}
