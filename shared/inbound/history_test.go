package inbound

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

func get(path string) events.APIGatewayV2HTTPRequest {
	req := post("")
	p, q, _ := strings.Cut(path, "?")
	req.RawPath, req.RawQueryString = p, q
	req.RequestContext.HTTP.Method = "GET"
	return req
}

type historyPage struct {
	Messages []struct {
		ID, Direction, Type, UserID, MessageID, InReplyTo, ConversationID string
		Payload                                                           json.RawMessage
		CreatedAt                                                         time.Time
	}
	NextCursor string
}

// answer stores the exchange a job's run would store: the user message and n replies.
func (f *fixture) answer(t *testing.T, j message.Job, n int) {
	t.Helper()
	var replies []message.Reply
	for i := range n {
		replies = append(replies, message.Reply{Type: "text", Payload: json.RawMessage(`{"text":"answer ` + string(rune('a'+i)) + `"}`)})
	}
	x := message.Answer(j.Turn(), j.CreatedAt, replies, f.clock.Now())
	x.ExpiresAt = time.Now().Add(time.Hour) // the store hides what expired by its own clock
	if _, stored, err := f.store.PutExchange(context.Background(), x); err != nil || !stored {
		t.Fatal(stored, err)
	}
}

func TestHistoryEndpoint(t *testing.T) {
	f := newFixture(t)
	conv := "conv/with space"
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf(`{"userId":"u1","messageId":"m%d","conversationId":%q,"type":"text","text":"hello %d"}`, i, conv, i)
		if res := f.do(t, post(body)); res.StatusCode != 200 {
			t.Fatalf("POST %d: %d %s", i, res.StatusCode, res.Body)
		}
		f.clock.Advance(time.Second)
	}
	// A turn appears once its job has run; m4's has not.
	f.do(t, post(fmt.Sprintf(`{"userId":"u1","messageId":"m4","conversationId":%q,"type":"text","text":"hello 4"}`, conv)))
	for _, q := range f.queued(t)[:3] {
		f.answer(t, q.job, 2)
	}
	// A replay adds nothing.
	if res := f.do(t, post(fmt.Sprintf(`{"userId":"u1","messageId":"m3","conversationId":%q,"type":"text","text":"hello 3"}`, conv))); res.Headers["Idempotent-Replayed"] != "true" {
		t.Fatal("not a replay")
	}

	base := "/v1/conversations/conv%2Fwith%20space/messages"
	var all []string
	cursor := ""
	for page := 0; page < 5; page++ {
		path := base + "?limit=4"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		res := f.do(t, get(path))
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, res.Body)
		}
		var p historyPage
		if err := json.Unmarshal([]byte(res.Body), &p); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			label := m.MessageID + m.InReplyTo + ":" + m.Direction[:2]
			all = append(all, label)
			if m.ConversationID != conv || m.UserID != "u1" {
				t.Errorf("entry %+v", m)
			}
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	want := "[m3:ou m3:ou m3:in m2:ou m2:ou m2:in m1:ou m1:ou m1:in]"
	if fmt.Sprint(all) != want {
		t.Errorf("history = %v\nwant      %s (newest first, 9 entries, no replayed copy)", all, want)
	}

	res := f.do(t, get(base+"?limit=1"))
	var p historyPage
	_ = json.Unmarshal([]byte(res.Body), &p)
	if len(p.Messages) != 1 || p.Messages[0].Direction != message.Outgoing || p.Messages[0].InReplyTo != "m3" ||
		p.Messages[0].ID != message.ReplyRef(message.DefaultChannel, conv, "m3", 1) || string(p.Messages[0].Payload) != `{"text":"answer b"}` {
		t.Errorf("newest entry = %+v, want m3's second reply", p.Messages)
	}

	for _, tc := range []struct {
		name, path, method string
		status             int
		code, field        string
	}{
		{"bad limit", base + "?limit=0", "GET", 400, "invalid_limit", "limit"},
		{"huge limit", base + "?limit=1000", "GET", 400, "invalid_limit", "limit"},
		{"bad query", base + "?cursor=%%%", "GET", 400, "invalid_query", ""},
		{"bad cursor", base + "?cursor=!!", "GET", 400, "invalid_cursor", "cursor"},
		{"forged cursor", base + "?cursor=bm9wZQ", "GET", 400, "invalid_cursor", "cursor"},
		{"PUT to history", base, "PUT", 405, "method_not_allowed", ""},
		{"a backend token may not send bot messages", base, "POST", 403, "wrong_scope", ""},
		{"no id", "/v1/conversations//messages", "GET", 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := get(tc.path)
			req.RequestContext.HTTP.Method = tc.method
			assertError(t, f.do(t, req), tc.status, tc.code, tc.field)
		})
	}
	req := get(base)
	delete(req.Headers, "authorization")
	assertError(t, f.do(t, req), 401, "missing_token", "")

	assertError(t, f.do(t, get("/v1/conversations/never/messages")), 404, "conversation_not_found", "conversationId")
	// A conversation whose only turn has not run yet exists: an empty page.
	f.do(t, post(`{"userId":"u1","messageId":"w1","conversationId":"waiting","type":"text","text":"hi"}`))
	if res := f.do(t, get("/v1/conversations/waiting/messages")); res.StatusCode != 200 || res.Body != `{"messages":[]}` {
		t.Errorf("a conversation whose turn has not run = %d %s, want an empty list", res.StatusCode, res.Body)
	}
}

// Another channel's conversation of the same id is not this one's: a 404, not a 403.
func TestHistoryIsScopedByChannel(t *testing.T) {
	f := newFixture(t)
	f.do(t, post(hello))
	f.answer(t, f.queued(t)[0].job, 1)
	f.h.auth = scoped{"ch_b", ""}
	assertError(t, f.do(t, get("/v1/conversations/c1/messages")), 404, "conversation_not_found", "conversationId")
	f.h.auth = scoped{"ch_b", message.ScopeBot}
	assertError(t, f.do(t, get("/v1/conversations/c1/messages")), 403, "wrong_scope", "")
}
