package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the inbound contract. The body limit keeps one echoed bot message, with
// its envelope, well inside an SQS message and a DynamoDB item.
const (
	MaxBodyBytes  = 64 << 10
	MaxIDBytes    = 256
	MaxTypeBytes  = 64
	MaxTextBytes  = 32 << 10
	maxJSONDepth  = 32
	maxFieldCount = 1000
)

// Inbound is a user message as the backend POSTs it, after validation and the
// original integration's payload defaults.
type Inbound struct {
	UserID         string
	MessageID      string
	ConversationID string
	Type           string
	Text           string
	// Payload is a JSON object, always with a "text" member, keys in sorted order.
	Payload json.RawMessage
}

// Hash is a digest of everything that makes two requests with the same messageId the
// same message: reusing a messageId with a different digest is a conflict.
func (m Inbound) Hash() string {
	h := sha256.New()
	for _, p := range []string{m.UserID, m.ConversationID, m.MessageID, m.Type, m.Text, string(m.Payload)} {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DecodeInbound parses and validates a request body. Errors are *Error of kind Invalid
// naming the field at fault. Unknown fields are ignored.
func DecodeInbound(body []byte) (Inbound, error) {
	var m Inbound
	if len(bytes.TrimSpace(body)) == 0 {
		return m, Invalidf("", "empty_body", "the request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return m, Invalidf("", "invalid_encoding", "the request body is not valid UTF-8")
	}
	if err := checkDepth(body); err != nil {
		return m, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return m, Invalidf("", "invalid_json", "the request body must be a JSON object, not %s", typeErr.Value)
		}
		return m, Invalidf("", "invalid_json", "the request body is not valid JSON: %s", jsonErrText(err))
	}
	if raw == nil {
		return m, Invalidf("", "invalid_json", "the request body must be a JSON object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, Invalidf("", "invalid_json", "the request body has data after the JSON object")
	}

	var err error
	if m.UserID, err = identifier(raw, "userId"); err != nil {
		return m, err
	}
	if m.MessageID, err = identifier(raw, "messageId"); err != nil {
		return m, err
	}
	if m.ConversationID, err = identifier(raw, "conversationId"); err != nil {
		return m, err
	}
	if m.Type, err = requiredString(raw, "type", MaxTypeBytes); err != nil {
		return m, err
	}
	if !KnownType(m.Type) {
		return m, Invalidf("type", "invalid_type", "type %q is not supported; use one of %s", clip(m.Type), strings.Join(Types, ", "))
	}
	if m.Text, err = requiredString(raw, "text", MaxTextBytes); err != nil {
		return m, err
	}
	obj, err := normalizePayload(raw["payload"], m.Text)
	if err != nil {
		return m, err
	}
	m.Payload, err = validPayload(m.Type, obj)
	return m, err
}

// DecodeBotMessage parses and validates a bot message sent through the API: {"type":
// …, "payload": {…}}, with the same rules as a user message's type and payload (the
// payload has no defaults: a bot message says what it says). Errors name the field.
func DecodeBotMessage(body []byte) (Reply, error) {
	var r Reply
	if len(bytes.TrimSpace(body)) == 0 {
		return r, Invalidf("", "empty_body", "the request body is empty; send {\"type\": …, \"payload\": {…}}")
	}
	if !utf8.Valid(body) {
		return r, Invalidf("", "invalid_encoding", "the request body is not valid UTF-8")
	}
	if err := checkDepth(body); err != nil {
		return r, err
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return r, Invalidf("", "invalid_json", "the request body must be a JSON object with type and payload")
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, Invalidf("", "invalid_json", "the request body has data after the JSON object")
	}
	var err error
	if r.Type, err = requiredString(raw, "type", MaxTypeBytes); err != nil {
		return r, err
	}
	if !KnownType(r.Type) {
		return r, Invalidf("type", "invalid_type", "type %q is not supported; use one of %s", clip(r.Type), strings.Join(Types, ", "))
	}
	p, ok := raw["payload"]
	if !ok || string(p) == "null" {
		return r, Invalidf("payload", "missing_field", "payload is required")
	}
	obj, err := payloadObject(p)
	if err != nil {
		return r, err
	}
	r.Payload, err = validPayload(r.Type, obj)
	return r, err
}

// payloadObject decodes a payload: a JSON object of at most maxFieldCount members.
func payloadObject(p json.RawMessage) (map[string]any, error) {
	obj := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, Invalidf("payload", "invalid_field_type", "payload must be a JSON object, not %s", jsonKind(p))
	}
	if len(obj) > maxFieldCount {
		return nil, Invalidf("payload", "payload_too_complex", "payload has %d members; the limit is %d", len(obj), maxFieldCount)
	}
	return obj, nil
}

// validPayload checks a decoded payload against the schema of type t and encodes it:
// decoded once, checked and stored as the same value.
func validPayload(t string, obj map[string]any) (json.RawMessage, error) {
	if err := validate(t, obj, "payload"); err != nil {
		return nil, err
	}
	b, err := Marshal(obj)
	if err != nil {
		return nil, Invalidf("payload", "invalid_field_type", "payload must be a JSON object")
	}
	return b, nil
}

func identifier(raw map[string]json.RawMessage, field string) (string, error) {
	s, err := requiredString(raw, field, MaxIDBytes)
	if err != nil {
		return "", err
	}
	// encoding/json turns an unpaired surrogate escape into U+FFFD, so "x\ud800" and
	// "x\udc00" would become one id: refuse them instead of comparing what was not sent.
	if unpairedSurrogate(raw[field]) {
		return "", Invalidf(field, "invalid_character", "%s must not contain an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)", field)
	}
	if strings.TrimSpace(s) == "" {
		return "", Invalidf(field, "blank_field", "%s must not be blank", field)
	}
	for _, r := range s {
		// Control and invisible formatting characters (bidi overrides, zero-width
		// joiners) make ids that look alike but differ, and break headers.
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", Invalidf(field, "invalid_character", "%s must not contain control or invisible formatting characters", field)
		}
	}
	return s, nil
}

func requiredString(raw map[string]json.RawMessage, field string, max int) (string, error) {
	v, ok := raw[field]
	if !ok || string(v) == "null" {
		return "", Invalidf(field, "missing_field", "%s is required", field)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", Invalidf(field, "invalid_field_type", "%s must be a string, not %s", field, jsonKind(v))
	}
	if s == "" {
		return "", Invalidf(field, "empty_field", "%s must not be empty", field)
	}
	if len(s) > max {
		return "", Invalidf(field, "field_too_long", "%s is %d bytes; the limit is %d", field, len(s), max)
	}
	return s, nil
}

// normalizePayload applies the original integration's defaults: an absent payload is
// {"text": text}, and a payload without "text" gets it.
func normalizePayload(v json.RawMessage, text string) (map[string]any, error) {
	obj := map[string]any{}
	if len(v) > 0 && string(v) != "null" {
		var err error
		if obj, err = payloadObject(v); err != nil {
			return nil, err
		}
	}
	// As the original does (`if (!payload.text) payload.text = text`): any falsy
	// value — absent, null, "", false, 0 — becomes the text.
	switch t := obj["text"].(type) {
	case string:
		if t == "" {
			obj["text"] = text
		}
	default:
		if !falsy(t) {
			return nil, Invalidf("payload.text", "invalid_field_type", "payload.text must be a string, not %s", goKind(t))
		}
		obj["text"] = text
	}
	return obj, nil
}

// falsy is JavaScript's falsiness for a decoded JSON value other than a string.
func falsy(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case json.Number:
		f, err := t.Float64()
		return err == nil && f == 0
	}
	return false
}

// Marshal encodes v as JSON without HTML escaping, so payloads pass through as sent.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkDepth rejects absurdly nested documents before they are decoded.
func checkDepth(body []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > maxJSONDepth {
				return Invalidf("", "payload_too_complex", "the request body is nested more than %d levels deep", maxJSONDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

func jsonKind(v json.RawMessage) string {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func goKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a number"
	}
}

func jsonErrText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

// clip shortens caller input echoed in an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// unpairedSurrogate reports whether a JSON string literal holds a \uD800-\uDFFF escape
// that is not a high surrogate followed at once by a low one.
func unpairedSurrogate(lit []byte) bool {
	for i := 0; i+1 < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		if lit[i+1] != 'u' {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		r, ok := hex4(lit, i+2)
		if !ok {
			continue
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low surrogate with no high one before it
		case r >= 0xD800 && r <= 0xDBFF:
			if i+7 < len(lit) && lit[i+6] == '\\' && lit[i+7] == 'u' {
				if lo, ok := hex4(lit, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return true
		}
		i += 5
	}
	return false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
