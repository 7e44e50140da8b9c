// Command parley is Parley's command line: the local stack (`parley dev`) and the
// operator tools for a deployed stack.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-chat/parley/shared/devstack"
)

const usage = `usage: parley <command> [arguments]

commands:
  dev                      run the local stack (configuration: README)
  token create --name N    create an API token in the deployed table and print it once
  token list               list the tokens (ids and names, never the tokens)
  token revoke ID          revoke a token by the id that list shows
  endpoint check [--url U] POST the registration probe {"type":"test","payload":"test"} and report the answer
  dlq list [--local URL]   list the dead-letter queue: why each message is there
  dlq redrive [--local URL]
                           move dead letters back to the delivery queue, order kept

In AWS, the commands read the stack outputs from PARLEY_TABLE_NAME, PARLEY_QUEUE_URL and
PARLEY_DEAD_LETTER_QUEUE_URL (or flags), and credentials the usual AWS way.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command")
	}
	switch args[0] {
	case "dev":
		cfg, err := devstack.ConfigFromEnv(getenv)
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		log := slog.New(slog.NewTextHandler(stderr, nil))
		return devstack.Run(ctx, cfg, stdout, log)
	case "token":
		return tokenCommand(ctx, args[1:], getenv, stdout, openTable)
	case "endpoint":
		if len(args) < 2 || args[1] != "check" {
			return fmt.Errorf("endpoint: want check")
		}
		return endpointCheck(ctx, args[2:], getenv, stdout)
	case "dlq":
		return dlqCommand(ctx, args[1:], getenv, stdout, openSQS)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
