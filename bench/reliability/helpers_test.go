package reliability

import (
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// The helpers the scenarios judge with must be able to fail; these run under plain
// `go test` too.

func TestLeaks(t *testing.T) {
	logs := "level=INFO msg=inbound status=200\nlevel=WARN msg=oops token=prly_abc123 x=1\n"
	got := leaks(logs, map[string]string{"the token": "prly_abc123", "a text": "hello there"})
	if len(got) != 1 {
		t.Errorf("leaks = %q, want the one line with the token", got)
	}
	if got := leaks(logs, map[string]string{"empty": ""}); len(got) != 0 {
		t.Errorf("an empty secret matched: %q", got)
	}
}

// The Standard Webhooks specification's test vector.
func TestVerifySignature(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	at := time.Unix(1614265330, 0)
	if err := verifySignature(secret, h, body, at); err != nil {
		t.Fatalf("the spec's vector: %v", err)
	}
	if verifySignature(secret, h, []byte(`{"test": 2432232315}`), at) == nil {
		t.Error("a tampered body verified")
	}
	if verifySignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", h, body, at) == nil {
		t.Error("a wrong secret verified")
	}
	if verifySignature(secret, h, body, at.Add(6*time.Minute)) == nil {
		t.Error("a stale timestamp verified")
	}
}

func TestCount(t *testing.T) {
	t0 := time.Now()
	a, b, c, d := replyRef("c1", "m1", 0), replyRef("c1", "m2", 0), replyRef("c1", "m3", 0), replyRef("c1", "m4", 0)
	expected := map[string]string{a: "m1", b: "m2", c: "m3", d: "m4"}
	acked := []arrival{
		{ID: b, Conversation: "c1", InReplyTo: "m2", Index: 1, At: t0, Body: []byte("B")},
		{ID: a, Conversation: "c1", InReplyTo: "m1", Index: 1, At: t0.Add(time.Second), Body: []byte("A")},
		{ID: a, Conversation: "c1", InReplyTo: "m1", Index: 1, At: t0.Add(2 * time.Second), Body: []byte("A")},
		{ID: "msg_other", Conversation: "c1", InReplyTo: "m1", Index: 1, At: t0.Add(3 * time.Second), Body: []byte("A")},
		{ID: b, Conversation: "c1", InReplyTo: "m2", Index: 1, At: t0.Add(4 * time.Second), Body: []byte("B, changed")},
	}
	tl := count(expected, acked, map[string]bool{c: true}, map[string][]string{"c1": {a, b}})
	if tl.Delivered != 2 || tl.DeadLettered != 1 || len(tl.Missing) != 1 || tl.Missing[0] != d || tl.Redelivered != 2 ||
		len(tl.DifferentIDs) != 1 || len(tl.NotDerived) != 1 || len(tl.Changed) != 1 || len(tl.Unexpected) != 1 || len(tl.OrderBreaks) != 1 {
		t.Errorf("count = %+v", tl)
	}
}

// A dead-lettered turn stands for its replies' webhook ids, and its reason is counted.
func TestDeadJobs(t *testing.T) {
	in := message.Inbound{UserID: "u", MessageID: "m1", ConversationID: "c1", Type: "text", Text: "hi", Payload: []byte(`{"text":"hi"}`)}
	body, err := message.EncodeJob(message.TurnJob(message.NewTurn(message.DefaultChannel, in), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	reason := "gave up after 3 attempts: http 500"
	ids, reasons := deadJobs([]events.SQSMessage{
		{Body: string(body), MessageAttributes: map[string]events.SQSMessageAttribute{message.AttrFailureReason: {StringValue: &reason}}},
		{Body: "not a job"},
	}, 2)
	if len(ids) != 2 || !ids[replyRef("c1", "m1", 0)] || !ids[replyRef("c1", "m1", 1)] {
		t.Errorf("ids = %v", ids)
	}
	if reasons["gave up after 3 attempts: http 500"] != 1 || reasons["(none: the queue's redrive policy)"] != 1 {
		t.Errorf("reasons = %v", reasons)
	}
}
