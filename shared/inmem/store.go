package inmem

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// Store keeps what DynamoDB keeps for the deployed stack — records, exchanges and
// tokens — in memory, with the same conditional semantics.
type Store struct {
	mu            sync.Mutex
	conversations map[string]*conversation // by channel and conversation ref
	tokens        map[string]message.Token
	channels      map[string]message.Channel
	logs          map[string]message.DeliveryLog // by channel and webhook id
	health        map[string]message.Health      // by channel
	now           func() time.Time
}

// conversation is one conversation's partition.
type conversation struct {
	records   map[string]message.Record // by ref
	exchanges []message.Exchange        // by (CreatedAt, Ref)
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{conversations: map[string]*conversation{}, tokens: map[string]message.Token{}, channels: map[string]message.Channel{}, now: time.Now}
}

func partition(channel, conversationRef string) string { return channel + "#" + conversationRef }

func (s *Store) conv(channel, conversationRef string, create bool) *conversation {
	k := partition(channel, conversationRef)
	c := s.conversations[k]
	if c == nil && create {
		c = &conversation{records: map[string]message.Record{}}
		s.conversations[k] = c
	}
	return c
}

func exchangeOrder(a message.Exchange, at time.Time, ref string) int {
	return cmp.Or(a.CreatedAt.Compare(at), strings.Compare(a.Ref, ref))
}

func (c *conversation) find(at time.Time, ref string) (int, bool) {
	return slices.BinarySearchFunc(c.exchanges, at, func(x message.Exchange, t time.Time) int { return exchangeOrder(x, t, ref) })
}

// Accept implements inbound.Store: the record is written unless a live one exists.
// Times compare at the stored precision.
func (s *Store) Accept(ctx context.Context, rec message.Record, now time.Time) (message.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return message.Record{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(rec.Channel, rec.ConversationRef, true)
	if old, ok := c.records[rec.Ref]; ok && old.ExpiresAt.Unix() >= now.Unix() {
		return old, false, nil
	}
	rec.CreatedAt = rec.CreatedAt.Truncate(time.Millisecond)
	c.records[rec.Ref] = rec
	return message.Record{}, true, nil
}

// Exchanged implements inbound.Store.
func (s *Store) Exchanged(ctx context.Context, rec message.Record) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(rec.Channel, rec.ConversationRef, false)
	if c == nil {
		return false, nil
	}
	_, found := c.find(rec.CreatedAt, rec.Ref)
	return found, nil
}

// Load implements delivery.Store.
func (s *Store) Load(ctx context.Context, key message.Key, createdAt time.Time) (message.Record, bool, message.Exchange, bool, error) {
	if err := ctx.Err(); err != nil {
		return message.Record{}, false, message.Exchange{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(key.Channel, key.ConversationRef, false)
	if c == nil {
		return message.Record{}, false, message.Exchange{}, false, nil
	}
	rec, recFound := c.records[key.Ref]
	var x message.Exchange
	i, xFound := c.find(createdAt, key.Ref)
	if xFound {
		x = cloneExchange(c.exchanges[i])
	}
	return rec, recFound, x, xFound, nil
}

// PutExchange implements delivery.Store.
func (s *Store) PutExchange(ctx context.Context, x message.Exchange) (message.Exchange, bool, error) {
	if err := ctx.Err(); err != nil {
		return message.Exchange{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(x.Channel, x.ConversationRef, true)
	i, found := c.find(x.CreatedAt, x.Ref)
	if found {
		if old := c.exchanges[i]; old.Failure == "" {
			return cloneExchange(old), false, nil
		}
		c.exchanges[i] = cloneExchange(x)
		return message.Exchange{}, true, nil
	}
	c.exchanges = slices.Insert(c.exchanges, i, cloneExchange(x))
	return message.Exchange{}, true, nil
}

// updateRecord changes a job's record under the lock, or says it is gone.
func (s *Store) updateRecord(ctx context.Context, key message.Key, change func(c *conversation, rec *message.Record)) (message.Record, error) {
	if err := ctx.Err(); err != nil {
		return message.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(key.Channel, key.ConversationRef, false)
	if c == nil {
		return message.Record{}, message.ErrGone
	}
	rec, ok := c.records[key.Ref]
	if !ok {
		return message.Record{}, message.ErrGone
	}
	change(c, &rec)
	c.records[key.Ref] = rec
	return rec, nil
}

// TakeOver implements delivery.Store.
func (s *Store) TakeOver(ctx context.Context, key message.Key, createdAt time.Time, owner string) error {
	_, err := s.updateRecord(ctx, key, func(c *conversation, rec *message.Record) {
		rec.Step, rec.Attempts, rec.FailingSince = 0, 0, time.Time{}
		if i, found := c.find(createdAt, key.Ref); found {
			c.exchanges[i].Owner = owner
		}
	})
	return err
}

// Failed implements delivery.Store.
func (s *Store) Failed(ctx context.Context, key message.Key, step, delivered int, now time.Time) (message.Record, error) {
	return s.updateRecord(ctx, key, func(_ *conversation, rec *message.Record) {
		if rec.Attempts > 0 && rec.Step == step {
			rec.Attempts++
		} else {
			rec.Step, rec.Attempts = step, 1
		}
		rec.Delivered = delivered
		if rec.FailingSince.IsZero() {
			rec.FailingSince = now.Truncate(time.Millisecond)
		}
	})
}

// Progress implements delivery.Store.
func (s *Store) Progress(ctx context.Context, key message.Key, delivered int) error {
	_, err := s.updateRecord(ctx, key, func(_ *conversation, rec *message.Record) { rec.Delivered = delivered })
	return err
}

// DropTombstone implements delivery.Store.
func (s *Store) DropTombstone(ctx context.Context, x message.Exchange) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(x.Channel, x.ConversationRef, false)
	if c == nil {
		return nil
	}
	if i, found := c.find(x.CreatedAt, x.Ref); found && c.exchanges[i].Tombstone {
		c.exchanges = slices.Delete(c.exchanges, i, i+1)
	}
	s.forgetEmpty(x.Channel, x.ConversationRef)
	return nil
}

func (s *Store) forgetEmpty(channel, conversationRef string) {
	if c := s.conv(channel, conversationRef, false); c != nil && len(c.records) == 0 && len(c.exchanges) == 0 {
		delete(s.conversations, partition(channel, conversationRef))
	}
}

// liveExchanges lists a conversation's unexpired exchanges, newest first, up to and
// including the one at cur when cur is set; called with s.mu held.
func (s *Store) liveExchanges(channel, conversationRef string, cur message.Cursor, now time.Time) []message.Exchange {
	c := s.conv(channel, conversationRef, false)
	if c == nil {
		return nil
	}
	var out []message.Exchange
	for i := len(c.exchanges) - 1; i >= 0; i-- {
		x := c.exchanges[i]
		if cur.Ref != "" && exchangeOrder(x, cur.CreatedAt, cur.Ref) > 0 {
			continue
		}
		if x.Tombstone || x.ExpiresAt.Before(now) {
			continue
		}
		out = append(out, cloneExchange(x))
	}
	return out
}

// HistoryPage implements inbound.Store.
func (s *Store) HistoryPage(ctx context.Context, channel, conversationRef string, limit int, cursor string) ([]message.Entry, string, error) {
	var cur message.Cursor
	if cursor != "" {
		var err error
		if cur, err = message.ParseCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	xs := s.liveExchanges(channel, conversationRef, cur, s.now())
	if cur.Ref != "" && (len(xs) == 0 || xs[0].Ref != cur.Ref) {
		cur.Skip = 0 // the cursor's exchange expired: go on from the next
	}
	entries, next := message.Page(xs, cur, limit, false)
	return entries, next, nil
}

// RecentHistory returns the last limit entries of a conversation, oldest first.
func (s *Store) RecentHistory(ctx context.Context, channel, conversationRef string, limit int) ([]message.Entry, error) {
	entries, _, err := s.HistoryPage(ctx, channel, conversationRef, limit, "")
	slices.Reverse(entries)
	return entries, err
}

// Records counts the records and exchanges held, for tests that check nothing was
// left behind.
func (s *Store) Records() (records, exchanges int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conversations {
		records += len(c.records)
		exchanges += len(c.exchanges)
	}
	return records, exchanges
}

// Record returns a record, for tests.
func (s *Store) Record(key message.Key) (message.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(key.Channel, key.ConversationRef, false)
	if c == nil {
		return message.Record{}, false
	}
	r, ok := c.records[key.Ref]
	return r, ok
}

func cloneExchange(x message.Exchange) message.Exchange {
	x.Entries = slices.Clone(x.Entries)
	for i := range x.Entries {
		x.Entries[i].Payload = slices.Clone(x.Entries[i].Payload)
	}
	return x
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
