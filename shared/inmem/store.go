package inmem

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// Store keeps idempotency records and token hashes in memory.
type Store struct {
	mu      sync.Mutex
	records map[string]message.Record
	tokens  map[string]message.Token
	failed  map[string]int
	history map[string][]historyEntry
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{records: map[string]message.Record{}, tokens: map[string]message.Token{}, failed: map[string]int{}}
}

// live mirrors the DynamoDB condition: a record blocks a new one unless it expired,
// or it is in progress under an expired lease. Times compare at the stored precision.
func live(r message.Record, now time.Time) bool {
	if r.ExpiresAt.Unix() < now.Unix() {
		return false
	}
	return r.Status != message.InProgress || r.LeaseUntil.UnixMilli() >= now.UnixMilli()
}

// Acquire implements inbound.Records.
func (s *Store) Acquire(ctx context.Context, rec message.Record, now time.Time) (message.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return message.Record{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.records[rec.Key]; ok && live(old, now) {
		return clone(old), false, nil
	}
	s.records[rec.Key] = clone(rec)
	return message.Record{}, true, nil
}

// Complete implements inbound.Records.
func (s *Store) Complete(ctx context.Context, key, leaseID string, response []byte, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	if !ok || r.Status != message.InProgress || r.LeaseID != leaseID {
		return message.ErrLeaseLost
	}
	r.Status, r.Response, r.ExpiresAt = message.Completed, slices.Clone(response), expiresAt
	r.LeaseID, r.LeaseUntil = "", time.Time{}
	s.records[key] = r
	return nil
}

// Release implements inbound.Records.
func (s *Store) Release(ctx context.Context, key, leaseID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	if !ok || r.Status != message.InProgress || r.LeaseID != leaseID {
		return message.ErrLeaseLost
	}
	delete(s.records, key)
	return nil
}

// Record returns the record stored under key, for tests and the contract suite.
func (s *Store) Record(ctx context.Context, key string) (message.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	return clone(r), ok, nil
}

// Len is the number of records held, for tests that check nothing was left behind.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// PutToken stores a token hash.
func (s *Store) PutToken(ctx context.Context, t message.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.Hash] = t
	return nil
}

// LookupToken finds a token by its hash.
func (s *Store) LookupToken(ctx context.Context, hash string) (message.Token, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[hash]
	return t, ok, nil
}

// ListTokens lists the stored tokens, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]message.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]message.Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b message.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeleteTokens deletes the tokens whose hash starts with id and returns how many.
func (s *Store) DeleteTokens(ctx context.Context, id string) (int, error) {
	if len(id) < 8 {
		return 0, fmt.Errorf("token id %q is too short: give at least 8 characters", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h := range s.tokens {
		if strings.HasPrefix(h, id) {
			delete(s.tokens, h)
			n++
		}
	}
	return n, nil
}

func clone(r message.Record) message.Record {
	r.Response = slices.Clone(r.Response)
	return r
}

// Failed implements delivery.Attempts.
func (s *Store) Failed(ctx context.Context, messageID string, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed[messageID]++
	return s.failed[messageID], nil
}
