package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Source is a queue a poller receives from, as Lambda's event source mapping does.
type Source interface {
	Receive(ctx context.Context, max int, wait time.Duration) ([]events.SQSMessage, error)
	Ack(ctx context.Context, receipts []string) error
}

// PollConfig tunes Poll; zero values take the defaults.
type PollConfig struct {
	// Budget is how long one batch may run, as the function timeout bounds an
	// invocation: it must stay below the queue's visibility timeout, or a second
	// worker would take the same conversation. Default FunctionTimeout(DefaultBotTimeout).
	Budget time.Duration
	// Batches is how many batches may run at once. A batch whose receiver hangs holds
	// a slot, not a worker: the other conversations keep being received. Default 256.
	Batches int
}

// Poll does outside Lambda what the SQS event source mapping does in it: it receives
// batches of up to 10, runs each under its own deadline, and deletes the jobs the
// handler neither reported as failures nor acknowledged itself. It returns when ctx
// is done, after the batches in hand are settled.
func Poll(ctx context.Context, src Source, h *Handler, cfg PollConfig, log *slog.Logger) {
	if cfg.Budget <= 0 {
		cfg.Budget = FunctionTimeout(DefaultBotTimeout)
	}
	if cfg.Batches <= 0 {
		cfg.Batches = 256
	}
	slots := make(chan struct{}, cfg.Batches)
	var running sync.WaitGroup
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		msgs, err := src.Receive(ctx, 10, time.Second)
		if err != nil || len(msgs) == 0 {
			<-slots
			if err != nil && !errors.Is(err, context.Canceled) {
				log.WarnContext(ctx, "receive", slog.String("error", err.Error()))
				sleep(ctx, time.Second)
			}
			continue
		}
		running.Add(1)
		go func() {
			defer func() { <-slots; running.Done() }()
			settle(context.WithoutCancel(ctx), src, h, msgs, cfg.Budget, log)
		}()
	}
	running.Wait()
}

func settle(ctx context.Context, src Source, h *Handler, msgs []events.SQSMessage, budget time.Duration, log *slog.Logger) {
	batch, cancel := context.WithTimeout(ctx, budget)
	failed, acked, err := h.Run(batch, msgs)
	cancel()
	if err != nil {
		return // abandoned: the whole batch comes back after its visibility timeout
	}
	var done []string
	for _, m := range msgs {
		if !failed[m.MessageId] && !acked[m.MessageId] {
			done = append(done, m.ReceiptHandle)
		}
	}
	if len(done) == 0 {
		return
	}
	if err := src.Ack(ctx, done); err != nil {
		log.WarnContext(ctx, "delete", slog.Int("messages", len(done)), slog.String("error", err.Error()))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
