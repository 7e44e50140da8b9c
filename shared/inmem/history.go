package inmem

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

type historyEntry struct {
	message.Entry
	expiresAt time.Time
}

// AppendHistory stores entries of a conversation; an entry already there is kept.
func (s *Store) AppendHistory(ctx context.Context, conversationRef string, entries []message.Entry, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.history == nil {
		s.history = map[string][]historyEntry{}
	}
	h := s.history[conversationRef]
	for _, e := range entries {
		i, found := slices.BinarySearchFunc(h, e.SortKey(), func(x historyEntry, k string) int { return strings.Compare(x.SortKey(), k) })
		if found {
			continue
		}
		e.Payload = slices.Clone(e.Payload)
		h = slices.Insert(h, i, historyEntry{e, expiresAt})
	}
	s.history[conversationRef] = h
	return nil
}

// live returns a conversation's unexpired entries, oldest first; called with s.mu held.
func (s *Store) liveHistory(conversationRef string, now time.Time) []message.Entry {
	var out []message.Entry
	for _, e := range s.history[conversationRef] {
		if !e.expiresAt.Before(now) {
			out = append(out, e.Entry)
		}
	}
	return out
}

// RecentHistory returns the last limit entries of a conversation, oldest first.
func (s *Store) RecentHistory(ctx context.Context, conversationRef string, limit int) ([]message.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.liveHistory(conversationRef, time.Now())
	return h[max(len(h)-limit, 0):], nil
}

// HistoryPage returns up to limit entries, newest first, older than the entry whose
// sort key is after (all when empty), and the sort key to pass for the next page ("" at
// the end).
func (s *Store) HistoryPage(ctx context.Context, conversationRef string, limit int, after string) ([]message.Entry, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.liveHistory(conversationRef, time.Now())
	slices.Reverse(h)
	if after != "" {
		i := slices.IndexFunc(h, func(e message.Entry) bool { return e.SortKey() < after })
		if i < 0 {
			return nil, "", nil
		}
		h = h[i:]
	}
	if len(h) <= limit {
		return h, "", nil
	}
	return h[:limit], h[limit-1].SortKey(), nil
}
