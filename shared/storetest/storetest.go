// Package storetest is the contract every store must meet: the embedded one and the
// DynamoDB adapter on DynamoDB Local run the same tests, so the local stack behaves as
// the deployed one does.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/channel"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
)

// Store is what the contract covers: everything the inbound and delivery functions,
// the llm bot, the channel registry and the operator's commands ask of a store.
type Store interface {
	inbound.Store
	delivery.Store
	bot.HistoryReader
	admin.Store
	channel.Store
	LookupToken(ctx context.Context, hash string) (message.Token, bool, error)
}

// Run runs the contract against the stores open makes, a fresh one per test. The
// tests run in parallel, and each uses keys of its own.
func Run(t *testing.T, open func(t *testing.T) Store) {
	for _, c := range []struct {
		name string
		test func(t *testing.T, s Store)
	}{
		{"Accept", testAccept},
		{"AcceptConcurrently", testAcceptConcurrently},
		{"Exchanged", testExchanged},
		{"PutExchange", testPutExchange},
		{"Load", testLoad},
		{"Failed", testFailed},
		{"Progress", testProgress},
		{"TakeOver", testTakeOver},
		{"DropTombstone", testDropTombstone},
		{"HistoryPage", testHistoryPage},
		{"HistoryCursors", testHistoryCursors},
		{"Tokens", testTokens},
		{"Channels", testChannels},
		{"ChannelList", testChannelList},
		{"Isolation", testIsolation},
		{"ConversationUser", testConversationUser},
		{"EraseConversation", testEraseConversation},
		{"EraseUser", testEraseUser},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, open(t))
		})
	}
}

// now is whole seconds, as DynamoDB keeps expiry times; the times a record and an
// exchange keep to the millisecond are now plus some milliseconds.
var (
	now  = time.Now().UTC().Truncate(time.Second)
	keep = now.Add(30 * 24 * time.Hour) // the expiry of what must still be there
)

var seq atomic.Int64

// newTurn is a text message of a conversation and a message id of its own.
func newTurn(channel, text string) message.Turn {
	n := seq.Add(1)
	in := message.Inbound{
		UserID: fmt.Sprintf("user-%d", n), MessageID: fmt.Sprintf("m-%d", n), ConversationID: fmt.Sprintf("conv-%d", n),
		Type: "text", Text: text, Payload: json.RawMessage(`{"text":` + quote(text) + `}`),
	}
	return message.NewTurn(channel, in)
}

// inConversation is a new message of turn's conversation, from the same user.
func inConversation(turn message.Turn, text string) message.Turn {
	in := turn.Message
	in.MessageID = fmt.Sprintf("m-%d", seq.Add(1))
	in.Text, in.Payload = text, json.RawMessage(`{"text":`+quote(text)+`}`)
	return message.NewTurn(turn.Channel, in)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// newRecord is the record the inbound side writes for turn at createdAt.
func newRecord(turn message.Turn, createdAt, expiresAt time.Time) message.Record {
	return message.Record{Key: turn.Key(), RequestHash: turn.Message.Hash(), UserRef: turn.UserRef, UserID: turn.Message.UserID,
		CreatedAt: createdAt, ExpiresAt: expiresAt}
}

// answer is the exchange of turn answered with replies text bot messages.
func answer(turn message.Turn, createdAt time.Time, replies int, owner string) message.Exchange {
	var rs []message.Reply
	for i := range replies {
		rs = append(rs, message.Reply{Type: "text", Payload: json.RawMessage(fmt.Sprintf(`{"text":"answer %d to %s"}`, i+1, turn.Message.MessageID))})
	}
	x := message.Answer(turn, createdAt, rs, createdAt.Add(1500*time.Millisecond))
	x.Owner, x.ExpiresAt = owner, keep
	return x
}

// tombstone is what erasing a conversation leaves for a job still in the queue.
func tombstone(key message.Key, createdAt time.Time) message.Exchange {
	return message.Exchange{Key: key, CreatedAt: createdAt, Tombstone: true, ExpiresAt: keep}
}

// rich is an exchange whose entries use every field, with payloads a careless
// encoding would change: escapes, HTML characters, non-ASCII text, nesting.
func rich(turn message.Turn, createdAt time.Time, owner string) message.Exchange {
	in := turn.Message
	in.Type, in.Text = "choice", `Pick <one> & "go"`
	in.Payload = json.RawMessage(`{"options":[{"label":"Oui ✓","value":"y"},{"label":"Nein","value":"n"}],"text":"Pick <one> \u0026 \"go\" 🚀"}`)
	turn.Message = in
	at := createdAt.Add(2345 * time.Millisecond)
	x := message.Exchange{
		Key: turn.Key(), CreatedAt: createdAt, ConversationID: in.ConversationID, UserID: in.UserID, Owner: owner, ExpiresAt: keep,
		Entries: []message.Entry{
			{ID: turn.MessageRef, Direction: message.Incoming, Type: in.Type, Payload: in.Payload, UserID: in.UserID, MessageID: in.MessageID, CreatedAt: createdAt},
			{ID: message.ReplyRef(turn.Channel, in.ConversationID, in.MessageID, 0), Direction: message.Outgoing, Type: "image",
				Payload: json.RawMessage(`{"imageUrl":"https://example.com/a.png?x=1&y=2","title":"日本"}`), UserID: in.UserID, InReplyTo: in.MessageID, CreatedAt: at},
			{ID: message.ReplyRef(turn.Channel, in.ConversationID, in.MessageID, 1), Direction: message.Outgoing, Type: "location",
				Payload: json.RawMessage(`{"latitude":-33.8688,"longitude":151.2093,"text":"\\path\n"}`), UserID: "someone-else", InReplyTo: in.MessageID, CreatedAt: at.Add(time.Millisecond)},
		},
	}
	return x
}

func testAccept(t *testing.T, s Store) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		expiresAt  time.Time // the first record's
		secondAt   time.Time // when the second Accept comes
		wantAccept bool
	}{
		{"duplicate of a live record", keep, now.Add(time.Minute), false},
		{"duplicate in the record's last second", now.Add(time.Minute), now.Add(time.Minute + 999*time.Millisecond), false},
		{"after the record expired", now.Add(time.Minute), now.Add(time.Minute + time.Second), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			turn := newTurn(message.DefaultChannel, "hi")
			first := newRecord(turn, now.Add(123*time.Millisecond), c.expiresAt)
			if existing, accepted, err := s.Accept(ctx, first, now); err != nil || !accepted {
				t.Fatalf("first Accept = %+v, accepted %v, %v; want accepted", existing, accepted, err)
			}
			// A failed attempt leaves counts that a replacement must not inherit.
			if _, err := s.Failed(ctx, first.Key, 0, 1, now.Add(time.Second)); err != nil {
				t.Fatalf("Failed: %v", err)
			}
			second := newRecord(turn, c.secondAt.Add(456*time.Millisecond), keep.Add(time.Hour))
			second.RequestHash, second.UserRef = "another-hash", "user_another"
			existing, accepted, err := s.Accept(ctx, second, c.secondAt)
			if err != nil {
				t.Fatalf("second Accept: %v", err)
			}
			if accepted != c.wantAccept {
				t.Fatalf("second Accept: got accepted %v, want %v", accepted, c.wantAccept)
			}
			want := second
			if !c.wantAccept {
				want = first
				want.Step, want.Attempts, want.Delivered, want.FailingSince = 0, 1, 1, now.Add(time.Second)
				checkRecord(t, "existing record", existing, want)
			}
			rec, found, _, _, err := s.Load(ctx, turn.Key(), want.CreatedAt)
			if err != nil || !found {
				t.Fatalf("Load: got found %v, err %v; want the record", found, err)
			}
			checkRecord(t, "stored record", rec, want)
		})
	}
	t.Run("createdAt to the millisecond", func(t *testing.T) {
		turn := newTurn(message.DefaultChannel, "hi")
		rec := newRecord(turn, now.Add(123456789*time.Nanosecond), keep)
		if _, accepted, err := s.Accept(ctx, rec, now); err != nil || !accepted {
			t.Fatalf("Accept: got accepted %v, err %v; want accepted", accepted, err)
		}
		existing, _, err := s.Accept(ctx, rec, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(123 * time.Millisecond); !existing.CreatedAt.Equal(want) {
			t.Errorf("createdAt: got %s, want %s", existing.CreatedAt.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	})
}

func testAcceptConcurrently(t *testing.T, s Store) {
	ctx := context.Background()
	turn := newTurn(message.DefaultChannel, "hi")
	const n = 20
	var wg sync.WaitGroup
	hashes := make([]string, n)
	existing := make([]message.Record, n)
	accepted := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := newRecord(turn, now.Add(time.Duration(i)*time.Millisecond), keep)
			rec.RequestHash = fmt.Sprintf("hash-%d", i)
			hashes[i] = rec.RequestHash
			<-start
			existing[i], accepted[i], errs[i] = s.Accept(ctx, rec, now)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Accept %d: %v", i, errs[i])
		}
		if accepted[i] {
			if winner >= 0 {
				t.Errorf("Accept %d and %d both accepted", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("got no Accept accepted, want 1")
	}
	for i := range n {
		if !accepted[i] && errs[i] == nil && existing[i].RequestHash != hashes[winner] {
			t.Errorf("Accept %d: got existing hash %q, want the accepted one's %q", i, existing[i].RequestHash, hashes[winner])
		}
	}
}

func testExchanged(t *testing.T, s Store) {
	ctx := context.Background()
	turn := newTurn(message.DefaultChannel, "hi")
	rec := newRecord(turn, now.Add(321*time.Millisecond), keep)
	mustAccept(t, s, rec)
	if got, err := s.Exchanged(ctx, rec); err != nil || got {
		t.Fatalf("Exchanged before PutExchange: got %v, %v; want false", got, err)
	}
	mustPut(t, s, answer(turn, rec.CreatedAt, 1, "sqs-1"))
	if got, err := s.Exchanged(ctx, rec); err != nil || !got {
		t.Errorf("Exchanged after PutExchange: got %v, %v; want true", got, err)
	}
	other := newRecord(newTurn(message.DefaultChannel, "hi"), rec.CreatedAt, keep)
	if got, err := s.Exchanged(ctx, other); err != nil || got {
		t.Errorf("Exchanged of another record: got %v, %v; want false", got, err)
	}
}

func testPutExchange(t *testing.T, s Store) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		first      func(turn message.Turn, at time.Time) message.Exchange
		wantStored bool // whether the second put replaces the first
	}{
		{"over an answered turn", func(turn message.Turn, at time.Time) message.Exchange { return answer(turn, at, 1, "sqs-1") }, false},
		{"over an answer with no bot message", func(turn message.Turn, at time.Time) message.Exchange { return answer(turn, at, 0, "sqs-1") }, false},
		{"over a failed turn", func(turn message.Turn, at time.Time) message.Exchange {
			x := answer(turn, at, 0, "sqs-1")
			x.Failure = "bot: did not answer in time"
			return x
		}, true},
		{"over a tombstone", func(turn message.Turn, at time.Time) message.Exchange { return tombstone(turn.Key(), at) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			turn := newTurn(message.DefaultChannel, "hi")
			at := now.Add(777 * time.Millisecond)
			first := c.first(turn, at)
			if existing, stored, err := s.PutExchange(ctx, first); err != nil || !stored {
				t.Fatalf("first PutExchange = %+v, stored %v, %v; want stored", existing, stored, err)
			}
			second := answer(turn, at, 2, "sqs-2")
			existing, stored, err := s.PutExchange(ctx, second)
			if err != nil {
				t.Fatalf("second PutExchange: %v", err)
			}
			if stored != c.wantStored {
				t.Fatalf("second PutExchange: got stored %v, want %v", stored, c.wantStored)
			}
			want := second
			if !c.wantStored {
				want = first
				checkExchange(t, "existing exchange", existing, want)
			}
			_, _, got, found, err := s.Load(ctx, turn.Key(), at)
			if err != nil || !found {
				t.Fatalf("Load: got found %v, err %v; want the exchange", found, err)
			}
			checkExchange(t, "stored exchange", got, want)
			if !c.wantStored {
				return
			}
			// What replaced a failed turn is an answer: it stays.
			third := answer(turn, at, 3, "sqs-3")
			existing, stored, err = s.PutExchange(ctx, third)
			if err != nil || stored {
				t.Fatalf("third PutExchange: got stored %v, err %v; want the second kept", stored, err)
			}
			checkExchange(t, "existing after the third put", existing, second)
		})
	}
}

func testLoad(t *testing.T, s Store) {
	ctx := context.Background()
	for _, c := range []struct {
		name             string
		record, exchange bool
	}{
		{"neither", false, false},
		{"record only", true, false},
		{"exchange only", false, true},
		{"both", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			turn := newTurn(message.DefaultChannel, "hi")
			at := now.Add(42 * time.Millisecond)
			rec := newRecord(turn, at, keep)
			x := rich(turn, at, "sqs-load")
			if c.record {
				mustAccept(t, s, rec)
			}
			if c.exchange {
				mustPut(t, s, x)
			}
			gotRec, recFound, gotX, xFound, err := s.Load(ctx, turn.Key(), at)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if recFound != c.record || xFound != c.exchange {
				t.Fatalf("Load: got record found %v, exchange found %v; want %v, %v", recFound, xFound, c.record, c.exchange)
			}
			if c.record {
				checkRecord(t, "record", gotRec, rec)
			}
			if c.exchange {
				checkExchange(t, "exchange", gotX, x)
			}
			// The exchange is the one of the record's time, not any of its ref.
			if _, _, _, found, err := s.Load(ctx, turn.Key(), at.Add(time.Millisecond)); err != nil || found {
				t.Errorf("Load a millisecond later: got exchange found %v, err %v; want none", found, err)
			}
		})
	}
}

func testFailed(t *testing.T, s Store) {
	ctx := context.Background()
	turn := newTurn(message.DefaultChannel, "hi")
	rec := newRecord(turn, now.Add(5*time.Millisecond), keep)
	mustAccept(t, s, rec)
	// Times with nanoseconds: FailingSince keeps milliseconds, as the record does.
	first := now.Add(time.Minute + 1234567*time.Nanosecond)
	for i, c := range []struct {
		step, delivered, wantAttempts int
	}{
		{-1, 0, 1},
		{-1, 0, 2},
		{-1, 0, 3},
		{0, 0, 1}, // another step starts again at 1
		{0, 0, 2},
		{1, 1, 1},
		{1, 1, 2},
		{0, 2, 1}, // and so does one seen before, when it is not the last
	} {
		at := first.Add(time.Duration(i) * time.Second)
		got, err := s.Failed(ctx, turn.Key(), c.step, c.delivered, at)
		if err != nil {
			t.Fatalf("Failed #%d: %v", i+1, err)
		}
		want := rec
		want.Step, want.Attempts, want.Delivered, want.FailingSince = c.step, c.wantAttempts, c.delivered, first.Truncate(time.Millisecond)
		checkRecord(t, fmt.Sprintf("Failed #%d (step %d)", i+1, c.step), got, want)
		stored, _, _, _, err := s.Load(ctx, turn.Key(), rec.CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, fmt.Sprintf("stored after Failed #%d", i+1), stored, want)
	}
	missing := newTurn(message.DefaultChannel, "hi").Key()
	if _, err := s.Failed(ctx, missing, 0, 0, now); !errors.Is(err, message.ErrGone) {
		t.Errorf("Failed without a record: got %v, want ErrGone", err)
	}
	if _, found, _, _, _ := s.Load(ctx, missing, now); found {
		t.Errorf("Failed without a record made one")
	}
}

func testProgress(t *testing.T, s Store) {
	ctx := context.Background()
	turn := newTurn(message.DefaultChannel, "hi")
	rec := newRecord(turn, now.Add(6*time.Millisecond), keep)
	mustAccept(t, s, rec)
	if _, err := s.Failed(ctx, turn.Key(), 1, 1, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Progress(ctx, turn.Key(), 3); err != nil {
		t.Fatalf("Progress: %v", err)
	}
	got, _, _, _, err := s.Load(ctx, turn.Key(), rec.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	want := rec
	want.Delivered, want.Step, want.Attempts, want.FailingSince = 3, 1, 1, now
	checkRecord(t, "after Progress", got, want)
	missing := newTurn(message.DefaultChannel, "hi").Key()
	if err := s.Progress(ctx, missing, 1); !errors.Is(err, message.ErrGone) {
		t.Errorf("Progress without a record: got %v, want ErrGone", err)
	}
	if _, found, _, _, _ := s.Load(ctx, missing, now); found {
		t.Errorf("Progress without a record made one")
	}
}

func testTakeOver(t *testing.T, s Store) {
	ctx := context.Background()
	t.Run("with an exchange", func(t *testing.T) {
		turn := newTurn(message.DefaultChannel, "hi")
		rec := newRecord(turn, now.Add(7*time.Millisecond), keep)
		mustAccept(t, s, rec)
		x := answer(turn, rec.CreatedAt, 3, "sqs-1")
		mustPut(t, s, x)
		for range 3 {
			if _, err := s.Failed(ctx, turn.Key(), 1, 1, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TakeOver(ctx, turn.Key(), rec.CreatedAt, "sqs-2"); err != nil {
			t.Fatalf("TakeOver: %v", err)
		}
		gotRec, _, gotX, xFound, err := s.Load(ctx, turn.Key(), rec.CreatedAt)
		if err != nil || !xFound {
			t.Fatalf("Load: got exchange found %v, err %v; want it", xFound, err)
		}
		want := rec
		want.Delivered = 1 // what went through stays delivered
		checkRecord(t, "record after TakeOver", gotRec, want)
		x.Owner = "sqs-2"
		checkExchange(t, "exchange after TakeOver", gotX, x)
		// The next failure counts from a fresh start.
		later := now.Add(time.Hour)
		got, err := s.Failed(ctx, turn.Key(), 1, 1, later)
		if err != nil {
			t.Fatal(err)
		}
		if got.Attempts != 1 || !got.FailingSince.Equal(later) {
			t.Errorf("Failed after TakeOver: got attempts %d failing since %s, want 1 since %s", got.Attempts, got.FailingSince, later)
		}
	})
	t.Run("without an exchange", func(t *testing.T) {
		turn := newTurn(message.DefaultChannel, "hi")
		rec := newRecord(turn, now.Add(8*time.Millisecond), keep)
		mustAccept(t, s, rec)
		if _, err := s.Failed(ctx, turn.Key(), -1, 0, now); err != nil {
			t.Fatal(err)
		}
		if err := s.TakeOver(ctx, turn.Key(), rec.CreatedAt, "sqs-2"); err != nil {
			t.Fatalf("TakeOver: %v", err)
		}
		gotRec, _, _, xFound, err := s.Load(ctx, turn.Key(), rec.CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, "record after TakeOver", gotRec, rec)
		if xFound {
			t.Errorf("TakeOver made an exchange")
		}
	})
	t.Run("without a record", func(t *testing.T) {
		turn := newTurn(message.DefaultChannel, "hi")
		if err := s.TakeOver(ctx, turn.Key(), now, "sqs-2"); !errors.Is(err, message.ErrGone) {
			t.Errorf("TakeOver: got %v, want ErrGone", err)
		}
		if _, recFound, _, xFound, _ := s.Load(ctx, turn.Key(), now); recFound || xFound {
			t.Errorf("TakeOver without a record: got record %v, exchange %v; want neither made", recFound, xFound)
		}
	})
}

func testDropTombstone(t *testing.T, s Store) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		x        func(turn message.Turn) message.Exchange
		wantKept bool
	}{
		{"tombstone", func(turn message.Turn) message.Exchange { return tombstone(turn.Key(), now) }, false},
		{"answer", func(turn message.Turn) message.Exchange { return answer(turn, now, 1, "sqs-1") }, true},
		{"failed turn", func(turn message.Turn) message.Exchange {
			x := answer(turn, now, 0, "sqs-1")
			x.Failure = "bot: broken"
			return x
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			turn := newTurn(message.DefaultChannel, "hi")
			x := c.x(turn)
			mustPut(t, s, x)
			if err := s.DropTombstone(ctx, x); err != nil {
				t.Fatalf("DropTombstone: %v", err)
			}
			_, _, got, found, err := s.Load(ctx, turn.Key(), now)
			if err != nil {
				t.Fatal(err)
			}
			if found != c.wantKept {
				t.Fatalf("after DropTombstone: got exchange found %v, want %v", found, c.wantKept)
			}
			if found {
				checkExchange(t, "kept exchange", got, x)
			}
		})
	}
	t.Run("nothing there", func(t *testing.T) {
		if err := s.DropTombstone(ctx, tombstone(newTurn(message.DefaultChannel, "hi").Key(), now)); err != nil {
			t.Errorf("DropTombstone: got %v, want nil", err)
		}
	})
}

// conversation writes a conversation's exchanges, oldest first, and returns its
// visible entries newest first. Its kinds: "answer N" (N bot messages), "failed",
// "push", "expired", "tombstone"; "+" makes an exchange of the same millisecond as
// the one before.
func conversation(t *testing.T, s Store, first message.Turn, start time.Time, kinds ...string) []message.Entry {
	t.Helper()
	var visible []message.Exchange
	at := start
	for i, kind := range kinds {
		if same, ok := strings.CutPrefix(kind, "+"); ok {
			kind = same
		} else if i > 0 {
			at = at.Add(time.Second + time.Duration(i)*time.Millisecond)
		}
		turn := inConversation(first, fmt.Sprintf("message %d: %s", i, kind))
		turn.ConversationRef = first.ConversationRef // kept when a test moves it to another channel
		var x message.Exchange
		switch {
		case kind == "failed":
			x = answer(turn, at, 0, "sqs")
			x.Failure = "bot: broken"
		case kind == "push":
			ref := message.PushRef(turn.Channel, turn.Message.ConversationID, fmt.Sprintf("push-%d", seq.Add(1)))
			x = message.Exchange{Key: message.Key{Channel: turn.Channel, ConversationRef: turn.ConversationRef, Ref: ref},
				CreatedAt: at, ConversationID: turn.Message.ConversationID, UserID: turn.Message.UserID, Owner: "sqs", ExpiresAt: keep,
				Entries: []message.Entry{{ID: ref, Direction: message.Outgoing, Type: "markdown", Payload: json.RawMessage(`{"markdown":"**pushed**"}`), UserID: turn.Message.UserID, CreatedAt: at}}}
		case kind == "expired":
			x = answer(turn, at, 1, "sqs")
			x.ExpiresAt = time.Now().Add(-time.Hour)
		case kind == "tombstone":
			x = tombstone(turn.Key(), at)
		default:
			replies, err := strconv.Atoi(strings.TrimPrefix(kind, "answer "))
			if err != nil {
				t.Fatalf("unknown kind %q", kind)
			}
			x = answer(turn, at, replies, "sqs")
		}
		mustPut(t, s, x)
		if kind != "expired" && kind != "tombstone" {
			visible = append(visible, x)
		}
	}
	slices.SortFunc(visible, func(a, b message.Exchange) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.Ref, a.Ref))
	})
	var want []message.Entry
	for _, x := range visible {
		for i := len(x.Entries) - 1; i >= 0; i-- {
			want = append(want, x.Entries[i])
		}
	}
	return want
}

func testHistoryPage(t *testing.T, s Store) {
	ctx := context.Background()
	first := newTurn(message.DefaultChannel, "hi")
	start := now.Add(-time.Hour + 500*time.Millisecond)
	want := conversation(t, s, first, start,
		"expired", "answer 2", "expired", "failed", "tombstone", "expired", "tombstone",
		"answer 3", "+answer 1", "push", "answer 0", "answer 3", "tombstone")
	// The same conversation ref in another channel, another conversation of the
	// channel: neither shows.
	other := first
	other.Channel = "other"
	conversation(t, s, other, start, "answer 1", "answer 2")
	conversation(t, s, newTurn(message.DefaultChannel, "hi"), start, "answer 1")

	if len(want) != 16 {
		t.Fatalf("the conversation has %d visible entries, want 16", len(want))
	}
	t.Run("one page", func(t *testing.T) {
		got, next, err := s.HistoryPage(ctx, first.Channel, first.ConversationRef, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if next != "" {
			t.Errorf("next cursor: got %q, want none", next)
		}
		checkEntries(t, "history", got, want)
	})
	for limit := 1; limit <= len(want)+1; limit++ {
		t.Run(fmt.Sprintf("pages of %d", limit), func(t *testing.T) {
			var got []message.Entry
			cursor := ""
			for page := 1; ; page++ {
				if page > len(want)+2 {
					t.Fatalf("still paging after %d pages", page)
				}
				entries, next, err := s.HistoryPage(ctx, first.Channel, first.ConversationRef, limit, cursor)
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				if len(entries) > limit || next != "" && len(entries) != limit {
					t.Fatalf("page %d: got %d entries and next %q, want %d and more to come, or at most %d at the end",
						page, len(entries), next, limit, limit)
				}
				got = append(got, entries...)
				if next == "" {
					break
				}
				cursor = next
			}
			if g, w := ids(got), ids(want); g != w {
				t.Errorf("entries over all pages:\ngot  %s\nwant %s", g, w)
			}
		})
	}
	t.Run("isolation", func(t *testing.T) {
		got, _, err := s.HistoryPage(ctx, other.Channel, other.ConversationRef, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 {
			t.Errorf("the other channel's conversation: got %d entries, want 5", len(got))
		}
		for _, e := range got {
			if slices.ContainsFunc(want, func(w message.Entry) bool { return w.ID == e.ID }) {
				t.Errorf("the other channel's conversation shows entry %s of the default channel's", e.ID)
			}
		}
		got, next, err := s.HistoryPage(ctx, message.DefaultChannel, newTurn(message.DefaultChannel, "hi").ConversationRef, 10, "")
		if err != nil || len(got) != 0 || next != "" {
			t.Errorf("an empty conversation: got %d entries, next %q, err %v; want none", len(got), next, err)
		}
	})
	t.Run("RecentHistory", func(t *testing.T) {
		for _, limit := range []int{1, 3, len(want), len(want) + 5} {
			got, err := s.RecentHistory(ctx, first.Channel, first.ConversationRef, limit)
			if err != nil {
				t.Fatal(err)
			}
			w := slices.Clone(want[:min(limit, len(want))])
			slices.Reverse(w)
			checkEntries(t, fmt.Sprintf("RecentHistory(%d)", limit), got, w)
		}
	})
	t.Run("bad cursors", func(t *testing.T) {
		enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, cursor := range []string{
			"not a cursor!",
			enc("1700000000000|msg_x"),
			enc("soon|msg_x|0"),
			enc("1700000000000|conv_x|0"),
			enc("1700000000000|msg_x|-1"),
			enc("-5|msg_x|0"),
		} {
			_, _, err := s.HistoryPage(ctx, first.Channel, first.ConversationRef, 10, cursor)
			if !errors.Is(err, message.ErrCursor) && message.KindOf(err) != message.Invalid {
				t.Errorf("HistoryPage(cursor %q): got %v, want ErrCursor", cursor, err)
			}
		}
	})
}

// A cursor goes on where its page ended, whatever was written since; a cursor whose
// exchange has expired goes on from the next one.
func testHistoryCursors(t *testing.T, s Store) {
	ctx := context.Background()
	first := newTurn(message.DefaultChannel, "hi")
	at := now.Add(-time.Hour + 250*time.Millisecond)
	a := answer(first, at, 1, "sqs")
	b := answer(inConversation(first, "b"), at.Add(time.Second), 2, "sqs")
	c := answer(inConversation(first, "c"), at.Add(2*time.Second), 3, "sqs")
	// b expires in two or three seconds: the one test that waits.
	b.ExpiresAt = time.Now().Truncate(time.Second).Add(3 * time.Second)
	for _, x := range []message.Exchange{a, b, c} {
		mustPut(t, s, x)
	}
	newestFirst := func(xs ...message.Exchange) []message.Entry {
		var out []message.Entry
		for _, x := range xs {
			for i := len(x.Entries) - 1; i >= 0; i-- {
				out = append(out, x.Entries[i])
			}
		}
		return out
	}
	want := newestFirst(c, b, a)

	page, next, err := s.HistoryPage(ctx, first.Channel, first.ConversationRef, 2, "")
	if err != nil || next == "" {
		t.Fatalf("first page: got next %q, err %v; want a cursor", next, err)
	}
	checkEntries(t, "first page", page, want[:2])
	// A newer message arrives: the next page goes on where the first ended.
	newer := answer(inConversation(first, "newer"), now, 1, "sqs")
	mustPut(t, s, newer)
	page, next, err = s.HistoryPage(ctx, first.Channel, first.ConversationRef, 3, next)
	if err != nil || next == "" {
		t.Fatalf("second page: got next %q, err %v; want a cursor", next, err)
	}
	checkEntries(t, "second page", page, want[2:5])
	if time.Now().After(b.ExpiresAt) {
		t.Fatalf("the first two pages took until %s, past %s: the store is too slow for this test", time.Now().Format(time.StampMilli), b.ExpiresAt.Format(time.StampMilli))
	}
	// The cursor points inside b; once b has expired, the next page starts at a.
	time.Sleep(time.Until(b.ExpiresAt.Add(time.Second + 50*time.Millisecond)))
	page, next, err = s.HistoryPage(ctx, first.Channel, first.ConversationRef, 10, next)
	if err != nil {
		t.Fatal(err)
	}
	if next != "" {
		t.Errorf("last page: got next %q, want none", next)
	}
	checkEntries(t, "page after the cursor's exchange expired", page, newestFirst(a))
	page, _, err = s.HistoryPage(ctx, first.Channel, first.ConversationRef, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, "history from the start", page, newestFirst(newer, c, a))
}

func testTokens(t *testing.T, s Store) {
	ctx := context.Background()
	base := fmt.Sprintf("%016x", seq.Add(1)<<20)
	hash := func(tag string) string { return base + tag + strings.Repeat("0", 64-len(base)-len(tag)) }
	tokens := []message.Token{
		{Hash: hash("aaaa1"), Name: "ci", Channel: "", Scope: "", CreatedAt: now.Add(-3 * time.Hour)},
		{Hash: hash("aaaa2"), Name: "acme bot", Channel: "acme", Scope: message.ScopeBot, CreatedAt: now.Add(-2 * time.Hour)},
		{Hash: hash("bbbb"), Name: "acme backend", Channel: "acme", Scope: message.ScopeBackend, CreatedAt: now.Add(-time.Hour)},
	}
	for _, i := range []int{2, 0, 1} {
		if err := s.PutToken(ctx, tokens[i]); err != nil {
			t.Fatalf("PutToken %s: %v", tokens[i].Name, err)
		}
	}
	for _, want := range tokens {
		got, found, err := s.LookupToken(ctx, want.Hash)
		if err != nil || !found {
			t.Fatalf("LookupToken %s: got found %v, err %v; want found", want.Name, found, err)
		}
		if got.Hash != want.Hash || got.Name != want.Name || got.Channel != want.Channel || got.Scope != want.Scope || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("LookupToken %s: got %+v, want %+v", want.Name, got, want)
		}
	}
	if _, found, err := s.LookupToken(ctx, hash("cccc")); err != nil || found {
		t.Errorf("LookupToken of an unknown hash: got found %v, err %v; want not found", found, err)
	}
	list, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), tokenNames(tokens); got != want {
		t.Errorf("ListTokens: got %s, want %s (oldest first)", got, want)
	}
	if _, err := s.DeleteTokens(ctx, base[:7]); err == nil {
		t.Errorf("DeleteTokens with 7 characters: got no error, want one")
	}
	n, err := s.DeleteTokens(ctx, base+"aaaa")
	if err != nil || n != 2 {
		t.Fatalf("DeleteTokens(%s…aaaa): got %d, %v; want 2", base[:8], n, err)
	}
	list, err = s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), tokenNames(tokens[2:]); got != want {
		t.Errorf("ListTokens after DeleteTokens: got %s, want %s", got, want)
	}
	if n, err := s.DeleteTokens(ctx, base+"aaaa"); err != nil || n != 0 {
		t.Errorf("DeleteTokens again: got %d, %v; want 0", n, err)
	}
}

func tokenNames(toks []message.Token) string {
	var names []string
	for _, t := range toks {
		names = append(names, t.Name)
	}
	return fmt.Sprintf("%q", names)
}

func mustAccept(t *testing.T, s Store, rec message.Record) {
	t.Helper()
	if _, accepted, err := s.Accept(context.Background(), rec, now); err != nil || !accepted {
		t.Fatalf("Accept: got accepted %v, err %v; want accepted", accepted, err)
	}
}

func mustPut(t *testing.T, s Store, x message.Exchange) {
	t.Helper()
	if _, stored, err := s.PutExchange(context.Background(), x); err != nil || !stored {
		t.Fatalf("PutExchange %s: got stored %v, err %v; want stored", x.Ref, stored, err)
	}
}

func checkRecord(t *testing.T, what string, got, want message.Record) {
	t.Helper()
	for _, d := range []struct {
		field     string
		got, want any
		same      bool
	}{
		{"key", got.Key, want.Key, got.Key == want.Key},
		{"requestHash", got.RequestHash, want.RequestHash, got.RequestHash == want.RequestHash},
		{"userRef", got.UserRef, want.UserRef, got.UserRef == want.UserRef},
		{"userId", got.UserID, want.UserID, got.UserID == want.UserID},
		{"createdAt", got.CreatedAt, want.CreatedAt, got.CreatedAt.Equal(want.CreatedAt)},
		{"expiresAt", got.ExpiresAt, want.ExpiresAt, got.ExpiresAt.Equal(want.ExpiresAt)},
		{"delivered", got.Delivered, want.Delivered, got.Delivered == want.Delivered},
		{"step", got.Step, want.Step, got.Step == want.Step},
		{"attempts", got.Attempts, want.Attempts, got.Attempts == want.Attempts},
		{"failingSince", got.FailingSince, want.FailingSince, got.FailingSince.Equal(want.FailingSince)},
	} {
		if !d.same {
			t.Errorf("%s: %s: got %v, want %v", what, d.field, d.got, d.want)
		}
	}
}

func checkExchange(t *testing.T, what string, got, want message.Exchange) {
	t.Helper()
	if got.Key != want.Key {
		t.Errorf("%s: key: got %+v, want %+v", what, got.Key, want.Key)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: createdAt: got %s, want %s", what, got.CreatedAt, want.CreatedAt)
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("%s: expiresAt: got %s, want %s", what, got.ExpiresAt, want.ExpiresAt)
	}
	if got.Tombstone != want.Tombstone {
		t.Errorf("%s: tombstone: got %v, want %v", what, got.Tombstone, want.Tombstone)
	}
	if want.Tombstone {
		return // a tombstone is a key and a time
	}
	if got.ConversationID != want.ConversationID || got.UserID != want.UserID {
		t.Errorf("%s: conversationId, userId: got %q, %q; want %q, %q", what, got.ConversationID, got.UserID, want.ConversationID, want.UserID)
	}
	if got.Owner != want.Owner {
		t.Errorf("%s: owner: got %q, want %q", what, got.Owner, want.Owner)
	}
	if got.Failure != want.Failure {
		t.Errorf("%s: failure: got %q, want %q", what, got.Failure, want.Failure)
	}
	checkEntries(t, what, got.Entries, want.Entries)
}

func checkEntries(t *testing.T, what string, got, want []message.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d entries %s, want %d %s", what, len(got), ids(got), len(want), ids(want))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Direction != w.Direction || g.Type != w.Type || g.UserID != w.UserID || g.MessageID != w.MessageID ||
			g.InReplyTo != w.InReplyTo || !g.CreatedAt.Equal(w.CreatedAt) || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("%s: entry %d:\ngot  %s\nwant %s", what, i, entryString(g), entryString(w))
		}
	}
}

func entryString(e message.Entry) string {
	return fmt.Sprintf("{id %s %s %s payload %s user %q message %q inReplyTo %q at %s}", e.ID, e.Direction, e.Type, e.Payload,
		e.UserID, e.MessageID, e.InReplyTo, e.CreatedAt.UTC().Format(time.RFC3339Nano))
}

func ids(entries []message.Entry) string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return "[" + strings.Join(out, " ") + "]"
}

// rulesFile is an intents file as an operator writes it: indented, with characters a
// JSON encoder likes to escape. A channel keeps it byte for byte, so what `channel
// show` prints is what was given.
const rulesFile = `{
  "intents": [
    {
      "name": "hours",
      "keywords": ["open", "hours"],
      "replies": [{"type": "text", "payload": {"text": "Mon–Fri, 9 <am> & 5 pm \u2713"}}]
    }
  ],
  "fallback": [{"type": "text", "payload": {"text": "Sorry?"}}]
}
`

// fullChannel is a channel that sets every field.
func fullChannel(id string, created time.Time) message.Channel {
	temperature, history := 0.25, 7
	return message.Channel{
		ID: id, Name: "Acme support ✓", ResponseURL: "https://acme.example/parley/hook?tenant=1&x=<y>",
		SigningSecrets: "whsec_bmV3ZXN0IHNlY3JldCBieXRlcw== whsec_b2xkZXIgc2VjcmV0IGJ5dGVz",
		Bot: message.BotSpec{
			Kind:  "llm",
			Rules: json.RawMessage(rulesFile),
			LLM: &message.LLMSpec{Provider: "anthropic", BaseURL: "https://llm.example/v1", Model: "model-x",
				APIKeySecret: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acme-llm", APIKey: "sk-local-only",
				SystemPrompt: "Be <brief> & \"kind\".\nAlways.", Temperature: &temperature, MaxTokens: 300, History: &history},
			HTTPURL: "https://rasa.example/webhooks/rest/webhook",
		},
		Retry:     &message.RetrySpec{MinDelay: message.Duration(1500 * time.Millisecond), MaxDelay: message.Duration(2 * time.Hour), MaxAttempts: 7},
		CreatedAt: created.Add(123 * time.Millisecond),
		UpdatedAt: created.Add(time.Hour + 456*time.Millisecond),
	}
}

// plainChannel is a channel with only what a channel needs.
func plainChannel(id string, created time.Time) message.Channel {
	return message.Channel{ID: id, Name: id, ResponseURL: "http://localhost:9000/" + id, Bot: message.BotSpec{Kind: "echo"},
		CreatedAt: created, UpdatedAt: created}
}

func checkChannel(t *testing.T, what string, got, want message.Channel) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: createdAt, updatedAt: got %s, %s; want %s, %s", what, got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	if !bytes.Equal(got.Bot.Rules, want.Bot.Rules) {
		t.Errorf("%s: bot.rules:\ngot  %q\nwant %q", what, got.Bot.Rules, want.Bot.Rules)
	}
	g, w := got, want
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	g.Bot.Rules, w.Bot.Rules = nil, nil
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		t.Errorf("%s:\ngot  %s\nwant %s", what, gj, wj)
	}
}

func channelIDs(list []message.Channel) string {
	var out []string
	for _, c := range list {
		out = append(out, c.ID)
	}
	return fmt.Sprintf("%q", out)
}

func testChannels(t *testing.T, s Store) {
	ctx := context.Background()
	get := func(t *testing.T, id string) (message.Channel, bool) {
		t.Helper()
		c, found, err := s.GetChannel(ctx, id)
		if err != nil {
			t.Fatalf("GetChannel %s: %v", id, err)
		}
		return c, found
	}
	t.Run("round trip", func(t *testing.T) {
		for _, want := range []message.Channel{fullChannel("ch_full", now), plainChannel("ch_plain", now)} {
			if err := s.PutChannel(ctx, want, true); err != nil {
				t.Fatalf("PutChannel %s: %v", want.ID, err)
			}
			got, found := get(t, want.ID)
			if !found {
				t.Fatalf("GetChannel %s: not found", want.ID)
			}
			checkChannel(t, "GetChannel "+want.ID, got, want)
		}
	})
	t.Run("create twice", func(t *testing.T) {
		first := plainChannel("ch_twice", now)
		if err := s.PutChannel(ctx, first, true); err != nil {
			t.Fatal(err)
		}
		second := fullChannel("ch_twice", now.Add(time.Hour))
		if err := s.PutChannel(ctx, second, true); !errors.Is(err, message.ErrExists) {
			t.Fatalf("second create: got %v, want ErrExists", err)
		}
		got, _ := get(t, first.ID)
		checkChannel(t, "after the refused create", got, first)
	})
	t.Run("update", func(t *testing.T) {
		if err := s.PutChannel(ctx, plainChannel("ch_missing", now), false); !errors.Is(err, message.ErrNotFound) {
			t.Errorf("update of a missing channel: got %v, want ErrNotFound", err)
		}
		if _, found := get(t, "ch_missing"); found {
			t.Errorf("the refused update made the channel")
		}
		c := plainChannel("ch_updated", now)
		if err := s.PutChannel(ctx, c, true); err != nil {
			t.Fatal(err)
		}
		want := fullChannel(c.ID, now)
		if err := s.PutChannel(ctx, want, false); err != nil {
			t.Fatalf("update: %v", err)
		}
		got, _ := get(t, c.ID)
		checkChannel(t, "after the update", got, want)
		// And back: fields the update leaves out are gone, not merged.
		if err := s.PutChannel(ctx, c, false); err != nil {
			t.Fatalf("second update: %v", err)
		}
		got, _ = get(t, c.ID)
		checkChannel(t, "after the second update", got, c)
	})
	t.Run("unknown", func(t *testing.T) {
		if c, found := get(t, "ch_never"); found {
			t.Errorf("GetChannel of an unknown id: got %+v, want not found", c)
		}
	})
}

// testChannelList runs on a store of its own: it lists every channel.
func testChannelList(t *testing.T, s Store) {
	ctx := context.Background()
	if list, err := s.ListChannels(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListChannels of an empty store: got %s, %v; want none", channelIDs(list), err)
	}
	// Created out of order: the list is by creation time, not by id or by write.
	chans := []message.Channel{
		plainChannel("ch_c", now.Add(-3*time.Hour)),
		fullChannel("ch_a", now.Add(-2*time.Hour)),
		plainChannel("ch_b", now.Add(-time.Hour)),
	}
	for _, i := range []int{1, 2, 0} {
		if err := s.PutChannel(ctx, chans[i], true); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := channelIDs(list), channelIDs(chans); got != want {
		t.Fatalf("ListChannels: got %s, want %s (oldest first)", got, want)
	}
	for i := range chans {
		checkChannel(t, "listed "+chans[i].ID, list[i], chans[i])
	}
	if err := s.DeleteChannel(ctx, "ch_a"); err != nil {
		t.Fatalf("DeleteChannel: %v", err)
	}
	if _, found, err := s.GetChannel(ctx, "ch_a"); err != nil || found {
		t.Errorf("GetChannel after DeleteChannel: got found %v, err %v; want not found", found, err)
	}
	list, err = s.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := channelIDs(list), channelIDs([]message.Channel{chans[0], chans[2]}); got != want {
		t.Errorf("ListChannels after DeleteChannel: got %s, want %s", got, want)
	}
	if err := s.DeleteChannel(ctx, "ch_a"); err != nil {
		t.Errorf("DeleteChannel again: got %v, want nil", err)
	}
	// A deleted channel's id can be used again.
	again := plainChannel("ch_a", now)
	if err := s.PutChannel(ctx, again, true); err != nil {
		t.Errorf("create after delete: %v", err)
	}
	// Tokens share the table: they are not channels.
	if err := s.PutToken(ctx, message.Token{Hash: strings.Repeat("ab", 32), Name: "t", Channel: "ch_b", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	list, err = s.ListChannels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := channelIDs(list), channelIDs([]message.Channel{chans[0], chans[2], again}); got != want {
		t.Errorf("ListChannels at the end: got %s, want %s", got, want)
	}
}

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
