package message_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

// The default channel's ids are those Parley handed out before channels existed: a
// backend that stored them keeps matching.
func TestDefaultChannelIDsAreStable(t *testing.T) {
	ch := message.DefaultChannel
	for _, tc := range []struct{ got, want string }{
		{message.ConversationRef(ch, "c1"), "conv_as31fc3zx9h2q43n0ww9zr9b44"},
		{message.MessageRef(ch, "c1", "m1"), "msg_nzxhk3c5qbp0h6xwvy3w4kmvxg"},
		{message.UserRef(ch, "u1"), "user_nyyhc0xq5cm31wmjq8nr74r5e8"},
		{message.ReplyRef(ch, "c1", "m1", 0), "msg_qrxetb8d7n26gzjrftbhhj5tt0"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	if message.ConversationRef("other", "c1") == message.ConversationRef(ch, "c1") ||
		message.MessageRef("other", "c1", "m1") == message.MessageRef(ch, "c1", "m1") {
		t.Error("another channel derives the default channel's ids")
	}
	if a, b := message.PushRef(ch, "c1", "k"), message.PushRef(ch, "c1", "k"); a != b || !strings.HasPrefix(a, "msg_") {
		t.Errorf("PushRef with a key: %s, %s; want one stable id", a, b)
	}
	if a, b := message.PushRef(ch, "c1", ""), message.PushRef(ch, "c1", ""); a == b {
		t.Error("PushRef without a key repeats")
	}
}

func sampleJobs() []message.Job {
	in := message.Inbound{UserID: "u1", MessageID: "m1", ConversationID: "c1", Type: "text", Text: "hi", Payload: json.RawMessage(`{"text":"hi"}`)}
	at := time.Date(2026, 12, 1, 10, 0, 0, 123e6, time.UTC)
	push := message.Job{Kind: message.KindPush, Key: message.Key{Channel: "ch_a", ConversationRef: message.ConversationRef("ch_a", "c1"), Ref: message.PushRef("ch_a", "c1", "k1")},
		ConversationID: "c1", UserID: "u1", CreatedAt: at, Push: message.Reply{Type: "text", Payload: json.RawMessage(`{"text":"later"}`)}}
	return []message.Job{message.TurnJob(message.NewTurn(message.DefaultChannel, in), at), push}
}

func TestJobRoundTrip(t *testing.T) {
	for _, j := range sampleJobs() {
		b, err := message.EncodeJob(j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := message.DecodeJob(b)
		if err != nil {
			t.Fatalf("DecodeJob(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, j) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, j)
		}
	}
}

func TestDecodeJobRejects(t *testing.T) {
	good, _ := message.EncodeJob(sampleJobs()[0])
	for _, tc := range []struct{ name, body string }{
		{"not json", "hello"},
		{"a webhook body", `{"type":"text","payload":{"text":"hi"},"conversationId":"c1","botpressUserId":"u","botpressMessageId":"m","botpressConversationId":"c"}`},
		{"newer version", strings.Replace(string(good), `"v":1`, `"v":2`, 1)},
		{"ref of another message", strings.Replace(string(good), `"messageId":"m1"`, `"messageId":"m2"`, 1)},
		{"unknown kind", strings.Replace(string(good), `"kind":"turn"`, `"kind":"reminder"`, 1)},
		{"bad payload", strings.Replace(string(good), `"type":"text"`, `"type":"image"`, 1)},
	} {
		if _, err := message.DecodeJob([]byte(tc.body)); err == nil {
			t.Errorf("%s: DecodeJob accepted %s", tc.name, tc.body)
		}
	}
}

// FuzzDecodeJob: no queue message panics the decoder, and what it accepts encodes and
// decodes to itself.
func FuzzDecodeJob(f *testing.F) {
	for _, j := range sampleJobs() {
		b, _ := message.EncodeJob(j)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"kind":"push","channel":"x","conversationId":"c","ref":"r","createdAt":"2026-01-01T00:00:00Z","push":{"type":"text","payload":{"text":1}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		j, err := message.DecodeJob(body)
		if err != nil {
			return
		}
		b, err := message.EncodeJob(j)
		if err != nil {
			t.Fatalf("an accepted job does not encode: %v", err)
		}
		again, err := message.DecodeJob(b)
		if err != nil || !again.CreatedAt.Equal(j.CreatedAt) || again.Ref != j.Ref || again.Kind != j.Kind || again.Channel != j.Channel {
			t.Fatalf("re-decoded %+v, %v; want %+v", again, err, j)
		}
	})
}

func exchange(at int, replies int) message.Exchange {
	x := message.Exchange{Key: message.Key{Ref: fmt.Sprintf("msg_%02d", at)}, CreatedAt: time.UnixMilli(int64(at) * 1000)}
	x.Entries = append(x.Entries, message.Entry{ID: fmt.Sprintf("in%d", at), Direction: message.Incoming})
	for i := range replies {
		x.Entries = append(x.Entries, message.Entry{ID: fmt.Sprintf("out%d.%d", at, i), Direction: message.Outgoing})
	}
	return x
}

// Every page size walks every entry exactly once, newest first, whatever the mix of
// exchange sizes, as the stores call Page: from the cursor's exchange on.
func TestPageWalksEverything(t *testing.T) {
	var all []message.Exchange // oldest first
	var want []string
	for i, n := range []int{0, 3, 1, 0, 2, 5, 1} {
		x := exchange(i+1, n)
		all = append(all, x)
	}
	for i := len(all) - 1; i >= 0; i-- {
		for j := len(all[i].Entries) - 1; j >= 0; j-- {
			want = append(want, all[i].Entries[j].ID)
		}
	}
	from := func(c message.Cursor) []message.Exchange { // newest first, at or before c
		var out []message.Exchange
		for i := len(all) - 1; i >= 0; i-- {
			if c.Ref == "" || !all[i].CreatedAt.After(c.CreatedAt) {
				out = append(out, all[i])
			}
		}
		return out
	}
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		cursor := ""
		for pages := 0; pages <= len(want)+1; pages++ {
			var cur message.Cursor
			if cursor != "" {
				var err error
				if cur, err = message.ParseCursor(cursor); err != nil {
					t.Fatal(err)
				}
			}
			entries, next := message.Page(from(cur), cur, limit, false)
			if len(entries) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(entries))
			}
			for _, e := range entries {
				got = append(got, e.ID)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: walked\n%v\nwant\n%v", limit, got, want)
		}
	}
}

func TestParseCursorRejectsForgeries(t *testing.T) {
	for _, c := range []string{"!!", "bm9wZQ", message.Cursor{Ref: "x"}.String(), "MTIzfG1zZ194fC0x"} {
		if _, err := message.ParseCursor(c); err == nil {
			t.Errorf("ParseCursor(%q) accepted it", c)
		}
	}
}
