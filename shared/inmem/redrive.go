package inmem

import (
	"context"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// RedriveMatching moves up to limit dead letters that match (all when match is nil)
// back to the queue, in order, with a fresh receive count and marked redriven, and
// returns how many it moved. The others stay.
func (q *Queue) RedriveMatching(ctx context.Context, limit int, match func(events.SQSMessage) bool) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	moved := 0
	kept := q.dead[:0]
	for _, e := range q.dead {
		if moved == limit || (match != nil && !match(e.message())) {
			kept = append(kept, e)
			continue
		}
		for _, k := range deadLetterAttrs {
			delete(e.attrs, k)
		}
		e.attrs[message.AttrRedriven] = "true"
		e.receives, e.firstReceive, e.receipt, e.invisibleUntil = 0, time.Time{}, "", time.Time{}
		e.id = newID()
		q.main = append(q.main, e)
		moved++
	}
	clear(q.dead[len(kept):])
	q.dead = kept
	q.signal()
	return moved, nil
}
