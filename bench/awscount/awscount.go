// Package awscount counts the AWS API calls that SDK clients make, per service and
// operation, with an SDK middleware: what a message costs in calls is measured on the
// real adapters, not read off the design notes. Attach a Counter to a client's
// options (dynamodb.Options.APIOptions, sqs.Options.APIOptions) or to an aws.Config's
// APIOptions, which every client made from it inherits.
package awscount

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Op names one API operation, as the SDK names them: Service "DynamoDB" or "SQS",
// Operation "PutItem" or "SendMessageBatch".
type Op struct {
	Service   string
	Operation string
}

func (o Op) String() string { return o.Service + "." + o.Operation }

// Stat is what was counted for one operation.
type Stat struct {
	// Calls is how many times the application called the operation.
	Calls int64
	// Attempts is how many requests went over the wire, SDK retries included: AWS
	// bills SQS and API Gateway per request, and DynamoDB per request that it served.
	Attempts int64
	// Errors counts calls that failed in the end, by the service's error code
	// ("ConditionalCheckFailedException"), or "transport" when no response came.
	Errors map[string]int64
	// WriteUnits and ReadUnits are the DynamoDB capacity units the service reported
	// consuming, when the Counter asks for them (TrackCapacity). A call that fails its
	// condition reports none, although DynamoDB bills it at least one write unit.
	WriteUnits, ReadUnits float64
	// SizedWriteUnits are the write units worked out from the items written, by
	// DynamoDB's documented rules (ItemSize, UnitsFor), when the Counter tracks
	// capacity: the check on WriteUnits that does not trust the service's report, and
	// the figure for an emulator that reports none. It counts the items a call carries
	// (PutItem, BatchWriteItem's puts) and, for a put refused by its condition, the
	// existing item the error returns (at least one unit); other writes add nothing.
	SizedWriteUnits float64
	// Time is the time spent in the calls, retries included.
	Time time.Duration
}

// Failed is the number of calls that failed, whatever the reason.
func (s Stat) Failed() int64 {
	var n int64
	for _, v := range s.Errors {
		n += v
	}
	return n
}

func (s *Stat) add(o Stat) {
	s.Calls += o.Calls
	s.Attempts += o.Attempts
	s.WriteUnits += o.WriteUnits
	s.ReadUnits += o.ReadUnits
	s.SizedWriteUnits += o.SizedWriteUnits
	s.Time += o.Time
	for k, v := range o.Errors {
		if s.Errors == nil {
			s.Errors = map[string]int64{}
		}
		s.Errors[k] += v
	}
}

// Counter counts calls. It is safe for concurrent use; the zero value is not: use New.
type Counter struct {
	mu       sync.Mutex
	stats    map[Op]*Stat
	capacity bool
}

// New returns an empty Counter.
func New() *Counter { return &Counter{stats: map[Op]*Stat{}} }

// TrackCapacity makes the Counter ask DynamoDB for the capacity each call consumed
// (ReturnConsumedCapacity TOTAL on calls that do not ask already) and add it up. It
// changes nothing else about the calls. It returns c.
func (c *Counter) TrackCapacity() *Counter {
	c.mu.Lock()
	c.capacity = true
	c.mu.Unlock()
	return c
}

// Middleware adds the counting middleware to an operation's stack; it has the
// signature of an APIOptions entry:
//
//	dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, counter.Middleware) })
func (c *Counter) Middleware(stack *middleware.Stack) error {
	if err := stack.Initialize.Add(callCounter{c}, middleware.After); err != nil {
		return fmt.Errorf("awscount: %w", err)
	}
	// After the retry middleware, the attempt counter runs once per request sent.
	err := stack.Finalize.Insert(attemptCounter{c}, "Retry", middleware.After)
	if err != nil {
		err = stack.Finalize.Add(attemptCounter{c}, middleware.After)
	}
	if err != nil {
		return fmt.Errorf("awscount: %w", err)
	}
	return nil
}

// Counts returns a copy of what was counted so far.
func (c *Counter) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(Counts, len(c.stats))
	for op, s := range c.stats {
		var cp Stat
		cp.add(*s)
		out[op] = cp
	}
	return out
}

// Reset forgets what was counted.
func (c *Counter) Reset() {
	c.mu.Lock()
	clear(c.stats)
	c.mu.Unlock()
}

func (c *Counter) record(op Op, f func(*Stat)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats[op]
	if s == nil {
		s = &Stat{}
		c.stats[op] = s
	}
	f(s)
}

func (c *Counter) tracksCapacity() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capacity
}

func opOf(ctx context.Context) Op {
	return Op{Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx)}
}

type callCounter struct{ c *Counter }

func (callCounter) ID() string { return "awscount.Calls" }

func (m callCounter) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	capacity := m.c.tracksCapacity()
	if capacity {
		askCapacity(in.Parameters)
	}
	start := time.Now()
	out, md, err := next.HandleInitialize(ctx, in)
	took := time.Since(start)
	op := opOf(ctx)
	var units, sized float64
	if capacity {
		if err == nil {
			units = consumedUnits(out.Result)
		}
		sized = sizedWriteUnits(in.Parameters, err)
	}
	m.c.record(op, func(s *Stat) {
		s.Calls++
		s.Time += took
		s.SizedWriteUnits += sized
		if isWrite(op.Operation) {
			s.WriteUnits += units
		} else {
			s.ReadUnits += units
		}
		if err != nil {
			if s.Errors == nil {
				s.Errors = map[string]int64{}
			}
			s.Errors[errorCode(err)]++
		}
	})
	return out, md, err
}

type attemptCounter struct{ c *Counter }

func (attemptCounter) ID() string { return "awscount.Attempts" }

func (m attemptCounter) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	m.c.record(opOf(ctx), func(s *Stat) { s.Attempts++ })
	return next.HandleFinalize(ctx, in)
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return "transport"
}

// isWrite tells the DynamoDB operations billed in write units from those billed in
// read units.
func isWrite(op string) bool {
	for _, w := range []string{"Put", "Update", "Delete", "Write"} {
		if strings.Contains(op, w) {
			return true
		}
	}
	return false
}

// Counts is a snapshot of a Counter.
type Counts map[Op]Stat

// Ops lists the operations counted, sorted by service then operation.
func (cs Counts) Ops() []Op {
	return slices.SortedFunc(maps.Keys(cs), func(a, b Op) int { return strings.Compare(a.String(), b.String()) })
}

// Total adds up the operations for which keep is true (all when keep is nil).
func (cs Counts) Total(keep func(Op) bool) Stat {
	var t Stat
	for op, s := range cs {
		if keep == nil || keep(op) {
			t.add(s)
		}
	}
	return t
}

// Sub returns what cs counted beyond before, operation by operation.
func (cs Counts) Sub(before Counts) Counts {
	out := Counts{}
	for op, s := range cs {
		b := before[op]
		d := Stat{Calls: s.Calls - b.Calls, Attempts: s.Attempts - b.Attempts, WriteUnits: s.WriteUnits - b.WriteUnits, ReadUnits: s.ReadUnits - b.ReadUnits,
			SizedWriteUnits: s.SizedWriteUnits - b.SizedWriteUnits, Time: s.Time - b.Time}
		for k, v := range s.Errors {
			if n := v - b.Errors[k]; n != 0 {
				if d.Errors == nil {
					d.Errors = map[string]int64{}
				}
				d.Errors[k] = n
			}
		}
		if d.Calls != 0 || d.Attempts != 0 {
			out[op] = d
		}
	}
	return out
}

// String lists the operations, one a line: "DynamoDB.PutItem calls=3 attempts=3".
func (cs Counts) String() string {
	var b strings.Builder
	for _, op := range cs.Ops() {
		s := cs[op]
		fmt.Fprintf(&b, "%s calls=%d attempts=%d time=%s", op, s.Calls, s.Attempts, s.Time)
		if s.WriteUnits > 0 {
			fmt.Fprintf(&b, " wru=%g", s.WriteUnits)
		}
		if s.SizedWriteUnits > 0 {
			fmt.Fprintf(&b, " sized-wru=%g", s.SizedWriteUnits)
		}
		if s.ReadUnits > 0 {
			fmt.Fprintf(&b, " rru=%g", s.ReadUnits)
		}
		for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
			fmt.Fprintf(&b, " %s=%d", k, s.Errors[k])
		}
		b.WriteByte('\n')
	}
	return b.String()
}
