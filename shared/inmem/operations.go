package inmem

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// LogAttempt implements delivery.Store.
func (s *Store) LogAttempt(ctx context.Context, l message.DeliveryLog, a message.Attempt, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs == nil {
		s.logs = map[string]message.DeliveryLog{}
	}
	k := l.Key.Channel + "#" + l.WebhookID
	old := s.logs[k]
	l.Attempts = append(slices.Clone(old.Attempts), a)
	if len(l.Attempts) > message.MaxLoggedAttempts {
		l.Attempts = slices.Delete(l.Attempts, 10, 11)
	}
	s.logs[k] = l
	return nil
}

// DeliveryLog implements inbound.Store.
func (s *Store) DeliveryLog(ctx context.Context, channel, webhookID string) (message.DeliveryLog, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logs[channel+"#"+webhookID]
	l.Attempts = slices.Clone(l.Attempts)
	return l, ok, nil
}

// FindOutgoing implements inbound.Store.
func (s *Store) FindOutgoing(ctx context.Context, channel, conversationRef, webhookID string) (message.Exchange, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conv(channel, conversationRef, false)
	if c == nil {
		return message.Exchange{}, false, nil
	}
	for _, x := range c.exchanges {
		for _, e := range x.Outgoing() {
			if e.ID == webhookID && !x.Tombstone {
				return cloneExchange(x), true, nil
			}
		}
	}
	return message.Exchange{}, false, nil
}

// Health implements delivery.Store and admin.Store.
func (s *Store) Health(ctx context.Context, channel string) (message.Health, error) {
	if err := ctx.Err(); err != nil {
		return message.Health{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthOf(channel), nil
}

func (s *Store) healthOf(channel string) message.Health {
	h, ok := s.health[channel]
	if !ok {
		h = message.Health{Channel: channel}
	}
	h.Recent = slices.Clone(h.Recent)
	if h.Recent == nil {
		h.Recent = []message.Attempt{}
	}
	return h
}

// EndpointFailed implements delivery.Store.
func (s *Store) EndpointFailed(ctx context.Context, channel string, a message.Attempt, gone bool, rule message.DisableRule, now time.Time) (message.Health, error) {
	if err := ctx.Err(); err != nil {
		return message.Health{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.healthOf(channel)
	h.Failures++
	if h.Since.IsZero() {
		h.Since = a.At
	}
	h.Recent = append(h.Recent, a)
	if len(h.Recent) > message.RecentFailures {
		h.Recent = h.Recent[len(h.Recent)-message.RecentFailures:]
	}
	if !h.Disabled && (gone || rule.Disables(h, now)) {
		h.Disabled, h.DisabledAt = true, a.At
		h.Reason = fmt.Sprintf("%d failed attempts in a row since %s, the last: %s", h.Failures, h.Since.Format(time.RFC3339), a.Reason)
		if gone {
			h.Reason = "the endpoint answered 410 Gone"
		}
	}
	if s.health == nil {
		s.health = map[string]message.Health{}
	}
	s.health[channel] = h
	return h, nil
}

// EndpointRecovered implements delivery.Store.
func (s *Store) EndpointRecovered(ctx context.Context, channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.health[channel]; ok && !h.Disabled {
		h.Failures, h.Since = 0, time.Time{}
		s.health[channel] = h
	}
	return nil
}

// EnableEndpoint implements admin.Store.
func (s *Store) EnableEndpoint(ctx context.Context, channel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.healthOf(channel)
	h.Disabled, h.DisabledAt, h.Reason, h.Failures, h.Since = false, time.Time{}, "", 0, time.Time{}
	if s.health == nil {
		s.health = map[string]message.Health{}
	}
	s.health[channel] = h
	return nil
}
