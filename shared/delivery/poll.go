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
	Delete(ctx context.Context, receipt string) error
}

// Poll does outside Lambda what the SQS event source mapping does in it: workers
// receive batches of up to 10, hand them to h, and delete the records h did not report
// as failures. It returns when ctx is done, after the batches in hand are settled.
func Poll(ctx context.Context, src Source, h *Handler, workers int, log *slog.Logger) {
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msgs, err := src.Receive(ctx, 10, time.Second)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						log.WarnContext(ctx, "receive", slog.String("error", err.Error()))
						sleep(ctx, time.Second)
					}
					continue
				}
				if len(msgs) > 0 {
					settle(context.WithoutCancel(ctx), src, h, msgs, log)
				}
			}
		}()
	}
	wg.Wait()
}

func settle(ctx context.Context, src Source, h *Handler, msgs []events.SQSMessage, log *slog.Logger) {
	res, err := h.Handle(ctx, events.SQSEvent{Records: msgs})
	if err != nil {
		return // the whole batch comes back after its visibility timeout
	}
	failed := map[string]bool{}
	for _, f := range res.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range msgs {
		if failed[m.MessageId] {
			continue
		}
		if err := src.Delete(ctx, m.ReceiptHandle); err != nil {
			log.WarnContext(ctx, "delete", slog.String("sqsMessageId", m.MessageId), slog.String("error", err.Error()))
		}
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
