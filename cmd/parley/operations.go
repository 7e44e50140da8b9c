package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parley-chat/parley/shared/message"
)

func endpointStatus(ctx context.Context, c *call) error {
	channel := c.fs.String("channel", message.DefaultChannel, "the channel whose endpoint to show")
	t := c.target(true)
	op, _, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	h, err := op.EndpointStatus(ctx, *channel)
	if err != nil {
		return err
	}
	if *t.json {
		return printJSON(c.stdout, h)
	}
	printHealth(c.stdout, h)
	return nil
}

func endpointEnable(ctx context.Context, c *call) error {
	channel := c.fs.String("channel", message.DefaultChannel, "the channel whose endpoint to enable")
	t := c.target(false)
	op, _, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	h, err := op.EnableEndpoint(ctx, *channel)
	if err != nil {
		return err
	}
	printHealth(c.stdout, h)
	fmt.Fprintln(c.stdout, "enabled: its waiting messages go out in order within a minute or two")
	return nil
}

func printHealth(w io.Writer, h message.Health) {
	state := "enabled"
	if h.Disabled {
		state = "DISABLED since " + h.DisabledAt.Format(time.RFC3339) + ": " + h.Reason
	}
	fmt.Fprintf(w, "channel %s: %s\n", h.Channel, state)
	if h.Failures > 0 {
		fmt.Fprintf(w, "failing: %d failed attempt(s) in a row since %s\n", h.Failures, h.Since.Format(time.RFC3339))
	}
	if len(h.Recent) > 0 {
		fmt.Fprintln(w, "recent failures:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, a := range h.Recent {
			fmt.Fprintf(tw, "  %s\t%s\t%.0fms\n", a.At.Format(time.RFC3339), a.Reason, a.LatencyMs)
		}
		_ = tw.Flush()
	}
}

// apiFlags reach the HTTP API itself: the deployed WebhookUrl, or a local stack.
type apiFlags struct{ url, local *string }

func (c *call) apiFlags() apiFlags {
	return apiFlags{
		url:   c.fs.String("url", c.getenv("PARLEY_URL"), "the webhook URL (stack output WebhookUrl; env PARLEY_URL); PARLEY_TOKEN is the channel's backend token"),
		local: c.fs.String("local", "", "a running local stack's URL instead (PARLEY_TOKEN, default dev-token)"),
	}
}

// api calls the HTTP API with PARLEY_TOKEN and decodes the answer, or its error.
func (c *call) api(ctx context.Context, f apiFlags, method, path string, out any) error {
	base, tok := *f.url, c.getenv("PARLEY_TOKEN")
	if *f.local != "" {
		base = *f.local
		if tok == "" {
			tok = "dev-token"
		}
	}
	if base == "" || tok == "" {
		return errors.New("pass --url (the stack output WebhookUrl) and set PARLEY_TOKEN to a backend token, or --local URL for a local stack")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func deliveryShow(ctx context.Context, c *call) error {
	f := c.apiFlags()
	asJSON := c.fs.Bool("json", false, "print JSON")
	args, err := c.parse()
	if err != nil {
		return err
	}
	var l message.DeliveryLog
	if err := c.api(ctx, f, "GET", "/v1/deliveries/"+url.PathEscape(args[0]), &l); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, l)
	}
	fmt.Fprintf(c.stdout, "%s: %s\n", l.WebhookID, l.Status)
	if l.Status == message.StatusUnknown {
		fmt.Fprintln(c.stdout, "nothing recorded: not tried yet, or delivered at the first try (attempts are recorded only once one fails)")
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for i, a := range l.Attempts {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%.0fms\t%s\n", i+1, a.At.Format(time.RFC3339), a.Outcome, a.Reason, a.LatencyMs, oneLine(a.Answer, 80))
	}
	return tw.Flush()
}

func deliveryReplay(ctx context.Context, c *call) error {
	f := c.apiFlags()
	conversation := c.fs.String("conversation", "", "the conversationId, to find a message delivered at the first try in its history")
	args, err := c.parse()
	if err != nil {
		return err
	}
	path := "/v1/deliveries/" + url.PathEscape(args[0]) + "/replay"
	if *conversation != "" {
		path += "?conversationId=" + url.QueryEscape(*conversation)
	}
	var out struct{ WebhookID, Status string }
	if err := c.api(ctx, f, "POST", path, &out); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: %s — sent again with the same webhook-id and a fresh signature, in its conversation's order\n", out.WebhookID, out.Status)
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
