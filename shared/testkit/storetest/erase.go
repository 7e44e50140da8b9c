package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// erasable is a conversation with every kind of item, and the counts erasing it gives.
type erasable struct {
	first        message.Turn
	records      []message.Record   // every record written
	pending      []message.Record   // those whose job has not run
	pendingTurns []message.Turn     // their turns
	answers      []message.Exchange // every exchange written
	erased       message.Erased
}

// newErasable writes, from start on: an exchange whose record expired, answered turns,
// a failed turn, a bot message sent through the API, and two pending messages.
func newErasable(t *testing.T, s Store, first message.Turn, start time.Time) erasable {
	t.Helper()
	ctx := context.Background()
	e := erasable{first: first}
	at := start
	next := func() time.Time { at = at.Add(time.Second + 7*time.Millisecond); return at }
	turnAt := func(text string) message.Turn {
		if text == "" {
			return first
		}
		turn := inConversation(first, text)
		turn.ConversationRef = first.ConversationRef
		return turn
	}
	put := func(x message.Exchange) {
		mustPut(t, s, x)
		e.answers = append(e.answers, x)
		e.erased.Messages += len(x.Entries)
	}
	accept := func(turn message.Turn, at time.Time) message.Record {
		rec := newRecord(turn, at, keep)
		mustAccept(t, s, rec)
		e.records = append(e.records, rec)
		return rec
	}
	put(answer(turnAt(""), next(), 2, "sqs")) // its record expired
	for i, replies := range []int{1, 3} {
		turn := turnAt(fmt.Sprintf("turn %d", i))
		rec := accept(turn, next())
		put(answer(turn, rec.CreatedAt, replies, "sqs"))
	}
	failed := turnAt("failed")
	rec := accept(failed, next())
	if _, err := s.Failed(ctx, rec.Key, -1, 0, now); err != nil {
		t.Fatal(err)
	}
	x := answer(failed, rec.CreatedAt, 0, "sqs")
	x.Failure = "bot: broken"
	put(x)
	// A bot message sent through the API: a record and an exchange of its own ref.
	push := turnAt("push")
	push.MessageRef = message.PushRef(push.Channel, push.Message.ConversationID, fmt.Sprintf("key-%d", seq.Add(1)))
	rec = accept(push, next())
	put(message.Exchange{Key: push.Key(), CreatedAt: rec.CreatedAt, ConversationID: push.Message.ConversationID, UserID: push.Message.UserID,
		Owner: "sqs", ExpiresAt: keep, Entries: []message.Entry{{ID: push.MessageRef, Direction: message.Outgoing, Type: "text",
			Payload: json.RawMessage(`{"text":"pushed"}`), UserID: push.Message.UserID, CreatedAt: rec.CreatedAt}}})
	for _, text := range []string{"pending 1", "pending 2"} {
		turn := turnAt(text)
		e.pending = append(e.pending, accept(turn, next()))
		e.pendingTurns = append(e.pendingTurns, turn)
	}
	e.erased.Conversations, e.erased.Pending = 1, len(e.pending)
	return e
}

// checkErased checks that nothing of e is left but the tombstones of its pending
// messages that are still there.
func checkErased(t *testing.T, s Store, e erasable, tombstones ...message.Record) {
	t.Helper()
	ctx := context.Background()
	isTomb := map[string]bool{}
	for _, r := range tombstones {
		isTomb[r.Ref] = true
	}
	for _, r := range e.records {
		rec, recFound, x, xFound, err := s.Load(ctx, r.Key, r.CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		if recFound {
			t.Errorf("record %s is still there: %+v", r.Ref, rec)
		}
		switch {
		case isTomb[r.Ref] && (!xFound || !x.Tombstone):
			t.Errorf("pending message %s: got exchange found %v tombstone %v, want its tombstone", r.Ref, xFound, x.Tombstone)
		case !isTomb[r.Ref] && xFound:
			t.Errorf("message %s: got an exchange (tombstone %v), want none", r.Ref, x.Tombstone)
		}
	}
	for _, a := range e.answers {
		if _, _, _, found, err := s.Load(ctx, a.Key, a.CreatedAt); err != nil || found {
			t.Errorf("exchange %s: got found %v, err %v; want it gone", a.Ref, found, err)
		}
	}
	entries, next, err := s.HistoryPage(ctx, e.first.Channel, e.first.ConversationRef, 100, "")
	if err != nil || len(entries) != 0 || next != "" {
		t.Errorf("history: got %d entries, next %q, err %v; want none", len(entries), next, err)
	}
	if uid, found, err := s.ConversationUser(ctx, e.first.Channel, e.first.ConversationRef); err != nil || found {
		t.Errorf("ConversationUser: got %q, %v, %v; want not found", uid, found, err)
	}
}

func testEraseConversation(t *testing.T, s Store) {
	ctx := context.Background()
	t.Run("counts and tombstones", func(t *testing.T) {
		e := newErasable(t, s, newTurn("acme", "hi"), now.Add(-time.Hour))
		// Another conversation of the channel, of the same user: untouched.
		other := newTurn("acme", "hi")
		other.Message.UserID = e.first.Message.UserID
		other = message.NewTurn(other.Channel, other.Message)
		kept := answer(other, now, 1, "sqs")
		mustPut(t, s, kept)

		erased, err := s.EraseConversation(ctx, e.first.Channel, e.first.ConversationRef)
		if err != nil {
			t.Fatal(err)
		}
		if erased != e.erased {
			t.Errorf("EraseConversation: got %+v, want %+v", erased, e.erased)
		}
		if e.erased.Messages != 11 || e.erased.Pending != 2 {
			t.Fatalf("the conversation holds %+v, want 11 messages and 2 pending", e.erased)
		}
		checkErased(t, s, e, e.pending...)
		_, _, x, found, err := s.Load(ctx, other.Key(), now)
		if err != nil || !found {
			t.Fatalf("the other conversation: got found %v, err %v", found, err)
		}
		checkExchange(t, "the other conversation", x, kept)

		// The pending job comes: it finds the tombstone and stores nothing.
		job := e.pending[0]
		ran := answer(e.pendingTurns[0], job.CreatedAt, 1, "sqs-late")
		existing, stored, err := s.PutExchange(ctx, ran)
		if err != nil || stored || !existing.Tombstone {
			t.Fatalf("PutExchange of a pending job after the erasure: got stored %v, tombstone %v, err %v; want the tombstone", stored, existing.Tombstone, err)
		}
		checkErased(t, s, e, e.pending...)

		// Erasing again: nothing to count, and the tombstones wait still.
		erased, err = s.EraseConversation(ctx, e.first.Channel, e.first.ConversationRef)
		if err != nil || erased != (message.Erased{}) {
			t.Errorf("EraseConversation again: got %+v, %v; want nothing", erased, err)
		}
		checkErased(t, s, e, e.pending...)

		if err := s.DropTombstone(ctx, tombstone(job.Key, job.CreatedAt)); err != nil {
			t.Fatal(err)
		}
		checkErased(t, s, e, e.pending[1])
	})
	t.Run("a message accepted again after the erasure", func(t *testing.T) {
		// The backend retries a message its conversation's erasure caught pending: a new
		// record, of a new time. Erasing again must stop that job too.
		turn := newTurn("acme", "hi")
		first := newRecord(turn, now.Add(100*time.Millisecond), keep)
		mustAccept(t, s, first)
		if _, err := s.EraseConversation(ctx, turn.Channel, turn.ConversationRef); err != nil {
			t.Fatal(err)
		}
		again := newRecord(turn, now.Add(5*time.Second+200*time.Millisecond), keep)
		if _, accepted, err := s.Accept(ctx, again, now.Add(5*time.Second)); err != nil || !accepted {
			t.Fatalf("Accept after the erasure: got accepted %v, err %v; want accepted", accepted, err)
		}
		erased, err := s.EraseConversation(ctx, turn.Channel, turn.ConversationRef)
		if err != nil {
			t.Fatal(err)
		}
		if want := (message.Erased{Conversations: 1, Pending: 1}); erased != want {
			t.Errorf("second EraseConversation: got %+v, want %+v", erased, want)
		}
		for _, rec := range []message.Record{first, again} {
			existing, stored, err := s.PutExchange(ctx, answer(turn, rec.CreatedAt, 1, "sqs"))
			if err != nil || stored || !existing.Tombstone {
				t.Errorf("the job of the record of %s: got stored %v, tombstone %v, err %v; want its tombstone",
					rec.CreatedAt.Format(time.StampMilli), stored, existing.Tombstone, err)
			}
		}
	})
	t.Run("more than a batch", func(t *testing.T) {
		first := newTurn("acme", "hi")
		for i := range 30 {
			turn := inConversation(first, fmt.Sprintf("message %d", i))
			at := now.Add(time.Duration(i) * time.Second)
			mustAccept(t, s, newRecord(turn, at, keep))
			mustPut(t, s, answer(turn, at, 1, "sqs"))
		}
		erased, err := s.EraseConversation(ctx, first.Channel, first.ConversationRef)
		if want := (message.Erased{Conversations: 1, Messages: 60}); err != nil || erased != want {
			t.Errorf("EraseConversation: got %+v, %v; want %+v", erased, err, want)
		}
		entries, _, err := s.HistoryPage(ctx, first.Channel, first.ConversationRef, 100, "")
		if err != nil || len(entries) != 0 {
			t.Errorf("history after: got %d entries, %v; want none", len(entries), err)
		}
		if uid, found, err := s.ConversationUser(ctx, first.Channel, first.ConversationRef); err != nil || found {
			t.Errorf("ConversationUser after: got %q, %v, %v; want not found", uid, found, err)
		}
	})
	t.Run("unknown conversation", func(t *testing.T) {
		turn := newTurn("acme", "hi")
		if erased, err := s.EraseConversation(ctx, turn.Channel, turn.ConversationRef); err != nil || erased != (message.Erased{}) {
			t.Errorf("got %+v, %v; want nothing", erased, err)
		}
	})
}

func testEraseUser(t *testing.T, s Store) {
	ctx := context.Background()
	n := seq.Add(1)
	alice, bob := fmt.Sprintf("alice-%d", n), fmt.Sprintf("bob-%d", n)
	turnOf := func(channel, userID, conversationID string) message.Turn {
		return message.NewTurn(channel, message.Inbound{UserID: userID, MessageID: fmt.Sprintf("m-%d", seq.Add(1)),
			ConversationID: conversationID, Type: "text", Text: "hi", Payload: json.RawMessage(`{"text":"hi"}`)})
	}
	// Alice's: a conversation of her own (with every kind of item), one bob started and
	// she joined, one with only a message waiting.
	own := newErasable(t, s, turnOf("acme", alice, "own"), now.Add(-2*time.Hour))
	gone := []message.Exchange{
		answer(turnOf("acme", bob, "joined"), now.Add(-time.Hour), 1, "sqs"),
		answer(turnOf("acme", alice, "joined"), now.Add(-time.Hour+time.Second), 2, "sqs"),
	}
	for _, x := range gone {
		mustPut(t, s, x)
	}
	waiting := turnOf("acme", alice, "waiting")
	waitingRec := newRecord(waiting, now.Add(-time.Minute), keep)
	mustAccept(t, s, waitingRec)
	// Not hers: bob's own conversation; hers in other channels, under the same ids.
	var kept []message.Exchange
	for _, turn := range []message.Turn{
		turnOf("acme", bob, "bobs"),
		turnOf("globex", alice, "own"),
		turnOf(message.DefaultChannel, alice, "own"),
	} {
		x := answer(turn, now, 1, "sqs")
		mustPut(t, s, x)
		kept = append(kept, x)
	}
	// A record in another channel with alice's user ref of acme, in a conversation of
	// the ref of bob's in acme: neither is hers.
	elsewhere := turnOf("globex", alice, "elsewhere")
	elsewhere.UserRef, elsewhere.ConversationRef = own.first.UserRef, kept[0].ConversationRef
	elsewhereRec := newRecord(elsewhere, now, keep)
	mustAccept(t, s, elsewhereRec)

	erased, err := s.EraseUser(ctx, "acme", own.first.UserRef)
	if err != nil {
		t.Fatal(err)
	}
	want := own.erased.Add(message.Erased{Conversations: 2, Messages: 2 + 3, Pending: 1})
	if erased != want {
		t.Errorf("EraseUser: got %+v, want %+v", erased, want)
	}
	checkErased(t, s, own, own.pending...)
	for _, x := range gone {
		if _, _, _, found, err := s.Load(ctx, x.Key, x.CreatedAt); err != nil || found {
			t.Errorf("%s's exchange in the conversation alice joined: got found %v, err %v; want it gone", x.UserID, found, err)
		}
	}
	for _, convRef := range []string{gone[0].ConversationRef, waiting.ConversationRef} {
		entries, _, err := s.HistoryPage(ctx, "acme", convRef, 100, "")
		if err != nil || len(entries) != 0 {
			t.Errorf("conversation %s: got %d entries, %v; want none", convRef, len(entries), err)
		}
	}
	if _, recFound, x, xFound, err := s.Load(ctx, waiting.Key(), waitingRec.CreatedAt); err != nil || recFound || !xFound || !x.Tombstone {
		t.Errorf("the waiting message: got record %v, exchange %v (tombstone %v), err %v; want only its tombstone", recFound, xFound, x.Tombstone, err)
	}
	for _, x := range kept {
		_, _, got, found, err := s.Load(ctx, x.Key, x.CreatedAt)
		if err != nil || !found {
			t.Errorf("%s's conversation %s in %s: got found %v, err %v; want it kept", x.UserID, x.ConversationID, x.Channel, found, err)
			continue
		}
		checkExchange(t, "kept", got, x)
	}
	if rec, found, _, _, err := s.Load(ctx, elsewhereRec.Key, elsewhereRec.CreatedAt); err != nil || !found {
		t.Errorf("the other channel's record with the same user ref: got found %v, err %v; want it kept", found, err)
	} else {
		checkRecord(t, "the other channel's record", rec, elsewhereRec)
	}

	if erased, err := s.EraseUser(ctx, "acme", own.first.UserRef); err != nil || erased != (message.Erased{}) {
		t.Errorf("EraseUser again: got %+v, %v; want nothing", erased, err)
	}
	if erased, err := s.EraseUser(ctx, "acme", message.UserRef("acme", "nobody")); err != nil || erased != (message.Erased{}) {
		t.Errorf("EraseUser of an unknown user: got %+v, %v; want nothing", erased, err)
	}
}
