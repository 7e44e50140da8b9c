package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/webhook"
)

// endpointCheck POSTs the original integration's registration probe to the Response
// Endpoint and says what came back, as the original did when its config was saved.
func endpointCheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("endpoint check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", getenv("PARLEY_RESPONSE_ENDPOINT_URL"), "the Response Endpoint URL")
	secret := fs.String("secret", getenv("PARLEY_SIGNING_SECRET"), "whsec_ signing secret(s), to sign the probe")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("endpoint check: %w", err)
	}
	if *url == "" {
		return fmt.Errorf("endpoint check: pass --url or set PARLEY_RESPONSE_ENDPOINT_URL")
	}
	signer, err := webhook.NewSigner(*secret)
	if err != nil {
		return fmt.Errorf("endpoint check: %w", err)
	}
	sender, err := webhook.NewSender(webhook.Config{URL: *url, Timeout: *timeout, Signer: signer})
	if err != nil {
		return fmt.Errorf("endpoint check: %w", err)
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	out := sender.Send(ctx, webhook.Request{ID: "probe_" + hex.EncodeToString(id[:]), Body: []byte(`{"type":"test","payload":"test"}`)})
	status := "no answer"
	if out.Status != 0 {
		status = fmt.Sprintf("HTTP %d", out.Status)
	}
	fmt.Fprintf(stdout, "%s in %s: %s\n", status, out.Duration.Round(time.Millisecond), out.Class)
	switch out.Class {
	case webhook.Delivered:
		return nil
	case webhook.Retry:
		return fmt.Errorf("the endpoint is not reachable now (%s): deliveries would be retried", out.Reason)
	}
	return fmt.Errorf("the endpoint refused the probe (%s): deliveries would go to the dead-letter queue", out.Reason)
}

// deadLetters is a dead-letter queue an operator can look at and redrive: the SQS
// adapter in AWS, the local stack over HTTP.
type deadLetters interface {
	DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error)
	Redrive(ctx context.Context, limit int) (int, error)
}

func dlqCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, openAWS func(ctx context.Context, queueURL, deadURL string) (deadLetters, error)) error {
	if len(args) == 0 {
		return fmt.Errorf("dlq: want list or redrive")
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	local := fs.String("local", "", "the local stack's URL (e.g. http://127.0.0.1:8080) instead of AWS")
	queueURL := fs.String("queue-url", getenv("PARLEY_QUEUE_URL"), "the delivery queue (stack output QueueUrl)")
	deadURL := fs.String("dead-letter-queue-url", getenv("PARLEY_DEAD_LETTER_QUEUE_URL"), "the dead-letter queue (stack output DeadLetterQueueUrl)")
	max := fs.Int("max", 100, "at most this many messages")
	asJSON := fs.Bool("json", false, "list: print the records as JSON, bodies included")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("dlq %s: %w", args[0], err)
	}
	var q deadLetters
	if *local != "" {
		tok := getenv("PARLEY_TOKEN")
		if tok == "" {
			tok = "dev-token"
		}
		q = &localDLQ{base: strings.TrimRight(*local, "/"), token: tok}
	} else {
		if *queueURL == "" || *deadURL == "" {
			return fmt.Errorf("dlq %s: pass --queue-url and --dead-letter-queue-url (or set PARLEY_QUEUE_URL and PARLEY_DEAD_LETTER_QUEUE_URL), or --local", args[0])
		}
		var err error
		if q, err = openAWS(ctx, *queueURL, *deadURL); err != nil {
			return err
		}
	}
	switch args[0] {
	case "list":
		msgs, err := q.DeadLetters(ctx, *max)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(msgs)
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KIND\tCONVERSATION\tMESSAGE\tATTEMPTS\tFAILED-AT\tREASON")
		for _, m := range msgs {
			kind, conversation, msgID := "?", "?", "?"
			if j, err := message.DecodeJob([]byte(m.Body)); err == nil {
				kind, conversation, msgID = j.Kind, j.ConversationID, j.Message.MessageID
				if j.Kind == message.KindPush {
					msgID = j.Ref
				}
			}
			reason := attr(m, message.AttrFailureReason)
			if reason == "" {
				reason = "moved by the queue's redrive policy (received " + m.Attributes["ApproximateReceiveCount"] + " times)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", kind, conversation, msgID, attr(m, message.AttrAttempts), attr(m, message.AttrFailedAt), reason)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d dead letter(s)\n", len(msgs))
		return nil
	case "redrive":
		n, err := q.Redrive(ctx, *max)
		fmt.Fprintf(stdout, "redrove %d message(s) to the delivery queue\n", n)
		return err
	}
	return fmt.Errorf("dlq: unknown subcommand %q; want list or redrive", args[0])
}

func openSQS(ctx context.Context, queueURL, deadURL string) (deadLetters, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	return sqsfifo.New(sqs.NewFromConfig(cfg), queueURL, deadURL), nil
}

func attr(m events.SQSMessage, k string) string {
	if a, ok := m.MessageAttributes[k]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}

// localDLQ talks to the local stack's dead-letter endpoints.
type localDLQ struct{ base, token string }

func (l *localDLQ) do(ctx context.Context, method, path string, limit int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("%s%s?max=%d", l.base, path, limit), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("local stack: %s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(res.Body).Decode(out)
}

func (l *localDLQ) DeadLetters(ctx context.Context, limit int) ([]events.SQSMessage, error) {
	var out struct {
		DeadLetters []events.SQSMessage `json:"deadLetters"`
	}
	err := l.do(ctx, "GET", devstack.AdminPrefix, limit, &out)
	return out.DeadLetters, err
}

func (l *localDLQ) Redrive(ctx context.Context, limit int) (int, error) {
	var out struct {
		Redriven int `json:"redriven"`
	}
	err := l.do(ctx, "POST", devstack.AdminPrefix+"/redrive", limit, &out)
	return out.Redriven, err
}
