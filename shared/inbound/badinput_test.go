package inbound

import (
	"strings"
	"testing"
)

// Every bad request gets a 4xx JSON error naming the problem, and leaves nothing
// stored or queued behind.
func TestBadInputs(t *testing.T) {
	ok := func(change func(m map[string]string)) string {
		m := map[string]string{"userId": `"u1"`, "messageId": `"m1"`, "conversationId": `"c1"`, "type": `"text"`, "text": `"hi"`}
		change(m)
		var parts []string
		for _, k := range []string{"userId", "messageId", "conversationId", "type", "text", "payload"} {
			if v, present := m[k]; present {
				parts = append(parts, `"`+k+`":`+v)
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	set := func(k, v string) string { return ok(func(m map[string]string) { m[k] = v }) }
	drop := func(k string) string { return ok(func(m map[string]string) { delete(m, k) }) }
	long := strings.Repeat("x", 257)

	cases := []struct {
		name   string
		auth   string // "" means a valid token
		body   string
		status int
		code   string
		field  string
	}{
		{"no auth header", "-", hello, 401, "missing_token", ""},
		{"basic scheme", "Basic dXNlcjpwYXNz", hello, 401, "invalid_authorization", ""},
		{"scheme only", "Bearer", hello, 401, "invalid_authorization", ""},
		{"token without scheme", testToken, hello, 401, "invalid_authorization", ""},
		{"wrong token", "Bearer nope", hello, 401, "invalid_token", ""},
		{"token with spaces", "Bearer a b", hello, 401, "invalid_authorization", ""},
		{"empty body", "", "", 400, "empty_body", ""},
		{"whitespace body", "", "  \n ", 400, "empty_body", ""},
		{"not json", "", "hello", 400, "invalid_json", ""},
		{"truncated json", "", `{"userId":"u1"`, 400, "invalid_json", ""},
		{"json array", "", `[1,2]`, 400, "invalid_json", ""},
		{"json string", "", `"hi"`, 400, "invalid_json", ""},
		{"json null", "", `null`, 400, "invalid_json", ""},
		{"trailing data", "", hello + `{}`, 400, "invalid_json", ""},
		{"invalid utf-8", "", "{\"userId\":\"\xff\xfe\"}", 400, "invalid_encoding", ""},
		{"deep nesting", "", set("payload", strings.Repeat(`{"a":`, 40)+`1`+strings.Repeat(`}`, 40)), 400, "payload_too_complex", ""},
		{"missing userId", "", drop("userId"), 400, "missing_field", "userId"},
		{"missing messageId", "", drop("messageId"), 400, "missing_field", "messageId"},
		{"missing conversationId", "", drop("conversationId"), 400, "missing_field", "conversationId"},
		{"missing type", "", drop("type"), 400, "missing_field", "type"},
		{"missing text", "", drop("text"), 400, "missing_field", "text"},
		{"null userId", "", set("userId", "null"), 400, "missing_field", "userId"},
		{"numeric userId", "", set("userId", "42"), 400, "invalid_field_type", "userId"},
		{"object messageId", "", set("messageId", `{"id":1}`), 400, "invalid_field_type", "messageId"},
		{"bool conversationId", "", set("conversationId", "true"), 400, "invalid_field_type", "conversationId"},
		{"array text", "", set("text", `["hi"]`), 400, "invalid_field_type", "text"},
		{"empty userId", "", set("userId", `""`), 400, "empty_field", "userId"},
		{"empty text", "", set("text", `""`), 400, "empty_field", "text"},
		{"empty type", "", set("type", `""`), 400, "empty_field", "type"},
		{"blank messageId", "", set("messageId", `"   "`), 400, "blank_field", "messageId"},
		{"control char in conversationId", "", set("conversationId", `"c\n1"`), 400, "invalid_character", "conversationId"},
		{"NUL in userId", "", set("userId", `"u\u00001"`), 400, "invalid_character", "userId"},
		{"bidi override only allowed in text", "", set("messageId", `"m\u202e1"`), 400, "invalid_character", "messageId"},
		{"long messageId", "", set("messageId", `"`+long+`"`), 400, "field_too_long", "messageId"},
		{"unknown type", "", set("type", `"sticker"`), 400, "invalid_type", "type"},
		{"payload string", "", set("payload", `"test"`), 400, "invalid_field_type", "payload"},
		{"payload array", "", set("payload", `[{"text":"hi"}]`), 400, "invalid_field_type", "payload"},
		{"payload.text number", "", set("payload", `{"text":5}`), 400, "invalid_field_type", "payload.text"},
		{"payload.text true", "", set("payload", `{"text":true}`), 400, "invalid_field_type", "payload.text"},
		{"payload.text object", "", set("payload", `{"text":{"a":1}}`), 400, "invalid_field_type", "payload.text"},
		// encoding/json would turn each into U+FFFD and make three ids one.
		{"lone high surrogate", "", set("messageId", `"x\ud800"`), 400, "invalid_character", "messageId"},
		{"lone high surrogate at the end", "", set("conversationId", `"x\udbff"`), 400, "invalid_character", "conversationId"},
		{"lone low surrogate", "", set("userId", `"x\udc00"`), 400, "invalid_character", "userId"},
		{"reversed pair", "", set("messageId", `"\udc00\ud800"`), 400, "invalid_character", "messageId"},
		{"image without url", "", ok(func(m map[string]string) { m["type"] = `"image"`; m["payload"] = `{"title":"cat"}` }), 400, "invalid_payload", "payload.imageUrl"},
		{"location as strings", "", ok(func(m map[string]string) {
			m["type"] = `"location"`
			m["payload"] = `{"latitude":"45","longitude":"-73"}`
		}), 400, "invalid_payload", "payload.latitude"},
		{"choice option without value", "", ok(func(m map[string]string) {
			m["type"] = `"choice"`
			m["payload"] = `{"text":"Pick","options":[{"label":"A"}]}`
		}), 400, "invalid_payload", "payload.options[0].value"},
		{"card with bad action", "", ok(func(m map[string]string) {
			m["type"] = `"card"`
			m["payload"] = `{"title":"T","actions":[{"action":"call","label":"x","value":"y"}]}`
		}), 400, "invalid_payload", "payload.actions[0].action"},
		{"carousel item not a card", "", ok(func(m map[string]string) {
			m["type"] = `"carousel"`
			m["payload"] = `{"items":[{"subtitle":"no title"}]}`
		}), 400, "invalid_payload", "payload.items[0].title"},
		{"bloc with markdown item", "", ok(func(m map[string]string) {
			m["type"] = `"bloc"`
			m["payload"] = `{"items":[{"type":"markdown","payload":{"markdown":"*x*"}}]}`
		}), 400, "invalid_payload", "payload.items[0].type"},
		{"body over the limit", "", set("text", `"`+strings.Repeat("a", 70000)+`"`), 413, "body_too_large", ""},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			req := post(tc.body)
			switch tc.auth {
			case "":
			case "-":
				delete(req.Headers, "authorization")
			default:
				req.Headers["authorization"] = tc.auth
			}
			res := f.do(t, req)
			assertError(t, res, tc.status, tc.code, tc.field)
			if records, exchanges := f.store.Records(); records+exchanges != 0 {
				t.Errorf("%d records and %d exchanges stored, want none", records, exchanges)
			}
			if queued, inFlight, dead := f.queue.Stats(); queued+inFlight+dead != 0 {
				t.Errorf("queue holds %d messages, want 0", queued+inFlight+dead)
			}
		})
	}
}

// A well-formed surrogate pair is an ordinary character, and a JSON-escaped backslash
// before "u" is not an escape.
func TestSurrogatePairsAndEscapedBackslashesAreIDs(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{`"x\ud83d\ude00"`, `"x\\ud800"`, `"😀"`} {
		body := `{"userId":"u1","messageId":` + id + `,"conversationId":"c1","type":"text","text":"hi"}`
		if res := f.do(t, post(body)); res.StatusCode != 200 {
			t.Errorf("messageId %s = %d %s, want 200", id, res.StatusCode, res.Body)
		}
	}
	// "x\ud83d\ude00" and "😀"-style ids differ from each other: three jobs.
	if q := f.queued(t); len(q) != 3 {
		t.Errorf("%d jobs, want 3 distinct messages", len(q))
	}
}
