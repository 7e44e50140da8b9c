package bench

import (
	"strings"
	"testing"
	"time"
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

// The floor ratio is shown for the systems on the floor's emulators only.
func TestMarkdownRatio(t *testing.T) {
	res := func(perSecond float64) []Result { return []Result{{PerSecond: perSecond, P50: time.Millisecond}} }
	r := &Report{Floor: "floor", Usage: Usage{MemoryMB: 256},
		Systems: []System{{Name: "local", VsFloor: false}, {Name: "emulators", VsFloor: true}, {Name: "floor"}},
		E2E: []E2E{{System: "local", Concurrency: 1, Reps: res(1000)}, {System: "emulators", Concurrency: 1, Reps: res(50)},
			{System: "floor", Concurrency: 1, Reps: res(200)}}}
	md := r.Markdown()
	if !strings.Contains(md, "| emulators | 1 | 50 |") || !strings.Contains(md, "0.25×") || strings.Contains(md, "5.00×") {
		t.Errorf("table:\n%s", md)
	}
}
