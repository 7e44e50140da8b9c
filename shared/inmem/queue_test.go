package inmem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/inmem"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/fakeclock"
	"github.com/parley-chat/parley/shared/testkit/queuetest"
)

// The contract cannot wait five minutes on the emulator; the embedded queue runs on a
// clock the test moves.
func TestQueueDedupWindow(t *testing.T) {
	ctx := context.Background()
	c := fakeclock.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	q := inmem.NewQueue(inmem.QueueConfig{})
	q.SetClock(c.Now)
	j := queuetest.Turns(message.DefaultChannel, 1)[0]

	steps := []struct {
		after time.Duration // since the previous step
		want  int           // received after sending j again
	}{
		{0, 1},                           // the first send
		{time.Minute, 0},                 // acked a minute ago, sent 1m after the first
		{4*time.Minute - time.Second, 0}, // 4m59s after the first send
		{time.Second, 1},                 // 5m after the first send: the window is over
		{time.Second, 0},                 // a new window opened by the send just received
	}
	for i, s := range steps {
		c.Advance(s.after)
		if err := q.Send(ctx, j, i > 0); err != nil {
			t.Fatal(err)
		}
		msgs, err := q.Receive(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != s.want {
			t.Errorf("step %d: received %d, want %d", i, len(msgs), s.want)
		}
		var rs []string
		for _, m := range msgs {
			rs = append(rs, m.ReceiptHandle)
		}
		if err := q.Ack(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQueueDelayReportsBadReceipts(t *testing.T) {
	ctx := context.Background()
	q := inmem.NewQueue(inmem.QueueConfig{})
	for range 2 {
		if err := q.Send(ctx, queuetest.Turns(message.DefaultChannel, 1)[0], false); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := q.Receive(ctx, 10, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive = %d, %v; want 2", len(msgs), err)
	}
	err = q.Delay(ctx, []string{"not-a-receipt", msgs[0].ReceiptHandle, msgs[1].ReceiptHandle}, 0)
	if !errors.Is(err, inmem.ErrReceipt) {
		t.Errorf("Delay with an unknown receipt = %v, want ErrReceipt", err)
	}
	if again, _ := q.Receive(ctx, 10, 0); len(again) != 2 {
		t.Errorf("received %d after Delay 0 beside an unknown receipt, want both", len(again))
	}
}
