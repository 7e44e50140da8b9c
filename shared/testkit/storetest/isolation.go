package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// pair is one message sent to two channels with the same conversationId and
// messageId: a and b.
type pair struct{ a, b message.Turn }

// pairs are the ways two channels can meet: two channels of their own, the default
// channel and another, and two channels forced onto the same conversation, message and
// user refs (the store must keep them apart by channel, whatever the ids).
func pairs() map[string]pair {
	ids := func() (message.Inbound, message.Inbound) {
		n := seq.Add(1)
		in := message.Inbound{UserID: fmt.Sprintf("alice-%d", n), MessageID: fmt.Sprintf("m-%d", n), ConversationID: fmt.Sprintf("conv-%d", n),
			Type: "text", Text: "hi", Payload: json.RawMessage(`{"text":"hi"}`)}
		other := in
		other.UserID, other.Text, other.Payload = fmt.Sprintf("bob-%d", n), "hello", json.RawMessage(`{"text":"hello"}`)
		return in, other
	}
	in1, other1 := ids()
	in2, other2 := ids()
	in3, other3 := ids()
	a, same := message.NewTurn("acme", in3), message.NewTurn("globex", other3)
	same.ConversationRef, same.MessageRef, same.UserRef = a.ConversationRef, a.MessageRef, a.UserRef
	return map[string]pair{
		"two channels":      {message.NewTurn("acme", in1), message.NewTurn("globex", other1)},
		"default and other": {message.NewTurn(message.DefaultChannel, in2), message.NewTurn("acme", other2)},
		"same refs":         {a, same},
	}
}

func testIsolation(t *testing.T, s Store) {
	ctx := context.Background()
	for name, p := range pairs() {
		t.Run(name, func(t *testing.T) {
			a, b := p.a, p.b
			at := now.Add(11 * time.Millisecond)
			recA, recB := newRecord(a, at, keep), newRecord(b, at, keep)
			mustAccept(t, s, recA)
			if existing, accepted, err := s.Accept(ctx, recB, now); err != nil || !accepted {
				t.Fatalf("Accept in the second channel: got %+v, accepted %v, %v; want accepted", existing, accepted, err)
			}
			xA := answer(a, at, 1, "sqs-a")
			mustPut(t, s, xA)
			if got, err := s.Exchanged(ctx, recB); err != nil || got {
				t.Errorf("Exchanged in the second channel: got %v, %v; want false", got, err)
			}
			xB := answer(b, at, 2, "sqs-b")
			mustPut(t, s, xB)
			// A pending message of b's conversation: erasing a's must not tombstone it.
			nextB := inConversation(b, "still pending")
			nextB.ConversationRef = b.ConversationRef
			pendingB := newRecord(nextB, at.Add(time.Second), keep)
			mustAccept(t, s, pendingB)

			checkB := func(t *testing.T, what string) {
				t.Helper()
				rec, recFound, x, xFound, err := s.Load(ctx, b.Key(), at)
				if err != nil || !recFound || !xFound {
					t.Fatalf("%s: Load in the second channel: got record %v, exchange %v, err %v; want both", what, recFound, xFound, err)
				}
				checkRecord(t, what+": record", rec, recB)
				checkExchange(t, what+": exchange", x, xB)
				if _, _, _, xFound, err := s.Load(ctx, pendingB.Key, pendingB.CreatedAt); err != nil || xFound {
					t.Errorf("%s: the second channel's pending message: got exchange found %v, err %v; want none", what, xFound, err)
				}
				entries, _, err := s.HistoryPage(ctx, b.Channel, b.ConversationRef, 100, "")
				if err != nil {
					t.Fatal(err)
				}
				checkEntries(t, what+": history", entries, []message.Entry{xB.Entries[2], xB.Entries[1], xB.Entries[0]})
				if uid, found, err := s.ConversationUser(ctx, b.Channel, b.ConversationRef); err != nil || !found || uid != b.Message.UserID {
					t.Errorf("%s: ConversationUser in the second channel: got %q, %v, %v; want %q", what, uid, found, err, b.Message.UserID)
				}
			}

			rec, _, x, _, err := s.Load(ctx, a.Key(), at)
			if err != nil {
				t.Fatal(err)
			}
			checkRecord(t, "first channel: record", rec, recA)
			checkExchange(t, "first channel: exchange", x, xA)
			entries, _, err := s.HistoryPage(ctx, a.Channel, a.ConversationRef, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			checkEntries(t, "first channel: history", entries, []message.Entry{xA.Entries[1], xA.Entries[0]})
			if uid, found, err := s.ConversationUser(ctx, a.Channel, a.ConversationRef); err != nil || !found || uid != a.Message.UserID {
				t.Errorf("ConversationUser in the first channel: got %q, %v, %v; want %q", uid, found, err, a.Message.UserID)
			}
			checkB(t, "before erasing")

			erased, err := s.EraseConversation(ctx, a.Channel, a.ConversationRef)
			if err != nil {
				t.Fatal(err)
			}
			if want := (message.Erased{Conversations: 1, Messages: 2}); erased != want {
				t.Errorf("EraseConversation in the first channel: got %+v, want %+v", erased, want)
			}
			if _, recFound, _, xFound, err := s.Load(ctx, a.Key(), at); err != nil || recFound || xFound {
				t.Errorf("Load in the first channel after erasing: got record %v, exchange %v, err %v; want neither", recFound, xFound, err)
			}
			checkB(t, "after erasing the first channel's conversation")

			// The user's erasure, in the first channel, with the user ref b's records
			// carry in "same refs".
			mustAccept(t, s, newRecord(inConversation(a, "again"), at.Add(2*time.Second), keep))
			erased, err = s.EraseUser(ctx, a.Channel, a.UserRef)
			if err != nil {
				t.Fatal(err)
			}
			if want := (message.Erased{Conversations: 1, Pending: 1}); erased != want {
				t.Errorf("EraseUser in the first channel: got %+v, want %+v", erased, want)
			}
			checkB(t, "after erasing the first channel's user")
			// The first channel's user ref means nothing in the second channel, but in
			// "same refs", where b's record carries it.
			want := message.Erased{}
			if name == "same refs" {
				want = message.Erased{Conversations: 1, Messages: 3, Pending: 1}
			}
			if erased, err := s.EraseUser(ctx, b.Channel, a.UserRef); err != nil || erased != want {
				t.Errorf("EraseUser of the first channel's user ref in the second channel: got %+v, %v; want %+v", erased, err, want)
			}
		})
	}
}

func testConversationUser(t *testing.T, s Store) {
	ctx := context.Background()
	user := func(t *testing.T, turn message.Turn) (string, bool) {
		t.Helper()
		uid, found, err := s.ConversationUser(ctx, turn.Channel, turn.ConversationRef)
		if err != nil {
			t.Fatalf("ConversationUser: %v", err)
		}
		return uid, found
	}
	from := func(turn message.Turn, userID, text string) message.Turn {
		in := turn.Message
		in.UserID, in.MessageID = userID, fmt.Sprintf("m-%d", seq.Add(1))
		in.Text, in.Payload = text, json.RawMessage(`{"text":`+quote(text)+`}`)
		return message.NewTurn(turn.Channel, in)
	}
	t.Run("empty", func(t *testing.T) {
		if uid, found := user(t, newTurn("acme", "hi")); found {
			t.Errorf("got %q, want not found", uid)
		}
	})
	t.Run("no turn has run", func(t *testing.T) {
		turn := newTurn("acme", "hi")
		mustAccept(t, s, newRecord(turn, now.Add(time.Millisecond), keep))
		if uid, found := user(t, turn); !found || uid != turn.Message.UserID {
			t.Errorf("got %q, %v; want the record's %q", uid, found, turn.Message.UserID)
		}
	})
	t.Run("latest exchange", func(t *testing.T) {
		first := newTurn("acme", "hi")
		second := from(first, "bob-"+first.Message.UserID, "me too")
		for i, turn := range []message.Turn{first, second} {
			at := now.Add(time.Duration(i+1) * time.Second)
			mustAccept(t, s, newRecord(turn, at, keep))
			mustPut(t, s, answer(turn, at, 1, "sqs"))
		}
		if uid, found := user(t, first); !found || uid != second.Message.UserID {
			t.Errorf("got %q, %v; want the latest exchange's %q", uid, found, second.Message.UserID)
		}
		// A tombstone is nobody's.
		mustPut(t, s, tombstone(from(first, "carol", "gone").Key(), now.Add(3*time.Second)))
		if uid, found := user(t, first); !found || uid != second.Message.UserID {
			t.Errorf("with a newer tombstone: got %q, %v; want %q", uid, found, second.Message.UserID)
		}
	})
	t.Run("history only", func(t *testing.T) {
		// The records expired before the history did.
		turn := newTurn("acme", "hi")
		mustPut(t, s, answer(turn, now, 1, "sqs"))
		if uid, found := user(t, turn); !found || uid != turn.Message.UserID {
			t.Errorf("got %q, %v; want %q", uid, found, turn.Message.UserID)
		}
	})
	t.Run("erased", func(t *testing.T) {
		turn := newTurn("acme", "hi")
		mustAccept(t, s, newRecord(turn, now, keep))
		mustPut(t, s, answer(turn, now, 1, "sqs"))
		pending := inConversation(turn, "pending")
		mustAccept(t, s, newRecord(pending, now.Add(time.Second), keep))
		if _, err := s.EraseConversation(ctx, turn.Channel, turn.ConversationRef); err != nil {
			t.Fatal(err)
		}
		// The pending message's tombstone stays: it names nobody.
		if uid, found := user(t, turn); found {
			t.Errorf("got %q, want not found", uid)
		}
	})
}
