package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/proc"
	"github.com/parley-chat/parley/shared/webhook"
)

// openAPIFile is the document the API is held to.
const openAPIFile = "../../docs/openapi.yaml"

// unexercised are the documented error codes this test cannot make the local stack
// answer, each with the reason. Any other documented code must be seen, and these must
// not be: a code that is seen after all is removed from this list.
var unexercised = map[string]string{
	"POST / 400 unreadable_body": "the body fails while it is read: a client that hangs up mid-body reads no answer",
	"POST /v1/conversations/{conversationId}/messages 400 unreadable_body":   "the body fails while it is read: a client that hangs up mid-body reads no answer",
	"POST /v1/conversations/{conversationId}/messages 400 invalid_encoding":  "only an API Gateway base64 body that does not decode; the local stack reads raw bodies",
	"POST /v1/conversations/{conversationId}/messages 503 store_unavailable": "a bot token lives in the store: with the store down its check fails first (auth_unavailable)",
	"POST /v1/deliveries/{webhookId}/replay 503 queue_unavailable":           "a replay needs a delivered bot message, which needs a working queue",
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIFile)
	if err != nil {
		t.Fatalf("load %s: %v", openAPIFile, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", openAPIFile, err)
	}
	if doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("%s is OpenAPI %s, want 3.1", openAPIFile, doc.OpenAPI)
	}
	return doc
}

// The document and the handler list the same routes.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, r := range inbound.Routes() {
		served[r] = true
		if !documented[r] {
			t.Errorf("%s is served but not in %s", r, openAPIFile)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("%s is in %s but not served (inbound.Routes)", r, openAPIFile)
		}
	}
	if len(served) == 0 {
		t.Fatal("inbound.Routes() is empty")
	}
	if doc.Webhooks["botMessage"] == nil || doc.Webhooks["botMessage"].Post == nil {
		t.Errorf("%s has no botMessage webhook", openAPIFile)
	}
}

// Every route, every documented answer and error code, against the running local
// stack: each request is checked with openapi3filter.ValidateRequest (the document
// must reject exactly the requests it can tell are bad) and each answer with
// ValidateResponse; every webhook the stack POSTs is checked against the botMessage
// webhook. Then every documented status and code must have been seen.
func TestOpenAPIAgainstTheLocalStack(t *testing.T) {
	doc := loadOpenAPI(t)
	c := newSpecCheck(t, doc)
	hooks := c.webhookReceiver(t, "flaky")
	s := startSpecStack(t, map[string]string{"PARLEY_RESPONSE_ENDPOINT_URL": hooks.url,
		"PARLEY_RETRY_MIN_DELAY": "20ms", "PARLEY_RETRY_MAX_DELAY": "100ms"})
	botToken := specAdmin(t, s, devstack.TokensPrefix, `{"channel":"default","name":"openapi bot","scope":"bot"}`)["token"].(string)
	otherToken := specAdmin(t, s, devstack.ChannelsPrefix, `{"name":"openapi other","responseUrl":"`+hooks.url+`"}`)["token"].(string)
	c.tokens = map[string]string{"dev-token": message.ScopeBackend, botToken: message.ScopeBot, otherToken: message.ScopeBackend}
	api := s.URL

	msg := func(conv, id, typ, rest string) string {
		return `{"userId":"u1","messageId":"` + id + `","conversationId":"` + conv + `","type":"` + typ + `","text":"hello"` + rest + `}`
	}
	dev, bot := "bearer dev-token", "bearer "+botToken

	// Every route: no token, a malformed one, an unknown one, one of the other scope.
	for _, op := range []struct{ method, path, body, other string }{
		{"POST", "/", msg("c1", "m1", "text", ``), bot},
		{"GET", "/v1/conversations/c1/messages", "", bot},
		{"POST", "/v1/conversations/c1/messages", `{"type":"text","payload":{"text":"x"}}`, dev},
		{"DELETE", "/v1/conversations/c1", "", bot},
		{"DELETE", "/v1/users/u1", "", bot},
		{"GET", "/v1/deliveries/msg_x", "", bot},
		{"POST", "/v1/deliveries/msg_x/replay", "", bot},
	} {
		for _, x := range []specCall{
			{auth: "-", status: 401, code: "missing_token"},
			{auth: "Basic ZGV2OnRva2Vu", status: 401, code: "invalid_authorization"},
			{auth: "bearer", status: 401, code: "invalid_authorization"},
			{auth: "bearer nope", status: 401, code: "invalid_token"},
			{auth: op.other, status: 403, code: "wrong_scope"},
		} {
			x.name, x.method, x.path, x.body, x.docRejects = op.method+" "+op.path+" with "+x.code, op.method, op.path, op.body, true
			c.call(t, api, x)
		}
	}

	// POST /: every type, the replay, every 4xx.
	for _, x := range []struct{ typ, payload string }{
		{"text", ``},
		{"text", `,"payload":{"text":false,"extra":{"kept":[1,2]}}`},
		{"markdown", `,"payload":{"markdown":"**hi**"}`},
		{"image", `,"payload":{"imageUrl":"https://example.com/a.png","title":"a"}`},
		{"audio", `,"payload":{"audioUrl":"https://example.com/a.mp3"}`},
		{"video", `,"payload":{"videoUrl":"https://example.com/a.mp4"}`},
		{"file", `,"payload":{"fileUrl":"https://example.com/a.pdf"}`},
		{"location", `,"payload":{"latitude":48.85,"longitude":2.35}`},
		{"card", `,"payload":{"title":"T","actions":[{"action":"url","label":"Go","value":"https://example.com"}]}`},
		{"carousel", `,"payload":{"items":[{"title":"A"},{"title":"B","actions":[{"action":"say","label":"b","value":"b"}]}]}`},
		{"choice", `,"payload":{"options":[{"label":"A","value":"a"}]}`},
		{"dropdown", `,"payload":{"text":"","options":[{"label":"A","value":"a"}]}`},
		{"bloc", `,"payload":{"items":[{"type":"text","payload":{"text":"x"}},{"type":"location","payload":{"latitude":1,"longitude":2}}]}`},
	} {
		c.call(t, api, specCall{name: "accept " + x.typ + x.payload, method: "POST", path: "/", auth: dev,
			body: msg("c1", "m-"+x.typ+fmt.Sprint(len(x.payload)), x.typ, x.payload), status: 200})
	}
	first := msg("c1", "m1", "text", ``)
	c.call(t, api, specCall{name: "accept", method: "POST", path: "/", auth: dev, body: first, status: 200})
	replay := c.call(t, api, specCall{name: "replay", method: "POST", path: "/", auth: "BeArEr dev-token", body: first, status: 200})
	if replay.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: Idempotent-Replayed = %q", replay.header.Get("Idempotent-Replayed"))
	}
	deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
	for _, x := range []specCall{
		{name: "message id reused", body: msg("c1", "m1", "text", `,"payload":{"other":1}`), status: 409, code: "message_id_reused"},
		{name: "empty body", body: "", status: 400, code: "empty_body", docRejects: true},
		{name: "not UTF-8", body: msg("c1", "m\xff", "text", ``), status: 400, code: "invalid_encoding", why: "a JSON decoder turns bad UTF-8 into U+FFFD"},
		{name: "not JSON", body: `{"userId":`, status: 400, code: "invalid_json", docRejects: true},
		{name: "an array", body: `[]`, status: 400, code: "invalid_json", docRejects: true},
		{name: "data after", body: first + `{}`, status: 400, code: "invalid_json", why: "the validator reads the first JSON value only"},
		{name: "too deep", body: msg("c1", "deep", "text", `,"payload":`+deep), status: 400, code: "payload_too_complex", why: "JSON Schema has no depth limit"},
		{name: "no userId", body: `{"messageId":"m","conversationId":"c","type":"text","text":"x"}`, status: 400, code: "missing_field", docRejects: true},
		{name: "userId a number", body: `{"userId":5,"messageId":"m","conversationId":"c","type":"text","text":"x"}`, status: 400, code: "invalid_field_type", docRejects: true},
		{name: "empty messageId", body: msg("c1", "", "text", ``), status: 400, code: "empty_field", docRejects: true},
		{name: "blank messageId", body: msg("c1", " \u00a0 ", "text", ``), status: 400, code: "blank_field", docRejects: true},
		{name: "control character", body: msg("c1", `a\u0007b`, "text", ``), status: 400, code: "invalid_character", docRejects: true},
		{name: "bidi override", body: msg("c1", "a\u202eb", "text", ``), status: 400, code: "invalid_character", docRejects: true},
		{name: "unpaired surrogate", body: msg("c1", `a\ud800`, "text", ``), status: 400, code: "invalid_character", why: "the JSON decoder turns the escape into U+FFFD"},
		{name: "id too long", body: msg(strings.Repeat("c", 257), "m", "text", ``), status: 400, code: "field_too_long", docRejects: true},
		{name: "unknown type", body: msg("c1", "m", "sticker", ``), status: 400, code: "invalid_type", docRejects: true},
		{name: "payload a string", body: msg("c1", "m", "text", `,"payload":"hi"`), status: 400, code: "invalid_field_type", docRejects: true},
		{name: "payload.text truthy", body: msg("c1", "m", "text", `,"payload":{"text":true}`), status: 400, code: "invalid_field_type", docRejects: true},
		{name: "image without url", body: msg("c1", "m", "image", ``), status: 400, code: "invalid_payload", docRejects: true},
		{name: "latitude a string", body: msg("c1", "m", "location", `,"payload":{"latitude":"1","longitude":2}`), status: 400, code: "invalid_payload", docRejects: true},
		{name: "card action", body: msg("c1", "m", "card", `,"payload":{"title":"T","actions":[{"action":"call","label":"x","value":"y"}]}`), status: 400, code: "invalid_payload", docRejects: true},
		{name: "bloc of cards", body: msg("c1", "m", "bloc", `,"payload":{"items":[{"type":"card","payload":{"title":"T"}}]}`), status: 400, code: "invalid_payload", docRejects: true},
		{name: "no options", body: msg("c1", "m", "choice", `,"payload":{"options":[]}`), status: 400, code: "invalid_payload", docRejects: true},
		{name: "too large", body: `{"userId":"u1","messageId":"big","conversationId":"c1","type":"text","text":"` + strings.Repeat("x", 70<<10) + `"}`, status: 413, code: "body_too_large", docRejects: true},
	} {
		x.method, x.path = "POST", "/"
		c.call(t, api, x.withAuth(dev))
	}

	// Paths and methods the document does not have.
	for _, x := range []specCall{
		{method: "GET", path: "/", status: 405},
		{method: "PUT", path: "/v1/conversations/c1/messages", status: 405},
		{method: "GET", path: "/v1/conversations/c1", status: 405},
		{method: "GET", path: "/v1/users/u1", status: 405},
		{method: "DELETE", path: "/v1/deliveries/w1", status: 405},
		{method: "GET", path: "/v1/deliveries/w1/replay", status: 405},
		{method: "POST", path: "//", status: 404},
		{method: "POST", path: "/./", status: 404},
		{method: "POST", path: "/nope", status: 404},
		{method: "GET", path: "/v1/conversations/c1/messages/", status: 404},
		{method: "GET", path: "/v1//messages", status: 404},
		{method: "GET", path: "/v1/conversations", status: 404},
	} {
		x.name, x.auth = x.method+" "+x.path, dev
		x.code = map[int]string{404: "not_found", 405: "method_not_allowed"}[x.status]
		res := c.call(t, api, x)
		if x.status == 405 && res.header.Get("Allow") == "" {
			t.Errorf("%s: no Allow header", x.name)
		}
	}

	// The history, once c1's turns have run.
	specWait(t, "c1's history", func() bool { return len(specHistory(t, api, "c1")) >= 4 })
	page := c.call(t, api, specCall{name: "history page", method: "GET", path: "/v1/conversations/c1/messages?limit=2", auth: dev, status: 200})
	var first2 struct{ NextCursor string }
	_ = json.Unmarshal(page.body, &first2)
	if first2.NextCursor == "" {
		t.Fatalf("history page: no nextCursor in %s", page.body)
	}
	c.call(t, api, specCall{name: "history next page", method: "GET", path: "/v1/conversations/c1/messages?limit=100&cursor=" + first2.NextCursor, auth: dev, status: 200})
	for _, x := range []specCall{
		{name: "history", path: "/v1/conversations/c1/messages", status: 200},
		{name: "limit not a number", path: "/v1/conversations/c1/messages?limit=ten", status: 400, code: "invalid_limit", docRejects: true},
		{name: "limit 0", path: "/v1/conversations/c1/messages?limit=0", status: 400, code: "invalid_limit", docRejects: true},
		{name: "limit 101", path: "/v1/conversations/c1/messages?limit=101", status: 400, code: "invalid_limit", docRejects: true},
		{name: "forged cursor", path: "/v1/conversations/c1/messages?cursor=bm9wZQ", status: 400, code: "invalid_cursor", why: "a cursor is opaque"},
		{name: "long cursor", path: "/v1/conversations/c1/messages?cursor=" + strings.Repeat("A", 513), status: 400, code: "invalid_cursor", docRejects: true},
		{name: "malformed query", path: "/v1/conversations/c1/messages?limit=%zz", status: 400, code: "invalid_query", why: "Go's URL.Query drops the malformed pair"},
		{name: "no such conversation", path: "/v1/conversations/nobody/messages", status: 404, code: "conversation_not_found"},
		{name: "another channel's", path: "/v1/conversations/c1/messages", auth: "bearer " + otherToken, status: 404, code: "conversation_not_found"},
		{name: "dot parameter", path: "/v1/conversations/%2E/messages", status: 404, code: "not_found", docRejects: true},
	} {
		x.method = "GET"
		c.call(t, api, x.withAuth(dev))
	}

	// A bot message.
	pushPath := "/v1/conversations/c1/messages"
	c.call(t, api, specCall{name: "push", method: "POST", path: pushPath, auth: bot, body: `{"type":"text","payload":{"text":"an agent"},"ignored":1}`, status: 200})
	keyed := specCall{name: "push with a key", method: "POST", path: pushPath, auth: bot, header: map[string]string{"Idempotency-Key": "k-1"},
		body: `{"type":"choice","payload":{"text":"pick","options":[{"label":"A","value":"a"}]}}`, status: 200}
	c.call(t, api, keyed)
	keyed.name = "push replayed"
	if res := c.call(t, api, keyed); res.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("push replayed: Idempotent-Replayed = %q", res.header.Get("Idempotent-Replayed"))
	}
	for _, x := range []specCall{
		{name: "key reused", header: map[string]string{"Idempotency-Key": "k-1"}, body: `{"type":"text","payload":{"text":"other"}}`, status: 409, code: "idempotency_key_reused"},
		{name: "key too long", header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, body: `{"type":"text","payload":{"text":"x"}}`, status: 400, code: "invalid_idempotency_key", docRejects: true},
		{name: "not JSON", body: `{"type"`, status: 400, code: "invalid_json", docRejects: true},
		{name: "no type", body: `{"payload":{"text":"x"}}`, status: 400, code: "missing_field", docRejects: true},
		{name: "unknown type", body: `{"type":"sticker","payload":{}}`, status: 400, code: "invalid_type", docRejects: true},
		{name: "no payload", body: `{"type":"text","payload":null}`, status: 400, code: "missing_field", docRejects: true},
		{name: "payload an array", body: `{"type":"text","payload":["x"]}`, status: 400, code: "invalid_field_type", docRejects: true},
		{name: "text without text", body: `{"type":"text","payload":{"title":"x"}}`, status: 400, code: "invalid_payload", docRejects: true},
		{name: "choice without text", body: `{"type":"choice","payload":{"options":[{"label":"A","value":"a"}]}}`, status: 400, code: "invalid_payload", docRejects: true},
		{name: "too large", body: `{"type":"text","payload":{"text":"` + strings.Repeat("x", 70<<10) + `"}}`, status: 413, code: "body_too_large", why: "OpenAPI has no byte limit for a body"},
		{name: "no such conversation", path: "/v1/conversations/nobody/messages", body: `{"type":"text","payload":{"text":"x"}}`, status: 404, code: "conversation_not_found"},
		{name: "dot-dot parameter", path: "/v1/conversations/%2E%2E/messages", body: `{"type":"text","payload":{"text":"x"}}`, status: 404, code: "not_found", docRejects: true},
	} {
		x.name, x.method = "push: "+x.name, "POST"
		if x.path == "" {
			x.path = pushPath
		}
		c.call(t, api, x.withAuth(bot))
	}

	// Deliveries: the flaky conversation's answer fails once, so it has an attempt log.
	c.call(t, api, specCall{name: "accept flaky", method: "POST", path: "/", auth: dev, body: msg("flaky", "f1", "text", ``), status: 200})
	flakyID := message.ReplyRef(message.DefaultChannel, "flaky", "f1", 0)
	specWait(t, "the flaky answer's delivery", func() bool { return hooks.delivered(flakyID) })
	specWait(t, "the flaky answer's attempt log", func() bool {
		return strings.Contains(string(specGet(t, api+"v1/deliveries/"+flakyID)), `"status":"delivered"`)
	})
	logged := c.call(t, api, specCall{name: "delivery log", method: "GET", path: "/v1/deliveries/" + flakyID, auth: dev, status: 200})
	var l message.DeliveryLog
	if err := json.Unmarshal(logged.body, &l); err != nil || len(l.Attempts) != 2 || l.Attempts[0].Answer != "receiver says no" {
		t.Errorf("delivery log = %s, want a failed attempt and the success", logged.body)
	}
	c1Reply := message.ReplyRef(message.DefaultChannel, "c1", "m1", 0)
	specWait(t, "c1's first answer", func() bool { return hooks.delivered(c1Reply) })
	for _, x := range []specCall{
		{name: "delivery at the first try", method: "GET", path: "/v1/deliveries/" + c1Reply, status: 200},
		{name: "unknown delivery", method: "GET", path: "/v1/deliveries/msg_nothing", status: 200},
		{name: "delivery: dot", method: "GET", path: "/v1/deliveries/%2E%2E", status: 404, code: "not_found", docRejects: true},
		{name: "replay from the log", method: "POST", path: "/v1/deliveries/" + flakyID + "/replay", status: 200},
		{name: "replay from the history", method: "POST", path: "/v1/deliveries/" + c1Reply + "/replay?conversationId=c1", status: 200},
		{name: "replay: not logged", method: "POST", path: "/v1/deliveries/" + c1Reply + "/replay", status: 404, code: "delivery_not_found"},
		{name: "replay: not in that history", method: "POST", path: "/v1/deliveries/" + flakyID + "/replay?conversationId=c1", status: 404, code: "delivery_not_found"},
		{name: "replay: dot", method: "POST", path: "/v1/deliveries/./replay", status: 404, code: "not_found", docRejects: true},
	} {
		c.call(t, api, x.withAuth(dev))
	}
	specWait(t, "the replayed deliveries", func() bool { return hooks.count(flakyID) >= 3 && hooks.count(c1Reply) >= 2 })

	// Erasure.
	for _, x := range []specCall{
		{name: "erase a conversation", path: "/v1/conversations/c1", status: 200},
		{name: "erase it again", path: "/v1/conversations/c1", status: 200},
		{name: "erase a user", path: "/v1/users/u1", status: 200},
		{name: "erase: dot-dot conversation", path: "/v1/conversations/%2E%2E", status: 404, code: "not_found", docRejects: true},
		{name: "erase: dot user", path: "/v1/users/%2e", status: 404, code: "not_found", docRejects: true},
	} {
		x.method = "DELETE"
		c.call(t, api, x.withAuth(dev))
	}

	// 503: a stack whose store and queue are a closed port, and one whose queue is.
	c.unavailable(t)

	c.checkCoverage(t)
	hooks.check(t, doc, s.SigningSecrets)
}

// unavailable drives every route against stacks whose dependencies fail.
func (c *specCheck) unavailable(t *testing.T) {
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + addr // nothing listens: calls fail at once
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_MAX_ATTEMPTS": "1",
		"AWS_ENDPOINT_URL_DYNAMODB": closed, "AWS_ENDPOINT_URL_SQS": closed,
	} {
		t.Setenv(k, v)
	}
	queue := closed + "/000000000000/openapi.fifo"
	down := startSpecStack(t, map[string]string{"PARLEY_DEV_ROLE": devstack.RoleInbound, "PARLEY_TABLE_NAME": "openapi",
		"PARLEY_QUEUE_URL": queue, "PARLEY_DEAD_LETTER_QUEUE_URL": queue})
	// A token that is not PARLEY_TOKEN is looked up in the store, which is down.
	unverifiable := "prly_unverifiable"
	c.tokens[unverifiable] = message.ScopeBackend
	for _, op := range []struct{ method, path, body string }{
		{"POST", "/", `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"x"}`},
		{"GET", "/v1/conversations/c1/messages", ""},
		{"DELETE", "/v1/conversations/c1", ""},
		{"DELETE", "/v1/users/u1", ""},
		{"GET", "/v1/deliveries/msg_x", ""},
		{"POST", "/v1/deliveries/msg_x/replay?conversationId=c1", ""},
	} {
		c.call(t, down.URL, specCall{name: "store down: " + op.method + " " + op.path, method: op.method, path: op.path, auth: "bearer dev-token", body: op.body, status: 503, code: "store_unavailable"})
		c.call(t, down.URL, specCall{name: "auth down: " + op.method + " " + op.path, method: op.method, path: op.path, auth: "bearer " + unverifiable, body: op.body, status: 503, code: "auth_unavailable"})
	}
	c.tokens[unverifiable] = message.ScopeBot
	c.call(t, down.URL, specCall{name: "auth down: push", method: "POST", path: "/v1/conversations/c1/messages", auth: "bearer " + unverifiable,
		body: `{"type":"text","payload":{"text":"x"}}`, status: 503, code: "auth_unavailable"})

	// DynamoDB Local up, the queue down: the message is stored, its turn cannot be queued.
	ddb := emulator.DynamoDB(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb.URL)
	table := fmt.Sprintf("openapi-%d", time.Now().UnixNano())
	if err := dynamo.CreateTable(context.Background(), ddb.DynamoDBClient(), table); err != nil {
		t.Fatal(err)
	}
	noQueue := startSpecStack(t, map[string]string{"PARLEY_DEV_ROLE": devstack.RoleInbound, "PARLEY_TABLE_NAME": table,
		"PARLEY_QUEUE_URL": queue, "PARLEY_DEAD_LETTER_QUEUE_URL": queue})
	botToken := specAdmin(t, noQueue, devstack.TokensPrefix, `{"channel":"default","name":"openapi bot","scope":"bot"}`)["token"].(string)
	c.tokens[botToken] = message.ScopeBot
	c.call(t, noQueue.URL, specCall{name: "queue down", method: "POST", path: "/", auth: "bearer dev-token",
		body: `{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"x"}`, status: 503, code: "queue_unavailable"})
	c.call(t, noQueue.URL, specCall{name: "queue down: push", method: "POST", path: "/v1/conversations/c1/messages", auth: "bearer " + botToken,
		body: `{"type":"text","payload":{"text":"x"}}`, status: 503, code: "queue_unavailable"})
}

// specCall is one request and what the API must answer.
type specCall struct {
	name   string
	method string
	path   string // as sent, with its query
	auth   string // the Authorization header; "-" sends none
	header map[string]string
	body   string
	status int
	code   string // the error code; "" for a 200
	// docRejects: the document rejects the request too. When it cannot tell (a byte
	// limit, an escape the JSON decoder hides), why says so.
	docRejects bool
	why        string
}

// withAuth fills in the Authorization header when the call names none.
func (x specCall) withAuth(auth string) specCall {
	if x.auth == "" {
		x.auth = auth
	}
	return x
}

type specAnswer struct {
	status int
	header http.Header
	body   []byte
}

// specCheck sends requests and checks them and their answers against the document.
type specCheck struct {
	doc      *openapi3.T
	router   routers.Router
	tokens   map[string]string // token → scope, for the document's security check
	unrouted map[int]*openapi3.ResponseRef
	seen     map[string]bool // "METHOD /path status" and "METHOD /path status code"
}

func newSpecCheck(t *testing.T, doc *openapi3.T) *specCheck {
	t.Helper()
	// The servers are the deployments'; the test's stacks listen on free ports.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		t.Fatal(err)
	}
	c := &specCheck{doc: doc, router: router, unrouted: map[int]*openapi3.ResponseRef{}, seen: map[string]bool{}}
	ext, _ := doc.Extensions["x-unrouted-responses"].(map[string]any)
	for status, v := range ext {
		ref, _ := v.(map[string]any)["$ref"].(string)
		name, ok := strings.CutPrefix(ref, "#/components/responses/")
		res := doc.Components.Responses[name]
		if !ok || res == nil {
			t.Fatalf("x-unrouted-responses %s: %q is not a response of the document", status, ref)
		}
		code, err := strconv.Atoi(status)
		if err != nil {
			t.Fatalf("x-unrouted-responses: %q is not a status", status)
		}
		c.unrouted[code] = res
	}
	if c.unrouted[404] == nil || c.unrouted[405] == nil {
		t.Fatalf("x-unrouted-responses = %v, want 404 and 405", ext)
	}
	return c
}

// call sends x to the stack at base and checks the request, the answer and the
// document's opinion of both.
func (c *specCheck) call(t *testing.T, base string, x specCall) specAnswer {
	t.Helper()
	url := strings.TrimSuffix(base, "/") + x.path
	newReq := func() *http.Request {
		req, err := http.NewRequest(x.method, url, strings.NewReader(x.body))
		if err != nil {
			t.Fatalf("%s: %v", x.name, err)
		}
		if x.body == "" {
			req.Body, req.ContentLength = http.NoBody, 0
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		if x.auth != "" && x.auth != "-" {
			req.Header.Set("Authorization", x.auth)
		}
		for k, v := range x.header {
			req.Header.Set(k, v)
		}
		return req
	}
	res, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", x.name, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s: read the answer: %v", x.name, err)
	}
	got := specAnswer{res.StatusCode, res.Header, body}
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(body, &e)
	if got.status != x.status || e.Error.Code != x.code {
		t.Errorf("%s: %s %s = %d %s, want %d %s", x.name, x.method, x.path, got.status, body, x.status, x.code)
	}

	req := newReq()
	route, params, err := c.router.FindRoute(req)
	for k, v := range params {
		// The router leaves path parameters escaped; their schema is of the value.
		if u, err := neturl.PathUnescape(v); err == nil {
			params[k] = u
		}
	}
	input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: c.authenticate, MultiError: true}}
	key := ""
	switch {
	case errors.Is(err, routers.ErrPathNotFound), errors.Is(err, routers.ErrMethodNotAllowed):
		status := map[bool]int{true: 404, false: 405}[errors.Is(err, routers.ErrPathNotFound)]
		if got.status != status {
			t.Errorf("%s: the document has no such %s, so the answer must be %d; got %d", x.name,
				map[int]string{404: "path", 405: "method"}[status], status, got.status)
		}
		input.Route = &routers.Route{Spec: c.doc, Path: x.path, PathItem: &openapi3.PathItem{}, Method: x.method,
			Operation: &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, c.unrouted[status]))}}
		key = "unrouted"
	case err != nil:
		t.Fatalf("%s: find the route: %v", x.name, err)
	default:
		key = route.Method + " " + route.Path
		err := openapi3filter.ValidateRequest(context.Background(), input)
		switch {
		case x.docRejects && err == nil:
			t.Errorf("%s: the API answers %d but the document accepts the request", x.name, got.status)
		case !x.docRejects && err != nil:
			t.Errorf("%s: the document rejects the request: %v", x.name, err)
		case !x.docRejects && x.why == "" && (x.status == 400 || x.status == 413):
			t.Errorf("%s: a %d the document does not see coming needs a reason (why)", x.name, x.status)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: got.status, Header: got.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: %s %s answered %d %s, which the document does not allow: %v", x.name, x.method, x.path, got.status, body, err)
	}
	c.seen[fmt.Sprintf("%s %d", key, got.status)] = true
	if e.Error.Code != "" {
		c.seen[fmt.Sprintf("%s %d %s", key, got.status, e.Error.Code)] = true
	}
	return got
}

// authenticate is the document's security check: the scheme's form, a token the test
// made, and the scope the operation names as its role.
func (c *specCheck) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if in.SecurityScheme.Type != "http" || !strings.EqualFold(scheme, in.SecurityScheme.Scheme) || tok == "" {
		return fmt.Errorf("want Authorization: %s <token>", in.SecurityScheme.Scheme)
	}
	scope, ok := c.tokens[tok]
	if !ok {
		return errors.New("unknown token")
	}
	if !slices.Contains(in.Scopes, scope) {
		return fmt.Errorf("a %s token; the operation needs %v", scope, in.Scopes)
	}
	return nil
}

// checkCoverage fails for a documented status or error code no call was answered with.
func (c *specCheck) checkCoverage(t *testing.T) {
	t.Helper()
	want := map[string]bool{}
	add := func(key string, status string, res *openapi3.ResponseRef) {
		want[key+" "+status] = true
		if mt := res.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			for _, code := range specCodes(mt.Schema.Value) {
				want[key+" "+status+" "+code] = true
			}
		}
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, res := range op.Responses.Map() {
				add(method+" "+path, status, res)
			}
		}
	}
	for status, res := range c.unrouted {
		add("unrouted", fmt.Sprint(status), res)
	}
	var missing []string
	for k := range want {
		_, exempt := unexercised[k]
		switch {
		case exempt && c.seen[k]:
			t.Errorf("%q is listed as unexercised but was answered: remove it from the list", k)
		case !exempt && !c.seen[k]:
			missing = append(missing, k)
		}
	}
	for k := range unexercised {
		if !want[k] {
			t.Errorf("unexercised lists %q, which the document does not have", k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("documented but never answered: %s", k)
	}
	for k := range c.seen {
		if !want[k] {
			t.Errorf("answered but not documented: %s", k)
		}
	}
}

// specCodes lists the error codes an error schema allows.
func specCodes(s *openapi3.Schema) []string {
	var out []string
	if e := s.Properties["error"]; e != nil && e.Value != nil {
		if code := e.Value.Properties["code"]; code != nil && code.Value != nil {
			for _, v := range code.Value.Enum {
				out = append(out, fmt.Sprint(v))
			}
			if code.Value.Const != nil {
				out = append(out, fmt.Sprint(code.Value.Const))
			}
		}
	}
	for _, sub := range s.AllOf {
		out = append(out, specCodes(sub.Value)...)
	}
	return out
}

// specHooks receives the stack's webhooks, failing the first attempt of a chosen
// conversation's messages, and checks each against the document afterwards.
type specHooks struct {
	url   string
	flaky string
	mu    sync.Mutex
	got   []*http.Request
	ids   map[string]int // webhook-id → attempts
	ok    map[string]bool
}

func (c *specCheck) webhookReceiver(t *testing.T, flaky string) *specHooks {
	h := &specHooks{flaky: flaky, ids: map[string]int{}, ok: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		copied := r.Clone(context.Background())
		copied.Body = io.NopCloser(bytes.NewReader(b))
		var body struct{ ConversationID string }
		_ = json.Unmarshal(b, &body)
		id := r.Header.Get("webhook-id")
		h.mu.Lock()
		defer h.mu.Unlock()
		h.got = append(h.got, copied)
		h.ids[id]++
		if body.ConversationID == h.flaky && h.ids[id] == 1 {
			w.WriteHeader(500)
			io.WriteString(w, "receiver says no")
			return
		}
		h.ok[id] = true
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hooks"
	return h
}

func (h *specHooks) delivered(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok[id]
}

func (h *specHooks) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ids[id]
}

// check validates every webhook received against the botMessage webhook and its
// signature with secrets, and wants every message type and a bot message sent through
// the API among them.
func (h *specHooks) check(t *testing.T, doc *openapi3.T, secrets string) {
	t.Helper()
	keys, err := webhook.ParseSecrets(secrets)
	if err != nil {
		t.Fatal(err)
	}
	item := doc.Webhooks["botMessage"]
	if item == nil || item.Post == nil {
		t.Fatal("no botMessage webhook in the document")
	}
	route := &routers.Route{Spec: doc, Path: "botMessage", PathItem: item, Method: "POST", Operation: item.Post}
	h.mu.Lock()
	defer h.mu.Unlock()
	types := map[string]bool{}
	pushed := false
	for _, r := range h.got {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		in := &openapi3filter.RequestValidationInput{Request: r, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("webhook %s %s: the document does not allow it: %v", r.Header.Get("webhook-id"), b, err)
		}
		// The tolerance is for the timestamp: these webhooks are seconds old.
		if err := webhook.Verify(keys, r.Header, b, time.Hour, time.Now()); err != nil {
			t.Errorf("webhook %s: signature: %v", r.Header.Get("webhook-id"), err)
		}
		var w struct{ Type string }
		_ = json.Unmarshal(b, &w)
		types[w.Type] = true
		if r.Header.Get("Parley-In-Reply-To") == "" {
			pushed = true
		}
	}
	for _, typ := range message.Types {
		if !types[typ] {
			t.Errorf("no %s webhook was checked", typ)
		}
	}
	if !pushed {
		t.Error("no webhook of a bot message sent through the API was checked")
	}
}

// startSpecStack starts a local stack on env and closes it when the test ends.
func startSpecStack(t *testing.T, env map[string]string) *devstack.Stack {
	t.Helper()
	env["PORT"] = "0"
	cfg, err := devstack.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s, err := devstack.Start(cfg, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// specAdmin POSTs to the stack's operator API and returns the answer.
func specAdmin(t *testing.T, s *devstack.Stack, path, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", strings.TrimSuffix(s.URL, "/")+path, strings.NewReader(body))
	req.Header.Set("Authorization", "bearer "+s.AdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("POST %s = %d %v %v", path, res.StatusCode, out, err)
	}
	return out
}

// specGet reads a route with the default token, outside the checks.
func specGet(t *testing.T, url string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "bearer dev-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

func specHistory(t *testing.T, api, conv string) []json.RawMessage {
	var page struct{ Messages []json.RawMessage }
	_ = json.Unmarshal(specGet(t, api+"v1/conversations/"+conv+"/messages?limit=100"), &page)
	return page.Messages
}

func specWait(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
