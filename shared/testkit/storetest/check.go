package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

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
