// Package storetest is the contract every store must meet — the embedded one and the
// DynamoDB adapter against DynamoDB Local run the same tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
)

// Store is what the contract covers.
type Store interface {
	inbound.Records
	Record(ctx context.Context, key string) (message.Record, bool, error)
	PutToken(ctx context.Context, t message.Token) error
	LookupToken(ctx context.Context, hash string) (message.Token, bool, error)
	ListTokens(ctx context.Context) ([]message.Token, error)
	DeleteTokens(ctx context.Context, id string) (int, error)
	Failed(ctx context.Context, messageID string, now time.Time) (int, error)
	AppendHistory(ctx context.Context, conversationRef string, entries []message.Entry, expiresAt time.Time) error
	RecentHistory(ctx context.Context, conversationRef string, limit int) ([]message.Entry, error)
	HistoryPage(ctx context.Context, conversationRef string, limit int, after string) ([]message.Entry, string, error)
}

var seq atomic.Int64

func record(now time.Time, lease time.Duration) message.Record {
	n := seq.Add(1)
	return message.Record{
		Key:         fmt.Sprintf("msg_test%d_%d", time.Now().UnixNano(), n),
		Status:      message.InProgress,
		RequestHash: fmt.Sprintf("hash-%d", n),
		LeaseID:     fmt.Sprintf("lease-%d", n),
		LeaseUntil:  now.Add(lease),
		ExpiresAt:   now.Add(time.Hour),
	}
}

// Run runs the contract against the stores open makes (a fresh one per test).
func Run(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)

	t.Run("acquire new record", func(t *testing.T) {
		s := open(t)
		rec := record(now, 30*time.Second)
		_, acquired, err := s.Acquire(ctx, rec, now)
		if err != nil || !acquired {
			t.Fatalf("Acquire = acquired %v, err %v; want acquired", acquired, err)
		}
		got, found, err := s.Record(ctx, rec.Key)
		if err != nil || !found {
			t.Fatalf("Record = found %v, err %v; want found", found, err)
		}
		if got.Status != message.InProgress || got.RequestHash != rec.RequestHash || got.LeaseID != rec.LeaseID ||
			!got.LeaseUntil.Equal(rec.LeaseUntil) || !got.ExpiresAt.Equal(rec.ExpiresAt) {
			t.Errorf("stored %+v, want %+v", got, rec)
		}
	})

	t.Run("live lease blocks a second acquire", func(t *testing.T) {
		s := open(t)
		rec := record(now, 30*time.Second)
		mustAcquire(t, s, rec, now)
		other := rec
		other.LeaseID, other.RequestHash = "someone-else", "other-hash"
		existing, acquired, err := s.Acquire(ctx, other, now.Add(29*time.Second))
		if err != nil || acquired {
			t.Fatalf("second Acquire = acquired %v, err %v; want refused", acquired, err)
		}
		if existing.LeaseID != rec.LeaseID || existing.RequestHash != rec.RequestHash || existing.Status != message.InProgress {
			t.Errorf("existing = %+v, want the first record", existing)
		}
	})

	t.Run("complete, then replay", func(t *testing.T) {
		s := open(t)
		rec := record(now, 30*time.Second)
		mustAcquire(t, s, rec, now)
		if err := s.Complete(ctx, rec.Key, "wrong-lease", []byte(`{}`), rec.ExpiresAt); !errors.Is(err, message.ErrLeaseLost) {
			t.Fatalf("Complete with another lease = %v, want ErrLeaseLost", err)
		}
		body := []byte(`{"message":{"id":"x"}}`)
		expires := now.Add(2 * time.Hour)
		if err := s.Complete(ctx, rec.Key, rec.LeaseID, body, expires); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		existing, acquired, err := s.Acquire(ctx, record(now, time.Second), now)
		_ = existing
		if err != nil || !acquired {
			t.Fatalf("unrelated Acquire = %v, %v", acquired, err)
		}
		dup := rec
		dup.LeaseID = "retry"
		existing, acquired, err = s.Acquire(ctx, dup, now.Add(time.Hour))
		if err != nil || acquired {
			t.Fatalf("Acquire on completed = acquired %v, err %v; want refused", acquired, err)
		}
		if existing.Status != message.Completed || string(existing.Response) != string(body) || !existing.ExpiresAt.Equal(expires) {
			t.Errorf("existing = %+v, want completed with the response", existing)
		}
		if err := s.Complete(ctx, rec.Key, rec.LeaseID, body, expires); !errors.Is(err, message.ErrLeaseLost) {
			t.Errorf("second Complete = %v, want ErrLeaseLost", err)
		}
		if err := s.Release(ctx, rec.Key, rec.LeaseID); !errors.Is(err, message.ErrLeaseLost) {
			t.Errorf("Release of completed = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("expired lease is taken over", func(t *testing.T) {
		s := open(t)
		rec := record(now, 10*time.Second)
		mustAcquire(t, s, rec, now)
		next := rec
		next.LeaseID = "takeover"
		next.LeaseUntil = now.Add(40 * time.Second)
		if _, acquired, err := s.Acquire(ctx, next, now.Add(11*time.Second)); err != nil || !acquired {
			t.Fatalf("Acquire after lease = acquired %v, err %v; want taken over", acquired, err)
		}
		if err := s.Complete(ctx, rec.Key, rec.LeaseID, []byte(`{}`), rec.ExpiresAt); !errors.Is(err, message.ErrLeaseLost) {
			t.Errorf("old lease Complete = %v, want ErrLeaseLost", err)
		}
		if err := s.Release(ctx, rec.Key, rec.LeaseID); !errors.Is(err, message.ErrLeaseLost) {
			t.Errorf("old lease Release = %v, want ErrLeaseLost", err)
		}
		got, _, _ := s.Record(ctx, rec.Key)
		if got.LeaseID != "takeover" {
			t.Errorf("lease = %q, want takeover", got.LeaseID)
		}
	})

	t.Run("expired record is replaced", func(t *testing.T) {
		s := open(t)
		rec := record(now, 10*time.Second)
		mustAcquire(t, s, rec, now)
		if err := s.Complete(ctx, rec.Key, rec.LeaseID, []byte(`{}`), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		next := rec
		next.LeaseID = "after-expiry"
		if _, acquired, err := s.Acquire(ctx, next, now.Add(2*time.Minute)); err != nil || !acquired {
			t.Fatalf("Acquire after expiry = acquired %v, err %v; want acquired", acquired, err)
		}
	})

	t.Run("release lets a retry in", func(t *testing.T) {
		s := open(t)
		rec := record(now, 30*time.Second)
		mustAcquire(t, s, rec, now)
		if err := s.Release(ctx, rec.Key, "wrong"); !errors.Is(err, message.ErrLeaseLost) {
			t.Fatalf("Release with another lease = %v, want ErrLeaseLost", err)
		}
		if err := s.Release(ctx, rec.Key, rec.LeaseID); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if _, found, _ := s.Record(ctx, rec.Key); found {
			t.Fatal("record still there after Release")
		}
		mustAcquire(t, s, rec, now)
	})

	t.Run("concurrent acquires: one wins", func(t *testing.T) {
		s := open(t)
		rec := record(now, 30*time.Second)
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rec
				r.LeaseID = fmt.Sprintf("lease-%d", i)
				_, acquired, err := s.Acquire(ctx, r, now)
				if err != nil {
					errs <- err
				}
				if acquired {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Acquire: %v", err)
		}
		if got := wins.Load(); got != 1 {
			t.Errorf("%d acquires won, want 1", got)
		}
	})

	t.Run("attempt counts", func(t *testing.T) {
		s := open(t)
		a, b := fmt.Sprintf("sqs-a-%d", seq.Add(1)), fmt.Sprintf("sqs-b-%d", seq.Add(1))
		for want := 1; want <= 3; want++ {
			if n, err := s.Failed(ctx, a, now); err != nil || n != want {
				t.Fatalf("Failed(a) = %d, %v; want %d", n, err, want)
			}
		}
		if n, err := s.Failed(ctx, b, now); err != nil || n != 1 {
			t.Errorf("Failed(b) = %d, %v; want 1", n, err)
		}
	})

	t.Run("history order, pages, expiry", func(t *testing.T) {
		s := open(t)
		conv := fmt.Sprintf("conv_h%d", seq.Add(1))
		t0 := now.Add(-time.Minute)
		entry := func(id string, at time.Time, seq int, dir string) message.Entry {
			return message.Entry{ID: id, Direction: dir, Type: "text", Payload: []byte(`{"text":"` + id + `"}`), UserID: "u1", CreatedAt: at.UTC(), Seq: seq, MessageID: "m-" + id}
		}
		turn1 := []message.Entry{entry("u1", t0, 0, message.Incoming), entry("b1", t0, 1, message.Outgoing), entry("b2", t0, 2, message.Outgoing)}
		turn2 := []message.Entry{entry("u2", t0.Add(time.Second), 0, message.Incoming), entry("b3", t0.Add(time.Second), 1, message.Outgoing)}
		keep := now.Add(time.Hour)
		for _, turn := range [][]message.Entry{turn2, turn1, turn1} { // out of order, and once again
			if err := s.AppendHistory(ctx, conv, turn, keep); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AppendHistory(ctx, "other-"+conv, []message.Entry{entry("x", t0, 0, message.Incoming)}, keep); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendHistory(ctx, conv, []message.Entry{entry("old", t0.Add(-time.Hour), 0, message.Incoming)}, now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		recent, err := s.RecentHistory(ctx, conv, 10)
		if err != nil || ids(recent) != "[u1 b1 b2 u2 b3]" {
			t.Fatalf("RecentHistory = %s, %v; want [u1 b1 b2 u2 b3] (oldest first, no expired, no other conversation)", ids(recent), err)
		}
		if recent[1].Direction != message.Outgoing || string(recent[1].Payload) != `{"text":"b1"}` || !recent[1].CreatedAt.Equal(t0.UTC()) || recent[0].MessageID != "m-u1" {
			t.Errorf("entry round trip = %+v", recent[1])
		}
		if last2, _ := s.RecentHistory(ctx, conv, 2); ids(last2) != "[u2 b3]" {
			t.Errorf("RecentHistory(2) = %s, want [u2 b3]", ids(last2))
		}
		var pages []string
		after := ""
		for range 5 {
			page, next, err := s.HistoryPage(ctx, conv, 2, after)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, ids(page))
			if next == "" {
				break
			}
			after = next
		}
		if got := fmt.Sprint(pages); got != "[[b3 u2] [b2 b1] [u1]]" {
			t.Errorf("pages = %s, want [[b3 u2] [b2 b1] [u1]] (newest first)", got)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		s := open(t)
		base := fmt.Sprintf("%016x", seq.Add(1))
		a := message.Token{Hash: base + "aaaa" + base + base + base, Name: "ci", CreatedAt: now.Add(-time.Hour).UTC()}
		b := message.Token{Hash: base + "bbbb" + base + base + base, Name: "prod", CreatedAt: now.UTC()}
		for _, tok := range []message.Token{b, a} {
			if err := s.PutToken(ctx, tok); err != nil {
				t.Fatalf("PutToken: %v", err)
			}
		}
		got, found, err := s.LookupToken(ctx, a.Hash)
		if err != nil || !found || got.Name != "ci" || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("LookupToken = %+v, %v, %v; want %+v", got, found, err, a)
		}
		if _, found, _ := s.LookupToken(ctx, base+"cccc"); found {
			t.Fatal("LookupToken found an unknown hash")
		}
		list, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tok := range list {
			if tok.Hash == a.Hash || tok.Hash == b.Hash {
				names = append(names, tok.Name)
			}
		}
		if fmt.Sprint(names) != "[ci prod]" {
			t.Errorf("ListTokens names = %v, want [ci prod] (oldest first)", names)
		}
		if _, err := s.DeleteTokens(ctx, "abc"); err == nil {
			t.Error("DeleteTokens with a 3-character id succeeded, want an error")
		}
		n, err := s.DeleteTokens(ctx, b.Hash[:20])
		if err != nil || n != 1 {
			t.Fatalf("DeleteTokens = %d, %v; want 1", n, err)
		}
		if _, found, _ := s.LookupToken(ctx, b.Hash); found {
			t.Error("revoked token still found")
		}
		if _, found, _ := s.LookupToken(ctx, a.Hash); !found {
			t.Error("other token gone")
		}
	})
}

func ids(entries []message.Entry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return fmt.Sprint(out)
}

func mustAcquire(t *testing.T, s Store, rec message.Record, now time.Time) {
	t.Helper()
	if _, acquired, err := s.Acquire(context.Background(), rec, now); err != nil || !acquired {
		t.Fatalf("Acquire = acquired %v, err %v; want acquired", acquired, err)
	}
}
