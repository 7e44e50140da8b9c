package message_test

import (
	"encoding/json"
	"testing"

	"github.com/parley-chat/parley/shared/message"
)

// FuzzDecodeInbound: no input panics; an accepted message has every rule of the
// contract hold, and its normalized payload decodes back to itself.
func FuzzDecodeInbound(f *testing.F) {
	for _, seed := range []string{
		`{"userId":"u1","messageId":"m1","conversationId":"c1","type":"text","text":"hi"}`,
		`{"userId":"u1","messageId":"m1","conversationId":"c1","type":"image","text":"cat","payload":{"imageUrl":"https://x/y.png"}}`,
		`{"userId":"u","messageId":"m","conversationId":"c","type":"choice","text":"t","payload":{"text":"t","options":[{"label":"a","value":"b"}]}}`,
		`{"userId":"u","messageId":"m","conversationId":"c","type":"bloc","text":"t","payload":{"items":[{"type":"location","payload":{"latitude":1,"longitude":2}}]}}`,
		`{"userId":1}`, `[]`, `null`, `{"payload":{"text":null}}`, "{\"userId\":\"\xff\"}", `{"a":[[[[[[]]]]]]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := message.DecodeInbound(body)
		if err != nil {
			if message.KindOf(err) != message.Invalid {
				t.Fatalf("error of kind %d, want Invalid: %v", message.KindOf(err), err)
			}
			return
		}
		if m.UserID == "" || m.MessageID == "" || m.ConversationID == "" || m.Text == "" || !message.KnownType(m.Type) {
			t.Fatalf("accepted an invalid message: %+v", m)
		}
		var payload map[string]any
		if err := json.Unmarshal(m.Payload, &payload); err != nil {
			t.Fatalf("payload %s is not an object: %v", m.Payload, err)
		}
		if text, _ := payload["text"].(string); text == "" {
			t.Fatalf("payload %s has no text (a falsy payload.text becomes text)", m.Payload)
		}
		if err := message.ValidatePayload(m.Type, m.Payload); err != nil {
			t.Fatalf("normalized payload no longer validates: %v", err)
		}
	})
}
