package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parley-chat/parley/shared/testkit/emulator"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopAll()
	os.Exit(code)
}

// The group lock on local-aws-sqs: a group's next message is not handed out while
// one is in flight, whether the one in flight is deleted, comes back after its
// visibility timeout or is made visible; and the group's messages come in order.
func TestProxyGroupLock(t *testing.T) {
	emu := emulator.SQS(t)
	proxy, err := NewProxy(emu.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.FixLongPoll, proxy.GroupLock = true, true
	ctx := context.Background()
	url, _, err := CreateQueues(ctx, emu.SQSClient(), fmt.Sprintf("grouplock-%d", time.Now().UnixNano()), 1)
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(emulator.Config(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	for i := 1; i <= 4; i++ {
		for _, g := range []string{"a", "b"} {
			if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprintf("%s%d", g, i)),
				MessageGroupId: aws.String(g), MessageDeduplicationId: aws.String(fmt.Sprintf("%s%d", g, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	receive := func(n int32) []types.Message {
		t.Helper()
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: n, WaitTimeSeconds: 0,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameMessageGroupId}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	// A group freed while messages were kept back answers one receive with nothing:
	// it makes them all visible again first. Receive until something comes.
	receiveSome := func(n int32) []types.Message {
		t.Helper()
		for range 5 {
			if ms := receive(n); len(ms) > 0 {
				return ms
			}
		}
		return nil
	}
	bodies := func(ms []types.Message) (s []string) {
		for _, m := range ms {
			s = append(s, aws.ToString(m.Body))
		}
		return s
	}
	expect := func(what string, got []types.Message, want ...string) {
		t.Helper()
		if fmt.Sprint(bodies(got)) != fmt.Sprint(want) {
			t.Fatalf("%s: got %v, want %v", what, bodies(got), want)
		}
	}
	del := func(m types.Message) {
		t.Helper()
		if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}

	first := receive(1)
	expect("first receive", first, "a1")
	// a is in flight: its later messages are kept back, b's are handed out.
	bs := receive(10)
	expect("with a in flight", bs, "b1", "b2", "b3", "b4")
	for _, m := range bs {
		del(m)
	}
	expect("a still in flight", receive(10))
	// Deleted: a's next messages come, in order.
	del(first[0])
	a2 := receiveSome(1)
	expect("after a1 is deleted", a2, "a2")
	expect("a2 in flight", receive(10))
	// a2 not deleted: it comes back after its visibility timeout, before a3.
	time.Sleep(1500 * time.Millisecond)
	again := receiveSome(1)
	expect("after a2's visibility timeout", again, "a2")
	// Made visible at once: it comes back first again.
	if _, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: again[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	rest := receiveSome(10)
	expect("after a2 is made visible", rest, "a2", "a3", "a4")
}
