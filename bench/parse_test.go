package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/bench/awscount"
)

func TestParseMicro(t *testing.T) {
	out := `goos: linux
BenchmarkDecodeInbound/text-2         	  139597	      8000 ns/op	  17.50 MB/s	    4352 B/op	      61 allocs/op
BenchmarkDecodeInbound/text-2         	  139597	      6000 ns/op	  17.50 MB/s	    4352 B/op	      61 allocs/op
BenchmarkDecodeInbound/text-2         	  139597	      7000 ns/op	  17.50 MB/s	    4352 B/op	      61 allocs/op
BenchmarkInboundReplay-2              	   98662	     11719 ns/op	    7227 B/op	      92 allocs/op
PASS
`
	got, err := ParseMicro(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "BenchmarkDecodeInbound/text" || got[0].Runs != 3 || got[0].NsPerOp != 7000 || got[0].AllocsPerOp != 61 ||
		got[1].Name != "BenchmarkInboundReplay" || got[1].BytesPerOp != 7227 {
		t.Errorf("ParseMicro = %+v", got)
	}
	if _, err := ParseMicro(strings.NewReader("PASS\n")); err == nil {
		t.Error("no benchmarks parsed without an error")
	}
}

// The floor ratio is shown for the systems on the floor's emulators only, and the
// targets say which were missed.
func TestMarkdownRatio(t *testing.T) {
	res := func(perSecond float64) []Result { return []Result{{PerSecond: perSecond, P50: time.Millisecond}} }
	r := &Report{Floor: "floor",
		Systems: []System{{Name: "local", VsFloor: false}, {Name: "emulators", VsFloor: true}, {Name: "floor"}},
		E2E: []E2E{{System: "local", Concurrency: 1, Reps: res(1000)}, {System: "emulators", Concurrency: 1, Reps: res(50)},
			{System: "floor", Concurrency: 1, Reps: res(200)},
			{System: "emulators", Concurrency: 16, Reps: res(180)}, {System: "floor", Concurrency: 16, Reps: res(200)}}}
	md := r.Markdown()
	for _, want := range []string{"| emulators | 1 | 50 |", "0.25×", "| end to end ≥ 0.8× the floor at c = 1 (emulators) | 0.25× | **missed** |",
		"| end to end ≥ 0.8× the floor at c = 16 (emulators) | 0.90× | met |"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
	if strings.Contains(md, "5.00×") {
		t.Errorf("the local stack compared with the floor:\n%s", md)
	}
}

// Calls and write units per message add up by function; the targets read them.
func TestCountedTargets(t *testing.T) {
	put := awscount.Op{Service: "DynamoDB", Operation: "PutItem"}
	send := awscount.Op{Service: "SQS", Operation: "SendMessage"}
	c := CountedRun{Concurrency: 16, Messages: 100, Batches: 5, Usage: Usage{HTTPRequests: 1, InboundInvocations: 1, WRU: 2, SQSRequests: 1},
		Calls: []CallRow{
			{Caller: CallerInbound, Op: put, Stat: awscount.Stat{Calls: 100, WriteUnits: 100, SizedWriteUnits: 100}},
			{Caller: CallerInbound, Op: send, Stat: awscount.Stat{Calls: 100}},
			{Caller: CallerDelivery, Op: put, Stat: awscount.Stat{Calls: 100, WriteUnits: 100, SizedWriteUnits: 200}},
			{Caller: CallerESM, Op: awscount.Op{Service: "SQS", Operation: "ReceiveMessage"}, Stat: awscount.Stat{Calls: 20}},
		}}
	if calls, wru, sized := c.PerMessage(CallerInbound); calls != 2 || wru != 1 || sized != 1 {
		t.Errorf("inbound: %g calls, %g WRU, %g sized; want 2, 1, 1", calls, wru, sized)
	}
	if calls, wru, sized := c.PerMessage(CallerDelivery); calls != 1 || wru != 1 || sized != 2 {
		t.Errorf("delivery: %g calls, %g WRU, %g sized; want 1, 1, 2", calls, wru, sized)
	}
	md := (&Report{Counted: []CountedRun{c}}).Markdown()
	for _, want := range []string{"| 3.000: inbound 2.000 + delivery 1.000 (cached reads 0.0000 more) | met |",
		// The item sizes say 3 units: the larger figure is judged.
		"| 2.000 reported by DynamoDB Local (3.000 worked out from the item sizes): inbound 1.000 + delivery 1.000 | **missed** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}
}

// The per-invocation lines scale with the batch size; the others do not.
func TestAtBatch(t *testing.T) {
	u := Usage{HTTPRequests: 1, DeliveryInvocations: 0.5, ESMRequests: 1, WRU: 2}
	got := AtBatch(u, 2, 10)
	if got.DeliveryInvocations != 0.1 || got.ESMRequests != 0.2 || got.HTTPRequests != 1 || got.WRU != 2 {
		t.Errorf("AtBatch = %+v", got)
	}
}

func TestProcCPU(t *testing.T) {
	before := ProcCPU(os.Getpid())
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	after := ProcCPU(os.Getpid())
	if after <= 0 || after < before {
		t.Errorf("ProcCPU: %s then %s", before, after)
	}
	if d := (CPUSample{"a": 3 * time.Second}).Sub(CPUSample{"a": time.Second}); d["a"] != 2*time.Second {
		t.Errorf("Sub = %v", d)
	}
	if ProcCPU(-1) != 0 {
		t.Error("a process that does not exist used CPU")
	}
}
