package inbound

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

func pushReq(conversation, key, body string) events.APIGatewayV2HTTPRequest {
	req := post(body)
	req.RawPath = "/v1/conversations/" + conversation + "/messages"
	if key != "" {
		req.Headers["idempotency-key"] = key
	}
	return req
}

func TestPushSendsABotMessageIntoAConversation(t *testing.T) {
	f := newFixture(t)
	f.do(t, post(hello)) // c1 exists, with user u1
	f.queued(t)
	f.h.auth = scoped{message.DefaultChannel, message.ScopeBot}
	const reminder = `{"type":"text","payload":{"text":"Your order shipped"}}`
	res := f.do(t, pushReq("c1", "ship-1", reminder))
	if res.StatusCode != 200 {
		t.Fatalf("push = %d %s", res.StatusCode, res.Body)
	}
	var body struct{ Message map[string]any }
	_ = json.Unmarshal([]byte(res.Body), &body)
	ref := message.PushRef(message.DefaultChannel, "c1", "ship-1")
	if body.Message["id"] != ref || body.Message["direction"] != "outgoing" || body.Message["userId"] != message.UserRef(message.DefaultChannel, "u1") {
		t.Errorf("answer %s", res.Body)
	}
	q := f.queued(t)
	if len(q) != 1 || q[0].job.Kind != message.KindPush || q[0].job.Ref != ref || q[0].job.UserID != "u1" ||
		string(q[0].job.Push.Payload) != `{"text":"Your order shipped"}` {
		t.Fatalf("queued %+v, want the push job for u1", q)
	}
	// The same key again is a replay; another body under it is a conflict.
	f.clock.Advance(time.Second)
	again := f.do(t, pushReq("c1", "ship-1", reminder))
	if again.StatusCode != 200 || again.Body != res.Body || again.Headers["Idempotent-Replayed"] != "true" {
		t.Errorf("replay = %d %s %v", again.StatusCode, again.Body, again.Headers)
	}
	if q := f.queued(t); len(q) != 0 {
		t.Errorf("a replay within the window queued %d", len(q))
	}
	assertError(t, f.do(t, pushReq("c1", "ship-1", `{"type":"text","payload":{"text":"other"}}`)), 409, "idempotency_key_reused", "Idempotency-Key")
	// Without a key every push is a new message.
	f.do(t, pushReq("c1", "", reminder))
	f.do(t, pushReq("c1", "", reminder))
	if q := f.queued(t); len(q) != 2 || q[0].job.Ref == q[1].job.Ref {
		t.Errorf("two pushes without a key queued %+v, want two messages", q)
	}
}

func TestPushRejects(t *testing.T) {
	f := newFixture(t)
	f.do(t, post(hello))
	f.h.auth = scoped{message.DefaultChannel, message.ScopeBot}
	for _, tc := range []struct {
		name, conversation, key, body string
		status                        int
		code, field                   string
	}{
		{"unknown conversation", "nope", "", `{"type":"text","payload":{"text":"x"}}`, 404, "conversation_not_found", "conversationId"},
		{"no type", "c1", "", `{"payload":{"text":"x"}}`, 400, "missing_field", "type"},
		{"unknown type", "c1", "", `{"type":"sticker","payload":{}}`, 400, "invalid_type", "type"},
		{"no payload", "c1", "", `{"type":"text"}`, 400, "missing_field", "payload"},
		{"payload not an object", "c1", "", `{"type":"text","payload":"x"}`, 400, "invalid_field_type", "payload"},
		{"payload without its members", "c1", "", `{"type":"image","payload":{"title":"x"}}`, 400, "invalid_payload", "payload.imageUrl"},
		{"not json", "c1", "", `hello`, 400, "invalid_json", ""},
		{"key too long", "c1", strings.Repeat("k", 300), `{"type":"text","payload":{"text":"x"}}`, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"key with a control character", "c1", "a\x01b", `{"type":"text","payload":{"text":"x"}}`, 400, "invalid_idempotency_key", "Idempotency-Key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertError(t, f.do(t, pushReq(tc.conversation, tc.key, tc.body)), tc.status, tc.code, tc.field)
		})
	}
	if q := f.queued(t); len(q) != 1 {
		t.Errorf("%d jobs queued, want only the turn's", len(q))
	}
	// Another channel's conversation of the same id is a 404, not a 403.
	f.h.auth = scoped{"ch_other", message.ScopeBot}
	assertError(t, f.do(t, pushReq("c1", "", `{"type":"text","payload":{"text":"x"}}`)), 404, "conversation_not_found", "conversationId")
}

func del(path string) events.APIGatewayV2HTTPRequest {
	req := post("")
	req.RawPath = path
	req.RequestContext.HTTP.Method = "DELETE"
	return req
}

func TestEraseAConversationAndAUser(t *testing.T) {
	f := newFixture(t)
	for _, m := range []string{
		`{"userId":"ada","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`,
		`{"userId":"ada","messageId":"m2","conversationId":"c1","type":"text","text":"again"}`,
		`{"userId":"ada","messageId":"m1","conversationId":"c2","type":"text","text":"other"}`,
		`{"userId":"bob","messageId":"m1","conversationId":"c3","type":"text","text":"bob's"}`,
	} {
		if res := f.do(t, post(m)); res.StatusCode != 200 {
			t.Fatal(res.Body)
		}
	}
	q := f.queued(t)
	for _, j := range q[:3] { // c1/m2 stays pending
		if j.job.Message.MessageID != "m2" {
			f.answer(t, j.job, 1)
		}
	}
	f.answer(t, q[3].job, 1)

	res := f.do(t, del("/v1/conversations/c1"))
	if res.StatusCode != 200 || res.Body != `{"conversationId":"c1","erased":{"conversations":1,"messages":2,"pending":1}}` {
		t.Fatalf("erase c1 = %d %s", res.StatusCode, res.Body)
	}
	assertError(t, f.do(t, get("/v1/conversations/c1/messages")), 404, "conversation_not_found", "conversationId")
	again := f.do(t, del("/v1/conversations/c1"))
	if again.StatusCode != 200 || again.Body != `{"conversationId":"c1","erased":{"conversations":0,"messages":0,"pending":0}}` {
		t.Errorf("erasing again = %d %s, want 200 with nothing removed", again.StatusCode, again.Body)
	}
	// A message posted again after the erasure is a new message.
	if res := f.do(t, post(`{"userId":"ada","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`)); res.Headers["Idempotent-Replayed"] != "" {
		t.Error("a messageId of an erased conversation was replayed")
	}
	f.queued(t)

	res = f.do(t, del("/v1/users/ada"))
	if res.StatusCode != 200 || !strings.Contains(res.Body, `"conversations":2`) {
		t.Fatalf("erase ada = %d %s, want her two conversations (c1 again, and c2)", res.StatusCode, res.Body)
	}
	assertError(t, f.do(t, get("/v1/conversations/c2/messages")), 404, "conversation_not_found", "conversationId")
	if res := f.do(t, get("/v1/conversations/c3/messages")); res.StatusCode != 200 {
		t.Errorf("bob's conversation = %d, want it untouched", res.StatusCode)
	}
	// Another channel erases nothing of this one.
	f.h.auth = scoped{"ch_other", ""}
	if res := f.do(t, del("/v1/users/bob")); !strings.Contains(res.Body, `"conversations":0`) {
		t.Errorf("another channel's erasure = %s", res.Body)
	}
	f.h.auth = scoped{message.DefaultChannel, message.ScopeBot}
	assertError(t, f.do(t, del("/v1/users/bob")), 403, "wrong_scope", "")
}
