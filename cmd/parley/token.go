package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/token"
)

// tokenStore is what the token commands need of the table.
type tokenStore interface {
	PutToken(ctx context.Context, t message.Token) error
	ListTokens(ctx context.Context) ([]message.Token, error)
	DeleteTokens(ctx context.Context, id string) (int, error)
}

// openTable opens the deployed table named by --table or PARLEY_TABLE_NAME with the
// standard AWS configuration (profile, region, AWS_ENDPOINT_URL_DYNAMODB).
func openTable(ctx context.Context, table string) (tokenStore, error) {
	if table == "" {
		return nil, fmt.Errorf("no table: pass --table or set PARLEY_TABLE_NAME (the stack output TableName)")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	return dynamo.New(dynamodb.NewFromConfig(cfg), table), nil
}

func tokenCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, open func(context.Context, string) (tokenStore, error)) error {
	if len(args) == 0 {
		return fmt.Errorf("token: want create, list or revoke")
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	table := fs.String("table", getenv("PARLEY_TABLE_NAME"), "the DynamoDB table (stack output TableName)")
	name := fs.String("name", "", "what the token is for (create)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("token %s: %w", args[0], err)
	}
	switch args[0] {
	case "create":
		if *name == "" {
			return fmt.Errorf("token create: --name is required (what the token is for)")
		}
		store, err := open(ctx, *table)
		if err != nil {
			return err
		}
		plain, tok := token.Generate(*name, time.Now())
		if err := store.PutToken(ctx, tok); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n\nid %s (%s). This is the only time the token is shown: store it now.\n", plain, tok.ID(), tok.Name)
		return nil
	case "list":
		store, err := open(ctx, *table)
		if err != nil {
			return err
		}
		toks, err := store.ListTokens(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tCREATED")
		for _, t := range toks {
			fmt.Fprintf(w, "%s\t%s\t%s\n", t.ID(), t.Name, t.CreatedAt.Format(time.RFC3339))
		}
		return w.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("token revoke: give the id that `parley token list` shows")
		}
		store, err := open(ctx, *table)
		if err != nil {
			return err
		}
		n, err := store.DeleteTokens(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("token revoke: no token with id %s", fs.Arg(0))
		}
		fmt.Fprintf(stdout, "revoked %d token(s); running functions stop accepting it within a minute\n", n)
		return nil
	}
	return fmt.Errorf("token: unknown subcommand %q; want create, list or revoke", args[0])
}
