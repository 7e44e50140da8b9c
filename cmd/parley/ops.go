package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/webhook"
)

// endpointCheck POSTs the original integration's registration probe to the Response
// Endpoint and says what came back, as the original did when its config was saved.
func endpointCheck(ctx context.Context, c *call) error {
	url := c.fs.String("url", c.getenv("PARLEY_RESPONSE_ENDPOINT_URL"), "the Response Endpoint URL (env PARLEY_RESPONSE_ENDPOINT_URL)")
	secret := c.fs.String("secret", c.getenv("PARLEY_SIGNING_SECRET"), "whsec_ signing secret(s), space-separated, to sign the probe (env PARLEY_SIGNING_SECRET)")
	timeout := c.fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	if _, err := c.parse(); err != nil {
		return err
	}
	if *url == "" {
		return fmt.Errorf("pass --url or set PARLEY_RESPONSE_ENDPOINT_URL")
	}
	signer, err := webhook.NewSigner(*secret)
	if err != nil {
		return err
	}
	sender, err := webhook.NewSender(webhook.Config{URL: *url, Timeout: *timeout, Signer: signer})
	if err != nil {
		return err
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	out := sender.Send(ctx, webhook.Request{ID: "probe_" + hex.EncodeToString(id[:]), Body: []byte(`{"type":"test","payload":"test"}`)})
	status := "no answer"
	if out.Status != 0 {
		status = fmt.Sprintf("HTTP %d", out.Status)
	}
	fmt.Fprintf(c.stdout, "%s in %s: %s\n", status, out.Duration.Round(time.Millisecond), out.Class)
	switch out.Class {
	case webhook.Delivered:
		return nil
	case webhook.Retry:
		if out.Status != 0 {
			return fmt.Errorf("the endpoint answered %s, not 2xx: deliveries would be retried until it answers 2xx", reasonOf(out))
		}
		return fmt.Errorf("the endpoint is not reachable now (%s): deliveries would be retried", out.Reason)
	case webhook.Gone:
		return fmt.Errorf("the endpoint answered 410 Gone: the first delivery would disable it")
	}
	return fmt.Errorf("the probe could not be sent (%s)", out.Reason)
}

func reasonOf(o webhook.Outcome) string {
	if o.Location != "" {
		return o.Reason + " (to " + o.Location + ")"
	}
	return o.Reason
}

// deadLetters is a dead-letter queue an operator can look at and redrive: the SQS
// adapter in AWS, the local stack over HTTP.
type deadLetters interface {
	DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error)
	RedriveMatching(ctx context.Context, limit int, match func(events.SQSMessage) bool) (int, error)
}

// dlqFlags are the flags both dlq commands take.
type dlqFlags struct {
	local, queueURL, deadURL, channel, since *string
	max                                      *int
}

func (c *call) dlqFlags() dlqFlags {
	return dlqFlags{
		local:    c.fs.String("local", "", "a running local stack's URL instead of AWS; shows the dead letters of PARLEY_TOKEN's channel"),
		queueURL: c.fs.String("queue-url", c.getenv("PARLEY_QUEUE_URL"), "the delivery queue (stack output QueueUrl; env PARLEY_QUEUE_URL)"),
		deadURL:  c.fs.String("dead-letter-queue-url", c.getenv("PARLEY_DEAD_LETTER_QUEUE_URL"), "the dead-letter queue (stack output DeadLetterQueueUrl; env PARLEY_DEAD_LETTER_QUEUE_URL)"),
		channel:  c.fs.String("channel", "", "only this channel's dead letters (AWS; locally the token decides)"),
		since:    c.fs.String("since", "", "only what failed at or after this time (RFC 3339, e.g. 2026-12-01T09:00:00Z, or a duration ago, e.g. 2h)"),
		max:      c.fs.Int("max", 100, "at most this many messages"),
	}
}

// openDeadLetters parses the command line and opens the dead letters it names, with
// the filter its --since asks for.
func (c *call) openDeadLetters(ctx context.Context, f dlqFlags) (deadLetters, func(events.SQSMessage) bool, error) {
	if _, err := c.parse(); err != nil {
		return nil, nil, err
	}
	q, err := c.deadLetters(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	match, err := f.matcher(time.Now())
	return q, match, err
}

func (c *call) deadLetters(ctx context.Context, f dlqFlags) (deadLetters, error) {
	if *f.max < 1 {
		return nil, fmt.Errorf("--max %d: want at least 1", *f.max)
	}
	if *f.local != "" {
		tok := c.getenv("PARLEY_TOKEN")
		if tok == "" {
			tok = "dev-token"
		}
		return &localStack{base: strings.TrimRight(*f.local, "/"), token: tok}, nil
	}
	if *f.queueURL == "" || *f.deadURL == "" {
		return nil, fmt.Errorf("pass --queue-url and --dead-letter-queue-url (or set PARLEY_QUEUE_URL and PARLEY_DEAD_LETTER_QUEUE_URL: the stack outputs QueueUrl and DeadLetterQueueUrl), or --local URL for a local stack")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	return sqsfifo.New(sqs.NewFromConfig(cfg), *f.queueURL, *f.deadURL), nil
}

// matcher selects dead letters by channel and time failed.
func (f dlqFlags) matcher(now time.Time) (func(events.SQSMessage) bool, error) {
	var since time.Time
	if *f.since != "" {
		if d, err := time.ParseDuration(*f.since); err == nil {
			since = now.Add(-d)
		} else if since, err = time.Parse(time.RFC3339, *f.since); err != nil {
			return nil, fmt.Errorf("--since %q: want an RFC 3339 time or a duration", *f.since)
		}
	}
	return func(m events.SQSMessage) bool {
		if *f.channel != "" {
			if j, err := message.DecodeJob([]byte(m.Body)); err != nil || j.Channel != *f.channel {
				return false
			}
		}
		if !since.IsZero() {
			at, err := time.Parse(time.RFC3339, attr(m, message.AttrFailedAt))
			if err != nil || at.Before(since.Truncate(time.Second)) {
				return false
			}
		}
		return true
	}, nil
}

func dlqList(ctx context.Context, c *call) error {
	f := c.dlqFlags()
	asJSON := c.fs.Bool("json", false, "print the dead letters as JSON, bodies included")
	q, match, err := c.openDeadLetters(ctx, f)
	if err != nil {
		return err
	}
	all, err := q.DeadLetters(ctx, *f.max)
	if err != nil {
		return err
	}
	var msgs []events.SQSMessage
	for _, m := range all {
		if match(m) {
			msgs = append(msgs, m)
		}
	}
	if *asJSON {
		return printJSON(c.stdout, msgs)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHANNEL\tKIND\tCONVERSATION\tMESSAGE\tATTEMPTS\tFAILED-AT\tREASON")
	for _, m := range msgs {
		ch, kind, conversation, msgID := "?", "?", "?", "?"
		if j, err := message.DecodeJob([]byte(m.Body)); err == nil {
			ch, kind, conversation, msgID = j.Channel, j.Kind, j.ConversationID, j.Message.MessageID
			if j.Kind == message.KindPush {
				msgID = j.Ref
			}
		}
		reason := attr(m, message.AttrFailureReason)
		if reason == "" {
			reason = "moved by the queue's redrive policy (received " + m.Attributes["ApproximateReceiveCount"] + " times)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ch, kind, conversation, msgID, attr(m, message.AttrAttempts), attr(m, message.AttrFailedAt), reason)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d dead letter(s)\n", len(msgs))
	return nil
}

func dlqRedrive(ctx context.Context, c *call) error {
	f := c.dlqFlags()
	q, match, err := c.openDeadLetters(ctx, f)
	if err != nil {
		return err
	}
	n, err := q.RedriveMatching(ctx, *f.max, match)
	fmt.Fprintf(c.stdout, "redrove %d message(s) to the delivery queue\n", n)
	return err
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
