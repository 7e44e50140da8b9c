// Package queuetest is the contract every delivery queue must meet: the embedded one
// and the SQS adapter against local-aws-sqs run the same tests.
package queuetest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parley-chat/parley/shared/message"
)

// Queue is what the contract covers: inbound.Queue, delivery.Queue, delivery.Source
// and the dead-letter commands of the CLI. Ack and Delay may report a receipt that no
// longer names a received message, but act on the others all the same: the contract
// checks the acting, not the report, as SQS reports some stale receipts and not others.
type Queue interface {
	Send(ctx context.Context, j message.Job, resend bool) error
	Receive(ctx context.Context, n int, wait time.Duration) ([]events.SQSMessage, error)
	Ack(ctx context.Context, receipts []string) error
	Delay(ctx context.Context, receipts []string, d time.Duration) error
	DeadLetter(ctx context.Context, m events.SQSMessage, attrs map[string]string) error
	DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error)
	Redrive(ctx context.Context, limit int) (int, error)
}

// MaxReceives is the redrive budget open must give the queues it makes.
const MaxReceives = 3

var seq atomic.Int64

// Turns makes the turn jobs of n user messages of a fresh conversation of channel, in
// the order they were sent. The texts are not ASCII, so a body that is re-encoded on
// the way shows.
func Turns(channel string, n int) []message.Job {
	conv := fmt.Sprintf("conv-%d-%d", time.Now().UnixNano(), seq.Add(1))
	at := time.Now().UTC().Truncate(time.Millisecond)
	out := make([]message.Job, n)
	for i := range out {
		text := fmt.Sprintf("message %d: héllo <b>&</b> 👋", i)
		payload, _ := message.Marshal(map[string]string{"text": text})
		in := message.Inbound{UserID: "user-" + conv, MessageID: "m" + strconv.Itoa(i), ConversationID: conv, Type: "text", Text: text, Payload: payload}
		out[i] = message.TurnJob(message.NewTurn(channel, in), at.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

// Push makes the job of a bot message sent through the API into j's conversation.
func Push(j message.Job, idempotencyKey string) message.Job {
	return message.Job{
		Kind:           message.KindPush,
		Key:            message.Key{Channel: j.Channel, ConversationRef: j.ConversationRef, Ref: message.PushRef(j.Channel, j.ConversationID, idempotencyKey)},
		ConversationID: j.ConversationID, UserID: j.UserID, CreatedAt: j.CreatedAt.Add(time.Second),
		Push: message.Reply{Type: "text", Payload: json.RawMessage(`{"text":"pushed ✓"}`)},
	}
}

// Quirks are the known ways an emulator differs from SQS FIFO. Each relaxes exactly
// one assertion, asserts the quirk instead (so a fixed emulator makes the test fail and
// the quirk go), and says so in the test log.
type Quirks struct {
	// NoGroupLock: a group's next message is handed out while its head is in flight.
	NoGroupLock bool
	// VisibilityChangeCounts: a visibility change adds one to ApproximateReceiveCount,
	// and so spends the redrive budget too.
	VisibilityChangeCounts bool
	// DedupOnlyWhileQueued: a deduplication id is forgotten once its message is
	// deleted; SQS drops a copy for five minutes from the first send.
	DedupOnlyWhileQueued bool
}

// Run runs the contract against the queues open makes: a fresh one per test, with the
// given visibility timeout (whole seconds), a dead-letter queue and a redrive budget
// of MaxReceives.
func Run(t *testing.T, quirks Quirks, open func(t *testing.T, visibility time.Duration) Queue) {
	ctx := context.Background()

	t.Run("a sent job is received as sent", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		turn := Turns(message.DefaultChannel, 1)[0]
		other := Turns("web", 1)[0]
		push := Push(other, "key-1")
		sends := []struct {
			j      message.Job
			resend bool
		}{{turn, false}, {other, true}, {push, false}}
		for _, s := range sends {
			send(t, q, s.j, s.resend)
		}
		got := byRef(t, receiveN(t, q, len(sends)))
		for _, s := range sends {
			m, ok := got[s.j.Ref]
			if !ok {
				t.Errorf("job %s (%s) not received", s.j.Ref, s.j.Kind)
				continue
			}
			want, err := message.EncodeJob(s.j)
			if err != nil {
				t.Fatal(err)
			}
			if m.Body != string(want) {
				t.Errorf("%s body = %s, want %s", s.j.Kind, m.Body, want)
			}
			j, err := message.DecodeJob([]byte(m.Body))
			if err != nil {
				t.Fatalf("%s: DecodeJob: %v", s.j.Kind, err)
			}
			if j.Kind != s.j.Kind || j.Key != s.j.Key || j.ConversationID != s.j.ConversationID || j.UserID != s.j.UserID || !j.CreatedAt.Equal(s.j.CreatedAt) {
				t.Errorf("decoded %+v, want %+v", j, s.j)
			}
			if g := m.Attributes["MessageGroupId"]; g != s.j.ConversationRef {
				t.Errorf("%s MessageGroupId = %q, want the conversation %q", s.j.Kind, g, s.j.ConversationRef)
			}
			if d := m.Attributes["MessageDeduplicationId"]; d != s.j.DedupID() {
				t.Errorf("%s MessageDeduplicationId = %q, want the ref and time %q", s.j.Kind, d, s.j.DedupID())
			}
			if n := m.Attributes["ApproximateReceiveCount"]; n != "1" {
				t.Errorf("%s ApproximateReceiveCount = %q, want 1", s.j.Kind, n)
			}
			if m.MessageId == "" || m.ReceiptHandle == "" {
				t.Errorf("%s MessageId %q, ReceiptHandle %q: want both", s.j.Kind, m.MessageId, m.ReceiptHandle)
			}
			wantAttrs := map[string]string{message.AttrKind: s.j.Kind}
			if s.resend {
				wantAttrs[message.AttrResend] = "true"
			}
			if a := attrs(m); !maps.Equal(a, wantAttrs) {
				t.Errorf("%s (resend %v) attributes = %v, want %v", s.j.Kind, s.resend, a, wantAttrs)
			}
		}
	})

	t.Run("a second send of a ref is dropped, even after the first is acked", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		jobs := Turns(message.DefaultChannel, 2)
		send(t, q, jobs[0], false)
		send(t, q, jobs[0], true) // a replayed request, as inbound sends it
		got := drain(t, q, 1)
		if a := attrs(got[0]); a[message.AttrResend] != "" {
			t.Errorf("received attributes %v, want the first copy's (no %s)", a, message.AttrResend)
		}
		none(t, q, time.Second, "after the job sent twice")
		send(t, q, jobs[0], true)
		send(t, q, jobs[1], false)
		// The next job proves the queue still hands jobs out, so receiving only it
		// means the copy was dropped.
		want := []string{jobs[1].Ref}
		if quirks.DedupOnlyWhileQueued {
			want = []string{jobs[0].Ref, jobs[1].Ref}
			t.Log("quirk DedupOnlyWhileQueued: a copy sent after the first was acked is received (SQS drops it for 5 minutes from the first send)")
		}
		var refs []string
		for _, m := range drain(t, q, len(want)) {
			refs = append(refs, ref(t, m))
		}
		if !slices.Equal(refs, want) {
			t.Errorf("after the job acked and sent again within the window, received %v, want %v", refs, want)
		}
		none(t, q, time.Second, "after the job acked and sent again within the window")
	})

	t.Run("order within a group", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		a, b := Turns(message.DefaultChannel, 12), Turns("web", 3)
		for i := range a { // interleaved
			send(t, q, a[i], false)
			if i < len(b) {
				send(t, q, b[i], false)
			}
		}
		got := drain(t, q, len(a)+len(b))
		for _, g := range [][]message.Job{a, b} {
			if refs, want := groupRefs(t, got, g[0].ConversationRef), refsOf(g); !slices.Equal(refs, want) {
				t.Errorf("group %s received %v, want %v", g[0].ConversationRef, refs, want)
			}
		}
	})

	t.Run("groups are independent", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		a := Turns(message.DefaultChannel, 3)
		for _, j := range a {
			send(t, q, j, false)
		}
		if head := receiveN(t, q, 1); ref(t, head[0]) != a[0].Ref {
			t.Fatalf("received %s first, want %s", ref(t, head[0]), a[0].Ref)
		}
		// a's head stays in flight: b's jobs must come anyway.
		b := Turns(message.DefaultChannel, 2)
		for _, j := range b {
			send(t, q, j, false)
		}
		var refs []string
		deadline := time.Now().Add(10 * time.Second)
		for len(refs) < len(b) && time.Now().Before(deadline) {
			for _, m := range receive(t, q, 10, time.Second) {
				if m.Attributes["MessageGroupId"] == b[0].ConversationRef {
					refs = append(refs, ref(t, m))
				}
			}
		}
		if want := []string{b[0].Ref, b[1].Ref}; !slices.Equal(refs, want) {
			t.Errorf("with another group's head in flight received %v, want %v", refs, want)
		}
	})

	t.Run("a group waits while a job of it is in flight", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		a := Turns(message.DefaultChannel, 2)
		for _, j := range a {
			send(t, q, j, false)
		}
		head := receiveN(t, q, 1)
		if ref(t, head[0]) != a[0].Ref {
			t.Fatalf("received %s first, want %s", ref(t, head[0]), a[0].Ref)
		}
		more := receive(t, q, 10, time.Second)
		if quirks.NoGroupLock {
			if len(more) == 0 {
				t.Error("quirk NoGroupLock no longer holds: remove it")
			}
			t.Logf("quirk NoGroupLock: %d received while the group's head is in flight (SQS FIFO gives 0)", len(more))
			return
		}
		if len(more) != 0 {
			t.Fatalf("received %d while the group's head is in flight, want 0", len(more))
		}
		// A delayed head holds its group too, and comes back before the rest.
		if err := q.Delay(ctx, []string{head[0].ReceiptHandle}, time.Second); err != nil {
			t.Fatal(err)
		}
		again := receiveN(t, q, 1)
		if ref(t, again[0]) != a[0].Ref {
			t.Fatalf("after the head's delay received %s, want the head %s", ref(t, again[0]), a[0].Ref)
		}
		ack(t, q, again)
		if next := receiveN(t, q, 1); ref(t, next[0]) != a[1].Ref {
			t.Errorf("after the head's ack received %s, want %s", ref(t, next[0]), a[1].Ref)
		}
	})

	t.Run("ack deletes, more than 10 at once", func(t *testing.T) {
		t.Parallel()
		visibility := 2 * time.Second
		q := open(t, visibility)
		sendGroups(t, q, 12)
		msgs := receiveN(t, q, 12)
		if err := q.Ack(ctx, receipts(msgs)); err != nil {
			t.Fatal(err)
		}
		none(t, q, visibility+2*time.Second, "after the visibility timeout of 12 acked jobs")
	})

	t.Run("an unknown or stale receipt does not stop the ack of the others", func(t *testing.T) {
		t.Parallel()
		visibility := 2 * time.Second
		q := open(t, visibility)
		sendGroups(t, q, 12)
		msgs := receiveN(t, q, 12)
		ack(t, q, msgs[:1])
		// Both in the first batch of ten, so the second batch must go too.
		rs := append([]string{msgs[0].ReceiptHandle, "not-a-receipt"}, receipts(msgs[1:])...)
		if err := q.Ack(ctx, rs); err != nil {
			t.Logf("Ack with an acked and an unknown receipt: %v", err)
		}
		none(t, q, visibility+2*time.Second, "after the visibility timeout of the jobs acked beside bad receipts")
	})

	t.Run("delay makes jobs visible again after d, more than 10 at once", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		sendGroups(t, q, 12)
		msgs := receiveN(t, q, 12)
		start := time.Now()
		if err := q.Delay(ctx, receipts(msgs), 2*time.Second); err != nil {
			t.Fatal(err)
		}
		none(t, q, time.Second, "within 1s of a delay of 2s")
		again := receiveN(t, q, 12)
		if waited := time.Since(start); waited < 1500*time.Millisecond {
			t.Errorf("came back after %s, want about 2s", waited)
		}
		if !sameIDs(msgs, again) {
			t.Errorf("received %v after the delay, want %v again", ids(again), ids(msgs))
		}
		ack(t, q, again)
		wantCount := "2"
		if quirks.VisibilityChangeCounts {
			wantCount = "3"
			t.Log("quirk VisibilityChangeCounts: a visibility change counts as a receive (SQS counts only receives)")
		}
		for _, m := range again {
			if n := m.Attributes["ApproximateReceiveCount"]; n != wantCount {
				t.Errorf("%s ApproximateReceiveCount = %s after a delay, want %s", m.MessageId, n, wantCount)
				break
			}
		}
	})

	t.Run("delay 0 makes jobs visible at once, more than 10 at once", func(t *testing.T) {
		t.Parallel()
		// Not delayed, they would come back after 30s; a separate test from the one
		// above, as an emulator whose visibility changes count as receives would spend
		// the redrive budget.
		q := open(t, 30*time.Second)
		sendGroups(t, q, 12)
		msgs := receiveN(t, q, 12)
		start := time.Now()
		if err := q.Delay(ctx, receipts(msgs), 0); err != nil {
			t.Fatal(err)
		}
		again := receiveN(t, q, 12)
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("came back %s after a delay of 0, want at once", waited)
		}
		if !sameIDs(msgs, again) {
			t.Errorf("received %v after a delay of 0, want %v again", ids(again), ids(msgs))
		}
		ack(t, q, again)
	})

	t.Run("an unknown or stale receipt does not stop the delay of the others", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		sendGroups(t, q, 3)
		msgs := receiveN(t, q, 3)
		ack(t, q, msgs[:1])
		rs := append([]string{msgs[0].ReceiptHandle, "not-a-receipt"}, receipts(msgs[1:])...)
		if err := q.Delay(ctx, rs, 0); err != nil {
			t.Logf("Delay with an acked and an unknown receipt: %v", err)
		}
		// Not delayed, they would come back after 30s.
		if again := receiveN(t, q, 2); !sameIDs(msgs[1:], again) {
			t.Errorf("received %v, want %v at once", ids(again), ids(msgs[1:]))
		}
	})

	t.Run("dead letter copies the job with its attributes, once", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		j := Turns(message.DefaultChannel, 1)[0]
		send(t, q, j, true)
		m := receiveN(t, q, 1)[0]
		extra := map[string]string{
			message.AttrFailureReason: "gave up after 5 attempts: http 500",
			message.AttrAttempts:      "5",
			message.AttrFailedAt:      time.Now().UTC().Format(time.RFC3339),
		}
		for range 2 { // the second is a retried call
			if err := q.DeadLetter(ctx, m, extra); err != nil {
				t.Fatal(err)
			}
		}
		ack(t, q, []events.SQSMessage{m})
		dead := deadLetters(t, q, 10)
		if len(dead) != 1 {
			t.Fatalf("%d dead letters after dead-lettering one job twice, want 1", len(dead))
		}
		if dead[0].Body != m.Body {
			t.Errorf("dead letter body = %s, want %s", dead[0].Body, m.Body)
		}
		want := map[string]string{message.AttrKind: message.KindTurn, message.AttrResend: "true"}
		maps.Copy(want, extra)
		if a := attrs(dead[0]); !maps.Equal(a, want) {
			t.Errorf("dead letter attributes = %v, want %v", a, want)
		}
		if g := dead[0].Attributes["MessageGroupId"]; g != j.ConversationRef {
			t.Errorf("dead letter MessageGroupId = %q, want %q", g, j.ConversationRef)
		}
		none(t, q, time.Second, "from the queue after the dead-lettered job was acked")
	})

	t.Run("dead letters are listed without removing them, and redriven in order", func(t *testing.T) {
		t.Parallel()
		q := open(t, 30*time.Second)
		a, b := Turns(message.DefaultChannel, 3), Turns("web", 1)
		jobs := append(slices.Clone(a), b...)
		for i, j := range jobs {
			send(t, q, j, i == 1)
		}
		got := byRef(t, receiveN(t, q, len(jobs)))
		failedAt := time.Now().UTC().Format(time.RFC3339)
		for i, j := range jobs {
			m := got[j.Ref]
			extra := map[string]string{message.AttrFailureReason: "permanent failure: http 404", message.AttrAttempts: "1", message.AttrFailedAt: failedAt}
			if i == 0 {
				extra[message.AttrOvertakenBy] = a[1].Ref
			}
			if err := q.DeadLetter(ctx, m, extra); err != nil {
				t.Fatal(err)
			}
			ack(t, q, []events.SQSMessage{m})
		}
		for range 2 {
			dead := deadLetters(t, q, 10)
			if refs, want := groupRefs(t, dead, a[0].ConversationRef), refsOf(a); !slices.Equal(refs, want) {
				t.Errorf("dead letters of %s = %v, want %v", a[0].ConversationRef, refs, want)
			}
			if len(dead) != len(jobs) {
				t.Errorf("%d dead letters, want %d (listing must not remove)", len(dead), len(jobs))
			}
		}
		if dead := deadLetters(t, q, 2); len(dead) != 2 {
			t.Errorf("DeadLetters(2) = %d, want 2", len(dead))
		}

		if n, err := q.Redrive(ctx, 2); err != nil || n != 2 {
			t.Fatalf("Redrive(2) = %d, %v; want 2", n, err)
		}
		if left := deadLetters(t, q, 10); len(left) != 2 {
			t.Errorf("%d dead letters after redriving 2 of 4, want 2", len(left))
		}
		if n, err := q.Redrive(ctx, 10); err != nil || n != 2 {
			t.Fatalf("Redrive(10) = %d, %v; want the 2 left", n, err)
		}
		if left := deadLetters(t, q, 10); len(left) != 0 {
			t.Errorf("%d dead letters after redriving all, want 0", len(left))
		}

		// Their refs were sent within the deduplication window: a redriven job must
		// come back all the same.
		back := drain(t, q, len(jobs))
		for _, g := range [][]message.Job{a, b} {
			if refs, want := groupRefs(t, back, g[0].ConversationRef), refsOf(g); !slices.Equal(refs, want) {
				t.Errorf("redriven %s = %v, want %v", g[0].ConversationRef, refs, want)
			}
		}
		want := map[string]string{message.AttrKind: message.KindTurn, message.AttrRedriven: "true"}
		for _, m := range back {
			if a := attrs(m); !maps.Equal(a, want) {
				t.Errorf("redriven %s attributes = %v, want %v", ref(t, m), a, want)
			}
			if n := m.Attributes["ApproximateReceiveCount"]; n != "1" {
				t.Errorf("redriven %s ApproximateReceiveCount = %s, want 1", ref(t, m), n)
			}
		}
	})

	t.Run("the redrive policy dead-letters after the receive budget", func(t *testing.T) {
		t.Parallel()
		q := open(t, time.Second)
		j := Turns(message.DefaultChannel, 1)[0]
		send(t, q, j, false)
		// Received and never acked: it comes back each time its visibility ends.
		var m events.SQSMessage
		for i := 1; i <= MaxReceives; i++ {
			m = receiveN(t, q, 1)[0]
			if got := m.Attributes["ApproximateReceiveCount"]; got != strconv.Itoa(i) {
				t.Errorf("receive %d: ApproximateReceiveCount %s", i, got)
			}
		}
		none(t, q, 3*time.Second, fmt.Sprintf("after %d receives", MaxReceives))
		dead := deadLetters(t, q, 10)
		if len(dead) != 1 {
			t.Fatalf("%d dead letters, want the job received %d times", len(dead), MaxReceives)
		}
		if dead[0].Body != m.Body || ref(t, dead[0]) != j.Ref || attrs(dead[0])[message.AttrKind] != j.Kind {
			t.Errorf("dead letter %s %v, want the job %s with its attributes", dead[0].Body, attrs(dead[0]), m.Body)
		}
	})
}
