package delivery_test

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/delivery"
)

// FuzzDecodeRecord: no queue record panics the decoder, and a decoded record always has
// a webhook id and the body byte for byte.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(`{"type":"text","payload":{"text":"hi"},"conversationId":"c1","botpressUserId":"u","botpressMessageId":"msg_1","botpressConversationId":"conv"}`, "msg_1", "3", "m1")
	f.Add(`{}`, "", "x", "")
	f.Add(`not json`, "id", "-1", "m")
	f.Add(`{"botpressMessageId":7}`, "", "99999999999999999999", "")
	f.Fuzz(func(t *testing.T, body, id, index, inReplyTo string) {
		m := events.SQSMessage{Body: body, Attributes: map[string]string{"MessageGroupId": "g"}, MessageAttributes: map[string]events.SQSMessageAttribute{}}
		for k, v := range map[string]string{delivery.AttrWebhookID: id, delivery.AttrReplyIndex: index, delivery.AttrInReplyTo: inReplyTo} {
			m.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: &v, DataType: "String"}
		}
		d, err := delivery.Decode(m)
		if err != nil {
			return
		}
		if d.ID == "" || string(d.Body) != body || d.GroupID != "g" {
			t.Fatalf("Decode = %+v", d)
		}
	})
}
