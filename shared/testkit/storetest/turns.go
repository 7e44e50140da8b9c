package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

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
