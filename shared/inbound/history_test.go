package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/inmem"
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

func TestHistoryEndpoint(t *testing.T) {
	f := newFixture(t, &countingBot{replies: 2})
	f.h.cfg.History = f.store
	conv := "conv/with space"
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf(`{"userId":"u1","messageId":"m%d","conversationId":%q,"type":"text","text":"hello %d"}`, i, conv, i)
		if res := f.do(t, post(body)); res.StatusCode != 200 {
			t.Fatalf("POST %d: %d %s", i, res.StatusCode, res.Body)
		}
		f.clock.Advance(time.Second)
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
		p.Messages[0].ID != message.ReplyRef(conv, "m3", 1) || string(p.Messages[0].Payload) != `{"text":"answer b"}` {
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
		{"POST to history", base, "POST", 405, "method_not_allowed", ""},
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

	empty := f.do(t, get("/v1/conversations/never/messages"))
	if empty.StatusCode != 200 || empty.Body != `{"messages":[]}` {
		t.Errorf("unknown conversation = %d %s, want an empty list", empty.StatusCode, empty.Body)
	}
}

func TestHistoryIsOffWithoutAStore(t *testing.T) {
	f := newFixture(t, nil)
	assertError(t, f.do(t, get("/v1/conversations/c1/messages")), 404, "not_found", "")
}

type failingHistory struct{ *inmem.Store }

func (failingHistory) AppendHistory(context.Context, string, []message.Entry, time.Time) error {
	return errors.New("dynamodb: throttled")
}

// A failed history write costs the history entry, not the message.
func TestHistoryFailureDoesNotFailTheMessage(t *testing.T) {
	f := newFixture(t, nil)
	f.h.cfg.History = failingHistory{f.store}
	if res := f.do(t, post(hello)); res.StatusCode != 200 {
		t.Fatalf("%d %s", res.StatusCode, res.Body)
	}
	if got := len(f.queued(t)); got != 1 {
		t.Errorf("%d queued, want 1", got)
	}
}
