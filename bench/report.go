package bench

import (
	"archive/zip"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/shared/awscount"
)

// Micro is one microbenchmark: the medians over its -count runs.
type Micro struct {
	Name        string
	Runs        int
	NsPerOp     float64
	AllocsPerOp float64
	BytesPerOp  float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// ParseMicro reads `go test -bench -benchmem -count N` output and returns each
// benchmark's median ns/op, B/op and allocs/op, in the order they first appear.
func ParseMicro(r io.Reader) ([]Micro, error) {
	type acc struct{ ns, bytes, allocs []float64 }
	var order []string
	all := map[string]*acc{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		a := all[m[1]]
		if a == nil {
			a = &acc{}
			all[m[1]] = a
			order = append(order, m[1])
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "B/op":
				a.bytes = append(a.bytes, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("no benchmark results found")
	}
	out := make([]Micro, 0, len(order))
	for _, name := range order {
		a := all[name]
		out = append(out, Micro{Name: name, Runs: len(a.ns), NsPerOp: Median(a.ns), BytesPerOp: Median(a.bytes), AllocsPerOp: Median(a.allocs)})
	}
	return out, nil
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPU, OS, Go, Java, Node string
	Cores                   int
	LoadBefore, LoadAfter   string // /proc/loadavg's 1-minute figure
}

// ThisMachine describes this machine.
func ThisMachine() Machine {
	m := Machine{CPU: "unknown", OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), Cores: runtime.NumCPU(), LoadBefore: LoadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		m.Java = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		m.Node = strings.TrimSpace(string(out))
	}
	return m
}

// LoadAverage is the 1-minute load average, or "?".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// Binary is a Lambda bootstrap as deployed.
type Binary struct {
	Function string
	Arch     string // from the ELF header
	Bytes    int64
	ZipBytes int64 // the deployment zip: the one file, deflated
	InitP50  time.Duration
	InitRuns int
}

// InspectBinary reads a bootstrap's size, architecture and zipped size.
func InspectBinary(function, path string) (Binary, error) {
	b := Binary{Function: function}
	data, err := os.ReadFile(path)
	if err != nil {
		return b, err
	}
	b.Bytes = int64(len(data))
	if f, err := elf.NewFile(bytes.NewReader(data)); err == nil {
		b.Arch = map[elf.Machine]string{elf.EM_AARCH64: "linux/arm64", elf.EM_X86_64: "linux/amd64"}[f.Machine]
		if b.Arch == "" {
			b.Arch = f.Machine.String()
		}
	}
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "bootstrap", Method: zip.Deflate})
	if err != nil {
		return b, err
	}
	if _, err := w.Write(data); err != nil {
		return b, err
	}
	if err := zw.Close(); err != nil {
		return b, err
	}
	b.ZipBytes = int64(z.Len())
	return b, nil
}

// System names what a load ran against.
type System struct {
	Name, Desc string
	// VsFloor: the system runs on the floor's emulators, so its throughput is
	// compared with the floor's.
	VsFloor bool
}

// E2E is the median over repetitions of one system at one concurrency.
type E2E struct {
	System      string
	Concurrency int
	Reps        []Result
}

func (e E2E) median(f func(Result) float64) float64 {
	xs := make([]float64, len(e.Reps))
	for i, r := range e.Reps {
		xs[i] = f(r)
	}
	return Median(xs)
}

// PerSecond is the median throughput.
func (e E2E) PerSecond() float64 { return e.median(func(r Result) float64 { return r.PerSecond }) }

// P50, P99, PostP50 are the medians of the repetitions' percentiles.
func (e E2E) P50() time.Duration {
	return time.Duration(e.median(func(r Result) float64 { return float64(r.P50) }))
}
func (e E2E) P99() time.Duration {
	return time.Duration(e.median(func(r Result) float64 { return float64(r.P99) }))
}
func (e E2E) PostP50() time.Duration {
	return time.Duration(e.median(func(r Result) float64 { return float64(r.PostP50) }))
}

// Problems adds up the failed POSTs and lost replies of every repetition.
func (e E2E) Problems() (failed, lost int, first string) {
	for _, r := range e.Reps {
		failed += r.Failed
		lost += r.Lost
		if first == "" {
			first = r.FirstError
		}
	}
	return
}

// CallRow is one AWS operation's calls per accepted message, by who makes them.
type CallRow struct {
	Caller string // "inbound function", "delivery function", "event source mapping"
	Op     awscount.Op
	Stat   awscount.Stat
}

// Report is everything `make bench` prints.
type Report struct {
	Date     time.Time
	Machine  Machine
	Micro    []Micro
	Systems  []System
	E2E      []E2E // by system, then concurrency
	Window   time.Duration
	Warmup   time.Duration
	Floor    string // the System name of the floor
	Messages int    // accepted messages in the counted run
	Calls    []CallRow
	Batches  float64 // mean batch size the delivery function got in the counted run
	// InboundMean is the mean inbound Handle time in the counted run, and InboundAWS
	// the part of it spent waiting on AWS calls.
	InboundMean, InboundAWS time.Duration
	Usage                   Usage
	Binaries                []Binary
	Notes                   []string
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.2f ms", ns/1e6)
}

// Find returns the E2E of system at concurrency c.
func (r *Report) Find(system string, c int) (E2E, bool) {
	for _, e := range r.E2E {
		if e.System == system && e.Concurrency == c {
			return e, true
		}
	}
	return E2E{}, false
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Parley benchmarks\n\n")
	p("Generated by `make bench` on %s. Every number below was measured in that run; nothing is copied in.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	m := r.Machine
	p("**Machine:** %s, %d cores, %s, %s; DynamoDB Local on %s, local-aws-sqs on Node %s. 1-minute load average %s when the end-to-end runs began (%s at the end, the run's own load). ",
		m.CPU, m.Cores, m.OS, m.Go, orUnknown(m.Java), orUnknown(m.Node), m.LoadBefore, m.LoadAfter)
	p("The load generator, the receiver, the system under test and the emulators all share these cores: compare rows with each other, not with AWS.\n\n")

	p("## Handlers (`go test -bench`, median of %d runs)\n\n", maxRuns(r.Micro))
	p("| benchmark | time/op | allocs/op | bytes/op |\n|---|---:|---:|---:|\n")
	for _, mb := range r.Micro {
		p("| `%s` | %s | %.0f | %.0f |\n", mb.Name, fmtNs(mb.NsPerOp), mb.AllocsPerOp, mb.BytesPerOp)
	}
	p("\nDecodeInbound: decode and validate one body. InboundHandle: one accepted message through `inbound.Handler.Handle` on the embedded store and queue with the echo bot, JSON log line included (window: messages in the embedded queue's deduplication window). InboundReplay: the same message again. DeliveryHandle: `delivery.Handler.Handle` on a batch of records, each a signed POST to a loopback receiver answering 200.\n\n")

	p("## End to end (closed loop, median of %d runs of %s, each after %s of warm-up)\n\n", maxReps(r.E2E), r.Window, r.Warmup)
	p("Each of *c* clients has its own conversation and sends its next message as soon as the receiver got the reply to the previous one. Latency runs from the start of the POST to the receiver answering the bot's reply.\n\n")
	p("| system | c | messages/s | p50 | p99 | POST 200 p50 | vs floor |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Systems {
		for _, e := range r.E2E {
			if e.System != s.Name {
				continue
			}
			ratio := "–"
			if f, ok := r.Find(r.Floor, e.Concurrency); ok && s.VsFloor && f.PerSecond() > 0 {
				ratio = fmt.Sprintf("%.2f×", e.PerSecond()/f.PerSecond())
			}
			note := ""
			if failed, lost, first := e.Problems(); failed+lost > 0 {
				note = fmt.Sprintf(" (%d failed, %d lost: %s)", failed, lost, first)
			}
			p("| %s | %d | %.0f%s | %s | %s | %s | %s |\n", s.Name, e.Concurrency, e.PerSecond(), note, fmtDur(e.P50()), fmtDur(e.P99()), fmtDur(e.PostP50()), ratio)
		}
	}
	p("\n")
	for _, s := range r.Systems {
		p("- **%s**: %s\n", s.Name, s.Desc)
	}

	p("\n## AWS calls per accepted message\n\n")
	p("Counted by `shared/awscount` on the SDK clients of the real adapters, wired as the two functions wire them, over %d messages (echo bot, one reply each) at concurrency 16 on DynamoDB Local and local-aws-sqs. Calls the event source mapping makes in AWS are listed apart: the function does not make them.\n\n", r.Messages)
	p("| made by | operation | calls/msg | requests/msg | capacity/msg | mean time/call |\n|---|---|---:|---:|---:|---:|\n")
	n := float64(max(r.Messages, 1))
	for _, c := range r.Calls {
		capacity := ""
		if c.Stat.WriteUnits > 0 {
			capacity = fmt.Sprintf("%.2f WRU", c.Stat.WriteUnits/n)
		}
		if c.Stat.ReadUnits > 0 {
			capacity = fmt.Sprintf("%.3f RRU", c.Stat.ReadUnits/n)
		}
		var mean time.Duration
		if c.Stat.Calls > 0 {
			mean = c.Stat.Time / time.Duration(c.Stat.Calls)
		}
		p("| %s | %s | %.3f | %.3f | %s | %s |\n", c.Caller, c.Op, float64(c.Stat.Calls)/n, float64(c.Stat.Attempts)/n, capacity, fmtDur(mean))
	}
	p("\nReceiveMessage's time includes its long-poll wait for a message.")
	if r.InboundMean > 0 {
		p("\nOne inbound `Handle` took %s on average in this run, %s of it (%.0f%%) waiting on the calls above.", fmtDur(r.InboundMean), fmtDur(r.InboundAWS), 100*float64(r.InboundAWS)/float64(r.InboundMean))
	}
	p("\nThe delivery function got batches of %.1f records on average here. In AWS the event source mapping receives up to 10 records per call and deletes them in batches, so at full batches it makes 0.2 requests per message; it also long-polls while the queue is empty (a fixed cost, not per message).\n\n", r.Batches)

	lines := Cost(r.Usage)
	p("## Cost per million messages (us-east-1 list prices)\n\n")
	p("| item | per message | $ per million |\n|---|---:|---:|\n")
	for _, l := range lines {
		p("| %s | %.4g %s | %.2f |\n", l.Item, l.PerMsg, l.Unit, l.Dollars)
	}
	p("| **total** | | **%.2f** |\n\n", Total(lines))
	p("Prices (in `bench/cost.go`): HTTP API $%.2f/M requests; Lambda arm64 $%.10f/GB-s and $%.2f/M requests; DynamoDB on-demand $%.3f/M WRU, $%.3f/M RRU; SQS FIFO $%.2f/M requests. Free tiers ignored. Durations are the mean billed (rounded up to 1 ms) `Handle` time measured on the emulators in the counted run, at the deployed %d MB; a real DynamoDB write takes longer than DynamoDB Local's, and a real receiver longer than the loopback one, so in AWS the two duration lines are larger, though still small next to the request lines. The ESM line assumes AWS's batching at the batch size measured here.\n\n",
		Prices.HTTPAPI.PerM, Prices.LambdaARMGBSecond, Prices.LambdaRequests.PerM, Prices.DynamoWRU.PerM, Prices.DynamoRRU.PerM, Prices.SQSFIFO.PerM, r.Usage.MemoryMB)

	p("## Lambda bootstraps\n\n| function | built for | size | zip | init p50 (host, %d runs) |\n|---|---|---:|---:|---:|\n", maxInit(r.Binaries))
	for _, bin := range r.Binaries {
		p("| %s | %s | %.2f MB | %.2f MB | %s |\n", bin.Function, bin.Arch, float64(bin.Bytes)/1e6, float64(bin.ZipBytes)/1e6, fmtDur(bin.InitP50))
	}
	p("\nSizes are of `make size`'s binaries (`-tags lambda.norpc -trimpath -ldflags \"-s -w\"`). Init is from process start to the first Runtime API `GET /runtime/invocation/next`, on a loopback Runtime API (`shared/runtimeapi`), with the same build flags for this machine's architecture; the delivery function's Secrets Manager read (one call per cold start in AWS) is not part of it here. Lambda's own cold start adds the sandbox and the download.\n")
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func maxRuns(ms []Micro) int {
	n := 0
	for _, m := range ms {
		n = max(n, m.Runs)
	}
	return n
}

func maxReps(es []E2E) int {
	n := 0
	for _, e := range es {
		n = max(n, len(e.Reps))
	}
	return n
}

func maxInit(bs []Binary) int {
	n := 0
	for _, b := range bs {
		n = max(n, b.InitRuns)
	}
	return n
}

// SortCalls orders call rows by caller, then operation.
func SortCalls(rows []CallRow) {
	rank := map[string]int{"inbound function": 0, "delivery function": 1, "event source mapping": 2}
	slices.SortStableFunc(rows, func(a, b CallRow) int {
		if d := rank[a.Caller] - rank[b.Caller]; d != 0 {
			return d
		}
		return strings.Compare(a.Op.String(), b.Op.String())
	})
}
