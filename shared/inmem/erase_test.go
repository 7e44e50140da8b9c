package inmem_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
)

// The local stack keeps nothing of an erased conversation either: no record, no
// exchange, only the tombstone of a job still queued, until that job comes.
func TestEraseLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := inmem.NewStore()
	now := time.Now().UTC().Truncate(time.Millisecond)
	say := func(conversationID, messageID string, at time.Time, run bool) message.Record {
		in := message.Inbound{UserID: "alice", MessageID: messageID, ConversationID: conversationID, Type: "text", Text: "hi",
			Payload: json.RawMessage(`{"text":"hi"}`)}
		turn := message.NewTurn("acme", in)
		rec := message.Record{Key: turn.Key(), RequestHash: in.Hash(), UserRef: turn.UserRef, UserID: in.UserID, CreatedAt: at, ExpiresAt: now.Add(time.Hour)}
		if _, accepted, err := s.Accept(ctx, rec, now); err != nil || !accepted {
			t.Fatalf("Accept: got accepted %v, err %v", accepted, err)
		}
		if run {
			x := message.Answer(turn, at, []message.Reply{{Type: "text", Payload: in.Payload}}, at)
			x.ExpiresAt = now.Add(time.Hour)
			if _, stored, err := s.PutExchange(ctx, x); err != nil || !stored {
				t.Fatalf("PutExchange: got stored %v, err %v", stored, err)
			}
		}
		return rec
	}
	check := func(what string, wantRecords, wantExchanges int) {
		t.Helper()
		if r, x := s.Records(); r != wantRecords || x != wantExchanges {
			t.Errorf("%s: got %d records and %d exchanges, want %d and %d", what, r, x, wantRecords, wantExchanges)
		}
	}

	say("c1", "m1", now, true)
	say("c1", "m2", now.Add(time.Second), true)
	say("c2", "m1", now.Add(2*time.Second), true)
	check("before", 3, 3)
	erased, err := s.EraseUser(ctx, "acme", message.UserRef("acme", "alice"))
	if want := (message.Erased{Conversations: 2, Messages: 6}); err != nil || erased != want {
		t.Errorf("EraseUser: got %+v, %v; want %+v", erased, err, want)
	}
	check("after erasing the user", 0, 0)

	pending := say("c3", "m1", now.Add(3*time.Second), false)
	say("c3", "m2", now.Add(4*time.Second), true)
	if _, err := s.EraseConversation(ctx, "acme", pending.ConversationRef); err != nil {
		t.Fatal(err)
	}
	check("after erasing a conversation with a pending message", 0, 1)
	if err := s.DropTombstone(ctx, message.Exchange{Key: pending.Key, CreatedAt: pending.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	check("after the pending job came", 0, 0)
}
