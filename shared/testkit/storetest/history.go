package storetest

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

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
