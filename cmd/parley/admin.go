package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/parley-chat/parley/shared/admin"
	"github.com/parley-chat/parley/shared/devstack"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/message"
)

// operator is what the channel and token commands do: admin.Service on the table in
// AWS, or the local stack's operator API.
type operator interface {
	CreateChannel(ctx context.Context, c message.Channel) (admin.Created, error)
	UpdateChannel(ctx context.Context, id string, p admin.Patch) (admin.Updated, error)
	DeleteChannel(ctx context.Context, id string) (int, error)
	Channels(ctx context.Context) ([]message.Channel, error)
	Channel(ctx context.Context, id string) (message.Channel, error)
	CreateToken(ctx context.Context, channel, name, scope string) (string, message.Token, error)
	Tokens(ctx context.Context, channel string) ([]message.Token, error)
	RevokeToken(ctx context.Context, id string) (int, error)
	EndpointStatus(ctx context.Context, channel string) (message.Health, error)
	EnableEndpoint(ctx context.Context, channel string) (message.Health, error)
}

// target is where the operator commands act: --local URL, or the table in AWS.
type target struct {
	local, table *string
	json         *bool
}

func (c *call) target(withJSON bool) target {
	t := target{
		local: c.fs.String("local", "", "a running local stack's URL (e.g. http://127.0.0.1:8080) instead of AWS; uses PARLEY_ADMIN_TOKEN"),
		table: c.fs.String("table", c.getenv("PARLEY_TABLE_NAME"), "the DynamoDB table in AWS (stack output TableName; env PARLEY_TABLE_NAME)"),
	}
	if withJSON {
		t.json = c.fs.Bool("json", false, "print JSON")
	}
	return t
}

// open parses the command line and opens the operator it names: its positional
// arguments and where to act.
func (c *call) open(ctx context.Context, t target) (operator, []string, error) {
	args, err := c.parse()
	if err != nil {
		return nil, nil, err
	}
	op, err := c.operator(ctx, t)
	return op, args, err
}

func (c *call) operator(ctx context.Context, t target) (operator, error) {
	if *t.local != "" {
		tok := c.getenv("PARLEY_ADMIN_TOKEN")
		if tok == "" {
			return nil, errors.New("set PARLEY_ADMIN_TOKEN to the admin token the local stack printed when it started")
		}
		return &localStack{base: strings.TrimRight(*t.local, "/"), token: tok}, nil
	}
	if *t.table == "" {
		return nil, errors.New("no table: pass --table or set PARLEY_TABLE_NAME (the stack output TableName), or --local URL for a local stack")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	return admin.New(dynamo.New(dynamodb.NewFromConfig(cfg), *t.table), nil), nil
}

// channelFlags are the settings a channel is created or updated with.
type channelFlags struct {
	name, url, bot, rulesFile, httpURL                                 *string
	llmProvider, llmBaseURL, llmModel, llmKeySecret, llmKey, llmPrompt *string
	minDelay, maxDelay                                                 *time.Duration
	maxAttempts                                                        *int
}

func addChannelFlags(fs *flag.FlagSet) channelFlags {
	return channelFlags{
		name:         fs.String("name", "", "what the channel is (e.g. web-chat)"),
		url:          fs.String("url", "", "its Response Endpoint URL: where its bot messages are POSTed"),
		bot:          fs.String("bot", "", "its bot: echo, rules, llm or http (create: default echo)"),
		rulesFile:    fs.String("rules-file", "", "bot=rules: the intents file, stored with the channel (default: the built-in example)"),
		httpURL:      fs.String("http-bot-url", "", "bot=http: the bot service's Rasa REST webhook URL"),
		llmProvider:  fs.String("llm-provider", "", "bot=llm: openai (any compatible API) or anthropic"),
		llmBaseURL:   fs.String("llm-base-url", "", "bot=llm: the API's base URL"),
		llmModel:     fs.String("llm-model", "", "bot=llm: the model"),
		llmKeySecret: fs.String("llm-api-key-secret", "", "bot=llm in AWS: the Secrets Manager secret (name or ARN) holding the API key"),
		llmKey:       fs.String("llm-api-key", "", "bot=llm on the local stack: the API key itself (never stored in AWS)"),
		llmPrompt:    fs.String("llm-system-prompt", "", "bot=llm: the system prompt"),
		minDelay:     fs.Duration("retry-min-delay", 0, "its own retry budget: the first delay (with --retry-max-delay and --max-attempts)"),
		maxDelay:     fs.Duration("retry-max-delay", 0, "its own retry budget: the longest delay"),
		maxAttempts:  fs.Int("max-attempts", 0, "its own retry budget: attempts in all (update: 0 keeps it, -1 goes back to the deployment's)"),
	}
}

// botSpec builds the bot settings the flags give, and whether they give any.
func (f channelFlags) botSpec() (message.BotSpec, bool, error) {
	spec := message.BotSpec{Kind: *f.bot, HTTPURL: *f.httpURL}
	given := *f.bot != ""
	if *f.rulesFile != "" {
		b, err := os.ReadFile(*f.rulesFile)
		if err != nil {
			return spec, false, err
		}
		spec.Rules, given = b, true
	}
	if s := *f.llmKeySecret; s != "" && !strings.HasPrefix(s, "parley/") && !strings.Contains(s, ":secret:parley/") {
		// The delivery function may read only secrets named parley/… (infra/README.md).
		return spec, false, fmt.Errorf("--llm-api-key-secret %q: name the secret parley/… (the functions may read only those)", s)
	}
	if *f.llmModel != "" || *f.llmProvider != "" || *f.llmKeySecret != "" || *f.llmKey != "" {
		spec.LLM = &message.LLMSpec{Provider: *f.llmProvider, BaseURL: *f.llmBaseURL, Model: *f.llmModel,
			APIKeySecret: *f.llmKeySecret, APIKey: *f.llmKey, SystemPrompt: *f.llmPrompt}
		given = true
	}
	if spec.Kind == "" && given {
		switch {
		case spec.LLM != nil:
			spec.Kind = "llm"
		case len(spec.Rules) > 0:
			spec.Kind = "rules"
		case spec.HTTPURL != "":
			spec.Kind = "http"
		}
	}
	return spec, given || spec.HTTPURL != "", nil
}

func (f channelFlags) retry() *message.RetrySpec {
	if *f.maxAttempts == 0 {
		return nil
	}
	if *f.maxAttempts < 0 {
		return &message.RetrySpec{} // back to the deployment's
	}
	return &message.RetrySpec{MinDelay: message.Duration(*f.minDelay), MaxDelay: message.Duration(*f.maxDelay), MaxAttempts: *f.maxAttempts}
}

func channelCreate(ctx context.Context, c *call) error {
	f := addChannelFlags(c.fs)
	t := c.target(true)
	if _, err := c.parse(); err != nil {
		return err
	}
	if *f.name == "" || *f.url == "" {
		return errors.New("--name and --url are required")
	}
	spec, _, err := f.botSpec()
	if err != nil {
		return err
	}
	if spec.LLM != nil && spec.LLM.APIKey != "" && *t.local == "" {
		return errors.New("--llm-api-key is for the local stack only: in AWS store the key in Secrets Manager and give --llm-api-key-secret parley/…")
	}
	op, err := c.operator(ctx, t)
	if err != nil {
		return err
	}
	created, err := op.CreateChannel(ctx, message.Channel{Name: *f.name, ResponseURL: *f.url, Bot: spec, Retry: f.retry()})
	if err != nil {
		return err
	}
	if *t.json {
		return printJSON(c.stdout, map[string]string{"id": created.ID, "name": created.Name, "token": created.Token, "signingSecret": created.SigningSecret})
	}
	fmt.Fprintf(c.stdout, "channel %s (%s), bot %s, responses to %s\n\n  token           %s\n  signing secret  %s\n\nBoth are shown only now: store them. The token is a backend token for POST /, the history\nand erasure; `parley token create --channel %s --scope bot` makes one for bot messages.\n",
		created.ID, created.Name, created.Channel.Bot.Kind, created.Channel.ResponseURL, created.Token, created.SigningSecret, created.ID)
	return nil
}

func channelList(ctx context.Context, c *call) error {
	t := c.target(true)
	op, _, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	list, err := op.Channels(ctx)
	if err != nil {
		return err
	}
	if *t.json {
		return printJSON(c.stdout, list)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tBOT\tRESPONSE ENDPOINT\tUPDATED")
	for _, ch := range list {
		updated := "-"
		if !ch.UpdatedAt.IsZero() {
			updated = ch.UpdatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ch.ID, ch.Name, ch.Bot.Kind, ch.ResponseURL, updated)
	}
	if *t.local == "" {
		fmt.Fprintln(w, "default\t(the stack's settings)\t\t\t")
	}
	return w.Flush()
}

func channelShow(ctx context.Context, c *call) error {
	t := c.target(false)
	op, args, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	ch, err := op.Channel(ctx, args[0])
	if err != nil {
		return err
	}
	return printJSON(c.stdout, ch)
}

func channelUpdate(ctx context.Context, c *call) error {
	f := addChannelFlags(c.fs)
	rotate := c.fs.Bool("rotate-secret", false, "add a fresh signing secret in front of the current ones (deliveries carry a signature for each), and print it")
	drop := c.fs.Bool("drop-old-secrets", false, "keep only the newest signing secret")
	t := c.target(true)
	args, err := c.parse()
	if err != nil {
		return err
	}
	p := admin.Patch{RotateSecret: *rotate, DropOldSecrets: *drop, Retry: f.retry()}
	if *f.name != "" {
		p.Name = f.name
	}
	if *f.url != "" {
		p.ResponseURL = f.url
	}
	spec, given, err := f.botSpec()
	if err != nil {
		return err
	}
	if given {
		if spec.LLM != nil && spec.LLM.APIKey != "" && *t.local == "" {
			return errors.New("--llm-api-key is for the local stack only: in AWS store the key in Secrets Manager and give --llm-api-key-secret parley/…")
		}
		p.Bot = &spec
	}
	if p == (admin.Patch{}) {
		return errors.New("nothing to change: give a flag (parley channel update --help)")
	}
	op, err := c.operator(ctx, t)
	if err != nil {
		return err
	}
	u, err := op.UpdateChannel(ctx, args[0], p)
	if err != nil {
		return err
	}
	if *t.json {
		return printJSON(c.stdout, u)
	}
	fmt.Fprintf(c.stdout, "channel %s updated; running functions use it within a minute\n", u.Channel.ID)
	if u.SigningSecret != "" {
		fmt.Fprintf(c.stdout, "new signing secret (shown only now): %s\n", u.SigningSecret)
	}
	return nil
}

func channelDelete(ctx context.Context, c *call) error {
	t := c.target(false)
	op, args, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	n, err := op.DeleteChannel(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "channel %s deleted, %d token(s) revoked; its conversations expire with their TTL\n", args[0], n)
	return nil
}

func tokenCreate(ctx context.Context, c *call) error {
	name := c.fs.String("name", "", "what the token is for (required)")
	channel := c.fs.String("channel", message.DefaultChannel, "the channel it acts for")
	scope := c.fs.String("scope", message.ScopeBackend, "backend (POST /, history, erasure) or bot (bot messages into conversations)")
	t := c.target(true)
	if _, err := c.parse(); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required (what the token is for)")
	}
	op, err := c.operator(ctx, t)
	if err != nil {
		return err
	}
	plain, tok, err := op.CreateToken(ctx, *channel, *name, *scope)
	if err != nil {
		return err
	}
	if *t.json {
		return printJSON(c.stdout, map[string]string{"id": tok.ID(), "token": plain, "scope": tok.Scope})
	}
	fmt.Fprintf(c.stdout, "%s\n\nid %s (%s), channel %s, scope %s. This is the only time the token is shown: store it now.\n", plain, tok.ID(), tok.Name, tok.Channel, tok.Scope)
	return nil
}

func tokenList(ctx context.Context, c *call) error {
	channel := c.fs.String("channel", "", "only this channel's tokens")
	t := c.target(true)
	op, _, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	toks, err := op.Tokens(ctx, *channel)
	if err != nil {
		return err
	}
	views := devstack.TokenViews(toks)
	if *t.json {
		return printJSON(c.stdout, views)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tCHANNEL\tSCOPE\tCREATED")
	for _, v := range views {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, v.Channel, v.Scope, v.CreatedAt)
	}
	return w.Flush()
}

func tokenRevoke(ctx context.Context, c *call) error {
	t := c.target(false)
	op, args, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	n, err := op.RevokeToken(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked %d token(s); running functions stop accepting it within a minute\n", n)
	return nil
}

func devCommand(ctx context.Context, c *call) error {
	if _, err := c.parse(); err != nil {
		if errors.Is(err, errHelped) {
			fmt.Fprintln(c.stdout, "\nconfiguration: the PARLEY_* variables in the README's Configuration table; every bad one is reported at once.")
		}
		return err
	}
	cfg, err := devstack.ConfigFromEnv(c.getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s is set, but PARLEY_BOT=%s does not use it\n", w, cfg.Bot)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, nil))
	return devstack.Run(ctx, cfg, c.stdout, log)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
