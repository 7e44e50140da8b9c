package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// Message attribute names carried beside each queued webhook body. The body itself is
// exactly the webhook of CONTRACT.md §2, so an operator reading the queue or the
// dead-letter queue sees what the receiver would get.
const (
	AttrWebhookID     = "parley-webhook-id"
	AttrInReplyTo     = "parley-in-reply-to"
	AttrReplyIndex    = "parley-reply-index"
	AttrReplyCount    = "parley-reply-count"
	AttrFailureReason = "parley-failure-reason" // dead letters only
	AttrAttempts      = "parley-attempts"       // dead letters only
	AttrFailedAt      = "parley-failed-at"      // dead letters only, RFC 3339
)

// Attributes returns the message attributes that go with d on the queue.
func Attributes(d message.Delivery) map[string]string {
	a := map[string]string{AttrWebhookID: d.ID, AttrReplyIndex: strconv.Itoa(d.Index), AttrReplyCount: strconv.Itoa(d.Count)}
	if d.InReplyTo != "" {
		a[AttrInReplyTo] = d.InReplyTo
	}
	return a
}

// ErrRecord marks a queue record that can never be delivered as it is.
var ErrRecord = errors.New("undeliverable queue record")

// Decode turns a queue record back into a Delivery. The webhook id falls back to the
// body's botpressMessageId, so a record sent by hand with the six fields works too.
func Decode(m events.SQSMessage) (message.Delivery, error) {
	d := message.Delivery{Body: []byte(m.Body), GroupID: m.Attributes["MessageGroupId"]}
	var body struct {
		BotpressMessageID string `json:"botpressMessageId"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil {
		return d, fmt.Errorf("%w: body is not a JSON object: %v", ErrRecord, err)
	}
	d.ID = stringAttr(m, AttrWebhookID)
	if d.ID == "" {
		d.ID = body.BotpressMessageID
	}
	if d.ID == "" {
		return d, fmt.Errorf("%w: no webhook id", ErrRecord)
	}
	d.InReplyTo = stringAttr(m, AttrInReplyTo)
	d.Index, _ = strconv.Atoi(stringAttr(m, AttrReplyIndex))
	d.Count, _ = strconv.Atoi(stringAttr(m, AttrReplyCount))
	return d, nil
}

func stringAttr(m events.SQSMessage, name string) string {
	if a, ok := m.MessageAttributes[name]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}
