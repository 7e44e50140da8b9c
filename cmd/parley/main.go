// Command parley is Parley's command line: the local stack (`parley dev`) and the
// operator tools for a deployed stack or a running local one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/parley-chat/parley/shared/webhook"
)

// command is one command line: its words, what positional arguments it takes, what it
// does, and the function that declares its flags and runs it.
type command struct {
	path    string // "channel create"
	args    string // "ID", or "" for none
	summary string
	run     func(ctx context.Context, c *call) error
}

var commands = []command{
	{"dev", "", "run the local stack: the API, the embedded store and queue, the delivery worker, the inbox and the console", devCommand},
	{"version", "", "print the version", versionCommand},
	{"channel create", "", "create a channel: its endpoint, bot and signing secret, and a first backend token (shown once)", channelCreate},
	{"channel list", "", "list the channels (never their secrets)", channelList},
	{"channel show", "ID", "show one channel", channelShow},
	{"channel update", "ID", "change a channel's settings or rotate its signing secret; running functions pick it up within a minute", channelUpdate},
	{"channel delete", "ID", "delete a channel and revoke its tokens", channelDelete},
	{"token create", "", "create an API token for a channel and print it once; only its SHA-256 is stored", tokenCreate},
	{"token list", "", "list tokens: ids, names, channels and scopes, never the tokens", tokenList},
	{"token revoke", "ID", "revoke a token by the id `token list` shows; running functions stop accepting it within a minute", tokenRevoke},
	{"endpoint check", "", `POST the registration probe {"type":"test","payload":"test"} to a Response Endpoint and say what came back`, endpointCheck},
	{"endpoint status", "", "show a channel endpoint's health: its failure streak, its recent failures, whether it is disabled", endpointStatus},
	{"endpoint enable", "", "enable a disabled endpoint again: its waiting messages go out in order", endpointEnable},
	{"delivery show", "WEBHOOK-ID", "show a bot message's delivery: its status and its attempts", deliveryShow},
	{"delivery replay", "WEBHOOK-ID", "send a bot message again: the same webhook-id, a fresh signature", deliveryReplay},
	{"dlq list", "", "list the dead-letter queue: what each job was and why it is there", dlqList},
	{"dlq redrive", "", "move dead letters back to the delivery queue, in order", dlqRedrive},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// errHelped: the command printed its help, which is a success.
var errHelped = errors.New("help printed")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return run(ctx, append(args[1:], "--help"), getenv, stdout, stderr)
		}
		printCommands(stdout, "")
		if len(args) == 0 {
			return errors.New("no command; see the list above")
		}
		return nil
	}
	// The longest command path the words start with.
	var best *command
	for i := range commands {
		words := strings.Fields(commands[i].path)
		if len(words) <= len(args) && slicesEqual(words, args[:len(words)]) && (best == nil || len(words) > len(strings.Fields(best.path))) {
			best = &commands[i]
		}
	}
	if best == nil {
		group := args[0]
		if !hasGroup(group) {
			printCommands(stderr, "")
			return fmt.Errorf("unknown command %q", group)
		}
		if len(args) > 1 && !isHelp(args[1]) {
			printCommands(stderr, group)
			return fmt.Errorf("%s: unknown subcommand %q", group, args[1])
		}
		printCommands(stdout, group)
		if len(args) == 1 {
			return fmt.Errorf("%s: want a subcommand; see the list above", group)
		}
		return nil
	}
	c := &call{cmd: best, args: args[len(strings.Fields(best.path)):], getenv: getenv, stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet("parley "+best.path, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard)
	err := best.run(ctx, c)
	if errors.Is(err, errHelped) {
		return nil
	}
	if err != nil && !strings.HasPrefix(err.Error(), best.path) {
		err = fmt.Errorf("%s: %w", best.path, err)
	}
	return err
}

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

func hasGroup(word string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.path, word+" ") {
			return true
		}
	}
	return false
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func printCommands(w io.Writer, group string) {
	fmt.Fprintln(w, "usage: parley <command> [arguments] [flags]   (parley <command> --help for its flags)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		if group != "" && !strings.HasPrefix(c.path, group+" ") {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.path+" "+c.args), c.summary)
	}
	_ = tw.Flush()
	if group == "" {
		fmt.Fprintln(w, `
Against AWS the operator commands use the stack outputs — PARLEY_TABLE_NAME (TableName),
PARLEY_QUEUE_URL (QueueUrl), PARLEY_DEAD_LETTER_QUEUE_URL (DeadLetterQueueUrl), or the
flags of the same meaning — and the usual AWS credentials and region. With --local URL
they talk to a running local stack instead (PARLEY_ADMIN_TOKEN for channels and tokens,
PARLEY_TOKEN for the dead letters of a channel).`)
	}
}

// call is one command being run: its flag set, its arguments, its environment.
type call struct {
	cmd            *command
	fs             *flag.FlagSet
	args           []string
	getenv         func(string) string
	stdout, stderr io.Writer
}

// parse parses the flags, before and after the positional arguments alike, and checks
// the count of positional arguments. --help prints the command's help and returns
// errHelped.
func (c *call) parse() ([]string, error) {
	var positional []string
	args := c.args
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.help()
				return nil, errHelped
			}
			return nil, fmt.Errorf("%w (parley %s --help lists the flags)", err, c.cmd.path)
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	want := len(strings.Fields(c.cmd.args))
	if len(positional) != want {
		if want == 0 {
			return nil, fmt.Errorf("unexpected argument %q (parley %s --help)", positional[0], c.cmd.path)
		}
		return nil, fmt.Errorf("want %s (parley %s --help)", c.cmd.args, c.cmd.path)
	}
	return positional, nil
}

func (c *call) help() {
	w := c.stdout
	fmt.Fprintf(w, "usage: parley %s [flags]\n\n%s\n", strings.TrimSpace(c.cmd.path+" "+c.cmd.args), c.cmd.summary)
	var names []string
	c.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\nflags:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range names {
		f := c.fs.Lookup(n)
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  --%s\t%s%s\n", n, f.Usage, def)
	}
	_ = tw.Flush()
}

func versionCommand(ctx context.Context, c *call) error {
	if _, err := c.parse(); err != nil {
		return err
	}
	v := webhook.Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	fmt.Fprintln(c.stdout, "parley "+v)
	return nil
}
