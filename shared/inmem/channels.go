package inmem

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// PutChannel implements admin.Store.
func (s *Store) PutChannel(ctx context.Context, c message.Channel, create bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, exists := s.channels[c.ID]
	switch {
	case create && exists:
		return message.ErrExists
	case !create && !exists:
		return message.ErrNotFound
	}
	if s.channels == nil {
		s.channels = map[string]message.Channel{}
	}
	s.channels[c.ID] = c
	return nil
}

// GetChannel implements admin.Store and channel.Store.
func (s *Store) GetChannel(ctx context.Context, id string) (message.Channel, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	return c, ok, nil
}

// ListChannels implements admin.Store: the channels, oldest first.
func (s *Store) ListChannels(ctx context.Context) ([]message.Channel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]message.Channel, 0, len(s.channels))
	for _, c := range s.channels {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b message.Channel) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeleteChannel implements admin.Store.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, id)
	return nil
}

// ConversationUser implements inbound.Store.
func (s *Store) ConversationUser(ctx context.Context, channel, conversationRef string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(channel, conversationRef, false)
	if c == nil {
		return "", false, nil
	}
	for i := len(c.exchanges) - 1; i >= 0; i-- {
		if x := c.exchanges[i]; !x.Tombstone && x.UserID != "" {
			return x.UserID, true, nil
		}
	}
	for _, r := range c.records {
		if r.UserID != "" {
			return r.UserID, true, nil
		}
	}
	return "", false, nil
}

// EraseConversation implements inbound.Store, as the DynamoDB store does: everything
// goes, and a job that has not run finds a tombstone.
func (s *Store) EraseConversation(ctx context.Context, channel, conversationRef string) (message.Erased, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.erase(channel, conversationRef), nil
}

func (s *Store) erase(channel, conversationRef string) message.Erased {
	var e message.Erased
	c := s.conv(channel, conversationRef, false)
	if c == nil {
		return e
	}
	// Exchanges by time and ref, as DynamoDB keys them: a message accepted again after
	// an erasure is a new job, of a new time, that the first one's tombstone does not stop.
	at := func(t time.Time, ref string) string { return strconv.FormatInt(t.UnixMilli(), 10) + "#" + ref }
	exchanged := map[string]bool{}
	var tombstones []message.Exchange
	for _, x := range c.exchanges {
		exchanged[at(x.CreatedAt, x.Ref)] = true
		if x.Tombstone {
			tombstones = append(tombstones, x) // it waits for its job still
			continue
		}
		e.Messages += len(x.Entries)
		e.Conversations = 1
		for _, o := range x.Outgoing() {
			delete(s.logs, channel+"#"+o.ID)
		}
	}
	for ref, r := range c.records {
		e.Conversations = 1
		if !exchanged[at(r.CreatedAt, ref)] {
			e.Pending++
			tombstones = append(tombstones, message.Exchange{Key: r.Key, CreatedAt: r.CreatedAt, Tombstone: true, ExpiresAt: s.now().Add(15 * 24 * time.Hour)})
		}
	}
	slices.SortFunc(tombstones, func(a, b message.Exchange) int { return exchangeOrder(a, b.CreatedAt, b.Ref) })
	c.records, c.exchanges = map[string]message.Record{}, tombstones
	s.forgetEmpty(channel, conversationRef)
	return e
}

// EraseUser implements inbound.Store.
func (s *Store) EraseUser(ctx context.Context, channel, userRef string) (message.Erased, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total message.Erased
	for k, c := range s.conversations {
		ch, convRef := splitPartition(k)
		if ch != channel || !c.hasUser(channel, userRef) {
			continue
		}
		total = total.Add(s.erase(channel, convRef))
	}
	return total, nil
}

func (c *conversation) hasUser(channel, userRef string) bool {
	for _, r := range c.records {
		if r.UserRef == userRef {
			return true
		}
	}
	for _, x := range c.exchanges {
		if !x.Tombstone && message.UserRef(channel, x.UserID) == userRef {
			return true
		}
	}
	return false
}

// splitPartition undoes partition: the conversation ref has no '#'.
func splitPartition(k string) (channel, conversationRef string) {
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == '#' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}
