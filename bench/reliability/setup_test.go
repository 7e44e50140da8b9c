package reliability

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/webhook"
)

// awsParts are a table and queues on the emulators, reached through proxies: the SQS
// one fixes local-aws-sqs's long polling and adds the FIFO group lock it lacks (see
// bench.Proxy), and both can be pointed at a restarted emulator.
type awsParts struct {
	DDB, SQS           *emulator.Emulator
	DDBProxy, SQSProxy *bench.Proxy
	Res                bench.Resources
}

func onEmulators(t *testing.T, name string, visibility int) *awsParts {
	t.Helper()
	a := &awsParts{DDB: emulator.DynamoDB(t), SQS: emulator.SQS(t)}
	var err error
	if a.DDBProxy, err = bench.NewProxy(a.DDB.URL); err != nil {
		t.Fatal(err)
	}
	if a.SQSProxy, err = bench.NewProxy(a.SQS.URL); err != nil {
		t.Fatal(err)
	}
	a.SQSProxy.FixLongPoll, a.SQSProxy.GroupLock = true, true
	t.Cleanup(func() { a.DDBProxy.Close(); a.SQSProxy.Close() })
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	if a.Res, err = bench.CreateResources(context.Background(), a.DDB.DynamoDBClient(), a.SQS.SQSClient(), name, visibility); err != nil {
		t.Fatal(err)
	}
	return a
}

// Env is the environment of a process using the parts through the proxies.
func (a *awsParts) Env() []string {
	return append(bench.EmulatorEnv(a.DDBProxy.URL, a.SQSProxy.URL), a.Res.Env()...)
}

// Clients are SDK clients through the proxies.
func (a *awsParts) Clients() (*dynamodb.Client, *sqs.Client) {
	cfg := emulator.Config()
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			o.BaseEndpoint = aws.String(a.DDBProxy.URL)
			o.DisableValidateResponseChecksum = true // DynamoDB Local's error answers fail it
		}),
		sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(a.SQSProxy.URL) })
}

// countingBot counts the turns of the bot it wraps.
type countingBot struct {
	turns atomic.Int64
	inner delivery.Bot
}

func (b *countingBot) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	b.turns.Add(1)
	return b.inner.Reply(ctx, turn)
}

// channel is the default channel with bot b, delivering to url.
func channel(t *testing.T, b delivery.Bot, url, secret string, policy delivery.Policy, timeout time.Duration) *delivery.Channel {
	t.Helper()
	var signer *webhook.Signer
	if secret != "" {
		var err error
		if signer, err = webhook.NewSigner(secret); err != nil {
			t.Fatal(err)
		}
	}
	sender, err := webhook.NewSender(webhook.Config{URL: url, Timeout: timeout, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return &delivery.Channel{ID: message.DefaultChannel, Bot: b, BotTimeout: timeout, Sender: sender, SendTimeout: timeout, Policy: policy}
}

// replyRef is the webhook-id of the index-th (0-based) bot message answering messageID.
func replyRef(conv, messageID string, index int) string {
	return message.ReplyRef(message.DefaultChannel, conv, messageID, index)
}

// getenvMap turns a map into a getenv.
func getenvMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// setenv points this process's default AWS configuration at the parts, for stacks
// started in process (devstack reads the environment).
func (a *awsParts) setenv(t *testing.T) {
	for _, kv := range a.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}
