// Package bot holds Parley's built-in bots and picks one by name.
package bot

import (
	"context"
	"fmt"

	"github.com/parley-chat/parley/shared/message"
)

// Bot answers a turn with zero or more messages (see inbound.Bot).
type Bot interface {
	Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error)
}

// Names lists the bots New knows.
var Names = []string{"echo"}

// New returns the bot called name.
func New(name string) (Bot, error) {
	switch name {
	case "", "echo":
		return Echo{}, nil
	}
	return nil, fmt.Errorf("unknown bot %q; known: %v", name, Names)
}

// Echo answers each message with one message of the same type and payload.
type Echo struct{}

// Reply implements Bot.
func (Echo) Reply(ctx context.Context, turn message.Turn) ([]message.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return []message.Reply{{Type: turn.Message.Type, Payload: turn.Message.Payload}}, nil
}
