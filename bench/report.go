package bench

import (
	"archive/zip"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/bench/awscount"
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
	Cores                   int    // runtime.NumCPU, which is nproc
	MemoryMB                int    // MemTotal
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
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				m.MemoryMB = kb / 1024
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

// CPUPerMessage is the median over repetitions of the CPU time process used per
// message completed in the window; false when it was not sampled.
func (e E2E) CPUPerMessage(process string) (time.Duration, bool) {
	var xs []float64
	for _, r := range e.Reps {
		if d, ok := r.CPU[process]; ok && r.Completed > 0 {
			xs = append(xs, float64(d)/float64(r.Completed))
		}
	}
	return time.Duration(Median(xs)), len(xs) > 0
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

// Who makes an AWS call.
const (
	CallerInbound  = "inbound function"
	CallerToken    = "inbound function, token check" // cached a minute per token and instance
	CallerDelivery = "delivery function"
	CallerHealth   = "delivery function, endpoint health check" // cached a minute per channel and instance
	CallerESM      = "event source mapping"
)

// PollBatches is delivery.Poll's default cap on batches run at once (PollConfig.Batches).
const PollBatches = 64

// ESMPollers is how many pollers the stand-in for the event source mapping runs in the
// counted runs: AWS starts an SQS mapping with five.
const ESMPollers = 5

// CallRow is one AWS operation's calls, by who makes them.
type CallRow struct {
	Caller string // CallerInbound, CallerToken, CallerDelivery or CallerESM
	Op     awscount.Op
	Stat   awscount.Stat
}

// CountedRun is a run whose AWS calls were counted, per accepted message.
type CountedRun struct {
	Concurrency int
	Messages    int // accepted in the run
	Calls       []CallRow
	Batches     float64 // mean records per delivery invocation
	Usage       Usage
	// InboundMean is the mean inbound Handle time, InboundAWS the part of it spent
	// waiting on AWS calls; DeliveryMean the mean delivery invocation.
	InboundMean, InboundAWS, DeliveryMean time.Duration
}

// PerMessage adds up a caller's calls per message, and the write units DynamoDB
// reported and those worked out from the items.
func (c CountedRun) PerMessage(caller string) (calls, wru, sizedWRU float64) {
	n := float64(max(c.Messages, 1))
	for _, r := range c.Calls {
		if r.Caller == caller {
			calls += float64(r.Stat.Calls) / n
			wru += r.Stat.WriteUnits / n
			sizedWRU += r.Stat.SizedWriteUnits / n
		}
	}
	return calls, wru, sizedWRU
}

// SlowBot is an open load at a fixed rate, on one system with one bot, repeated.
type SlowBot struct {
	System, Bot string
	Reps        []OpenResult
}

func (s SlowBot) median(f func(OpenResult) time.Duration) time.Duration {
	xs := make([]float64, len(s.Reps))
	for i, r := range s.Reps {
		xs[i] = float64(f(r))
	}
	return time.Duration(Median(xs))
}

// Problems adds up the failed POSTs and lost replies of every repetition.
func (s SlowBot) Problems() (sent, failed, lost int) {
	for _, r := range s.Reps {
		sent += r.Sent
		failed += r.Failed
		lost += r.Lost
	}
	return
}

// Report is everything `make bench` prints.
type Report struct {
	Date    time.Time
	Machine Machine
	Micro   []Micro
	Systems []System
	E2E     []E2E // by system, then concurrency
	Window  time.Duration
	Warmup  time.Duration
	Floor   string // the System name of the floor
	// CPUProcesses are the processes whose CPU time the end-to-end runs sampled, in
	// the order the table shows them.
	CPUProcesses []string
	Counted      []CountedRun
	// The slow-bot runs: Rate messages a second for SlowWindow over SlowConversations
	// conversations, each system with the echo bot and with an http bot taking SlowDelay.
	SlowBots                    []SlowBot
	SlowRate, SlowConversations int
	SlowWindow, SlowDelay       time.Duration
	Binaries                    []Binary
	Notes                       []string
}

// Targets of issue 9.
const (
	TargetFloorRatio  = 0.8
	TargetCalls       = 3.0
	TargetWRU         = 2.0
	TargetCost        = 3.25
	TargetSlowPOSTP99 = 50 * time.Millisecond
	SlowTargetSystem  = "local stack" // where the POST p99 target applies
	ComparedWithFloor = "emulators"   // the system whose ratio to the floor is the target
)

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

func fmtMsCPU(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

// Find returns the E2E of system at concurrency c.
func (r *Report) Find(system string, c int) (E2E, bool) {
	for _, e := range r.E2E {
		if e.System == system && e.Concurrency == c {
			return e, true
		}
	}
	return E2E{}, false
}

// Ratio is system's median throughput over the floor's at concurrency c.
func (r *Report) Ratio(system string, c int) (float64, bool) {
	e, ok1 := r.Find(system, c)
	f, ok2 := r.Find(r.Floor, c)
	if !ok1 || !ok2 || f.PerSecond() <= 0 || len(e.Reps) == 0 {
		return 0, false
	}
	return e.PerSecond() / f.PerSecond(), true
}

func (r *Report) concurrencies() []int {
	var cs []int
	for _, e := range r.E2E {
		if !slices.Contains(cs, e.Concurrency) {
			cs = append(cs, e.Concurrency)
		}
	}
	return cs
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Parley benchmarks\n\n")
	p("Generated by `make bench` on %s. Every number below was measured in that run; nothing is copied in.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	m := r.Machine
	p("**Machine:** %s, %d cores (`nproc`), %.1f GB memory, %s, %s; DynamoDB Local on %s, local-aws-sqs on Node %s. 1-minute load average %s when the end-to-end runs began (%s at the end, the run's own load). ",
		m.CPU, m.Cores, float64(m.MemoryMB)/1024, m.OS, m.Go, orUnknown(m.Java), orUnknown(m.Node), m.LoadBefore, m.LoadAfter)
	p("The load generator, the receiver, the system under test and the emulators all share these cores: compare rows with each other, not with AWS.\n\n")

	r.targets(p)

	if len(r.Micro) > 0 {
		p("## Handlers (`go test -bench`, median of %d runs)\n\n", maxRuns(r.Micro))
		p("| benchmark | time/op | allocs/op | bytes/op |\n|---|---:|---:|---:|\n")
		for _, mb := range r.Micro {
			p("| `%s` | %s | %.0f | %.0f |\n", mb.Name, fmtNs(mb.NsPerOp), mb.AllocsPerOp, mb.BytesPerOp)
		}
		p("\nDecodeInbound: decode and validate one body. InboundHandle: one accepted message through `inbound.Handler.Handle` on the embedded store and queue — the conditional write, the send of the turn, the JSON log line; no bot (window: messages waiting in the embedded queue). InboundReplay: the same message again. DeliveryHandle: `delivery.Handler.Handle` on a batch of turn jobs on the embedded store: the echo bot, the exchange written once, one signed POST each to a loopback receiver answering 200.\n\n")
	}

	p("## End to end (closed loop, median of %d runs of %s, each after %s of warm-up)\n\n", maxReps(r.E2E), r.Window, r.Warmup)
	p("Each of *c* clients has its own conversation and sends its next message as soon as the receiver got the reply to the previous one. Latency runs from the start of the POST to the receiver answering the bot's reply.\n\n")
	p("| system | c | messages/s | p50 | p99 | POST 200 p50 | vs floor |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Systems {
		for _, e := range r.E2E {
			if e.System != s.Name {
				continue
			}
			ratio := "–"
			if v, ok := r.Ratio(s.Name, e.Concurrency); ok && s.VsFloor {
				ratio = fmt.Sprintf("%.2f×", v)
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
	r.cpuTable(p)
	r.slowBots(p)
	r.calls(p)
	r.cost(p)

	p("## Lambda bootstraps\n\n| function | built for | size | zip | init p50 (host, %d runs) |\n|---|---|---:|---:|---:|\n", maxInit(r.Binaries))
	for _, bin := range r.Binaries {
		p("| %s | %s | %.2f MB | %.2f MB | %s |\n", bin.Function, bin.Arch, float64(bin.Bytes)/1e6, float64(bin.ZipBytes)/1e6, fmtDur(bin.InitP50))
	}
	p("\nSizes are of `make size`'s binaries (`-tags lambda.norpc -trimpath -ldflags \"-s -w\"`). Init is from process start to the first Runtime API `GET /runtime/invocation/next`, on a loopback Runtime API (`shared/testkit/runtimeapi`), with the same build flags for this machine's architecture; the delivery function's Secrets Manager read (one call per cold start in AWS) is not part of it here. Lambda's own cold start adds the sandbox and the download.\n")
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

// targets is the summary: each target of issue 9 with what this run measured.
func (r *Report) targets(p func(string, ...any)) {
	p("## Targets\n\n| target | measured | |\n|---|---|---|\n")
	for _, c := range r.concurrencies() {
		if v, ok := r.Ratio(ComparedWithFloor, c); ok {
			p("| end to end ≥ %.1f× the floor at c = %d (%s) | %.2f× | %s |\n", TargetFloorRatio, c, ComparedWithFloor, v, met(v >= TargetFloorRatio))
		}
	}
	for _, c := range r.Counted {
		in, inWRU, inSized := c.PerMessage(CallerInbound)
		out, outWRU, outSized := c.PerMessage(CallerDelivery)
		tok, _, _ := c.PerMessage(CallerToken)
		health, _, _ := c.PerMessage(CallerHealth)
		p("| ≤ %.0f AWS calls per text message with one reply, plus the caches (counted, c = %d) | %.3f: inbound %.3f + delivery %.3f (cached reads %.4f more) | %s |\n",
			TargetCalls, c.Concurrency, in+out, in, out, tok+health, met(in+out <= TargetCalls+1e-9))
		p("| ≤ %.0f WRU per message (c = %d) | %.3f reported by DynamoDB Local (%.3f worked out from the item sizes): inbound %.3f + delivery %.3f | %s |\n",
			TargetWRU, c.Concurrency, inWRU+outWRU, inSized+outSized, inWRU, outWRU, met(max(inWRU+outWRU, inSized+outSized) <= TargetWRU+1e-9))
		total := Total(Cost(c.Usage))
		p("| ≤ $%.2f per million messages, history on (c = %d, %.1f records per delivery invocation) | $%.2f | %s |\n",
			TargetCost, c.Concurrency, c.Batches, total, met(total <= TargetCost))
	}
	for _, s := range r.SlowBots {
		if s.System == SlowTargetSystem && s.Bot != "echo" {
			p99 := s.median(func(o OpenResult) time.Duration { return o.PostP99 })
			p("| POST p99 < %s with a bot taking %s (%s) | %s (p50 %s) | %s |\n", fmtDur(TargetSlowPOSTP99), fmtDur(r.SlowDelay), s.System,
				fmtDur(p99), fmtDur(s.median(func(o OpenResult) time.Duration { return o.PostP50 })), met(p99 < TargetSlowPOSTP99))
		}
	}
	p("\n")
}

// cpuTable shows where the CPU time went, per message, in the end-to-end runs.
func (r *Report) cpuTable(p func(string, ...any)) {
	if len(r.CPUProcesses) == 0 {
		return
	}
	p("\n### Where the time goes: CPU per message\n\n")
	p("CPU time (user + system, from `/proc/<pid>/stat`) each process used during the window, divided by the messages completed in it; median of the runs, in milliseconds. On %d cores the machine has %d ms of CPU a second, so a system whose row adds up to *t* ms cannot pass %d000/*t* messages a second however it is built.\n\n",
		r.Machine.Cores, 1000*r.Machine.Cores, r.Machine.Cores)
	p("| system | c |")
	for _, name := range r.CPUProcesses {
		p(" %s |", name)
	}
	p(" total | CPU-bound ceiling |\n|---|---:|")
	for range r.CPUProcesses {
		p("---:|")
	}
	p("---:|---:|\n")
	for _, s := range r.Systems {
		for _, e := range r.E2E {
			if e.System != s.Name {
				continue
			}
			p("| %s | %d |", s.Name, e.Concurrency)
			var total time.Duration
			for _, name := range r.CPUProcesses {
				d, ok := e.CPUPerMessage(name)
				if !ok {
					p(" – |")
					continue
				}
				total += d
				p(" %s |", fmtMsCPU(d))
			}
			ceiling := "–"
			if total > 0 {
				ceiling = fmt.Sprintf("%.0f/s", float64(r.Machine.Cores)*float64(time.Second)/float64(total))
			}
			p(" %s | %s |\n", fmtMsCPU(total), ceiling)
		}
	}
	p("\n")
}

// slowBots shows what a caller waits for the POST while the bot is slow.
func (r *Report) slowBots(p func(string, ...any)) {
	if len(r.SlowBots) == 0 {
		return
	}
	p("\n## The POST with a slow bot (open loop, median of %d runs)\n\n", maxSlowReps(r.SlowBots))
	p("%d messages a second for %s over %d conversations (each gets a message every %s, longer than the bot takes), whatever the replies do; the same load with the echo bot and with an http bot (Rasa REST, `PARLEY_BOT=http`) that answers after %s. The POST answers once the message is stored and its turn queued: it must not wait for the bot.\n\n",
		r.SlowRate, r.SlowWindow, r.SlowConversations, fmtDur(time.Duration(r.SlowConversations)*time.Second/time.Duration(max(r.SlowRate, 1))), fmtDur(r.SlowDelay))
	p("| system | bot | POSTs | POST p50 | POST p99 | POST max | reply p50 | reply p99 | failed / lost |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.SlowBots {
		sent, failed, lost := s.Problems()
		p("| %s | %s | %d | %s | %s | %s | %s | %s | %d / %d |\n", s.System, s.Bot, sent,
			fmtDur(s.median(func(o OpenResult) time.Duration { return o.PostP50 })),
			fmtDur(s.median(func(o OpenResult) time.Duration { return o.PostP99 })),
			fmtDur(s.median(func(o OpenResult) time.Duration { return o.PostMax })),
			fmtDur(s.median(func(o OpenResult) time.Duration { return o.ReplyP50 })),
			fmtDur(s.median(func(o OpenResult) time.Duration { return o.ReplyP99 })), failed, lost)
	}
	p("\nThe reply latency runs from the start of the POST to the reply's arrival: the bot's %s and the delivery. ", fmtDur(r.SlowDelay))
	if need := float64(r.SlowRate) * r.SlowDelay.Seconds(); need > float64(PollBatches) {
		p("On both stacks the reply's p99 is longer than the bot by more than the delivery takes: `delivery.Poll`, which stands in for the event source mapping, runs at most %d batches at once (`PollConfig.Batches`), and at %d messages a second a receive finds one or two, so %s turns need about %.0f batches at once; the rest wait for a slot. In AWS the event source mapping's maximum concurrency, a deploy setting, plays this part.",
			PollBatches, r.SlowRate, fmtDur(r.SlowDelay), need)
	}
	p("\n\n")
}

// calls shows the AWS calls per message, by who makes them.
func (r *Report) calls(p func(string, ...any)) {
	for _, c := range r.Counted {
		p("## AWS calls per accepted message (c = %d)\n\n", c.Concurrency)
		p("Counted by `bench/awscount` on the SDK clients of the real adapters, wired as `functions/inbound` and `functions/delivery` wire them (the echo bot: one reply per message; signed webhooks), over %d messages in a closed loop at concurrency %d on DynamoDB Local and local-aws-sqs; a stand-in for the event source mapping (%d pollers) invokes the delivery handler with what it receives. Calls the mapping makes in AWS are listed apart: the functions do not make them.\n\n",
			c.Messages, c.Concurrency, ESMPollers)
		p("| made by | operation | calls/msg | requests/msg | WRU/msg reported | WRU/msg from item sizes | RRU/msg | mean time/call |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		n := float64(max(c.Messages, 1))
		for _, row := range c.Calls {
			var mean time.Duration
			if row.Stat.Calls > 0 {
				mean = row.Stat.Time / time.Duration(row.Stat.Calls)
			}
			units := func(v float64) string {
				if v == 0 {
					return ""
				}
				return fmt.Sprintf("%.3f", v/n)
			}
			p("| %s | %s | %.3f | %.3f | %s | %s | %s | %s |\n", row.Caller, row.Op, float64(row.Stat.Calls)/n, float64(row.Stat.Attempts)/n,
				units(row.Stat.WriteUnits), units(row.Stat.SizedWriteUnits), units(row.Stat.ReadUnits), fmtDur(mean))
		}
		in, inWRU, inSized := c.PerMessage(CallerInbound)
		out, outWRU, outSized := c.PerMessage(CallerDelivery)
		tok, _, _ := c.PerMessage(CallerToken)
		health, _, _ := c.PerMessage(CallerHealth)
		p("| **inbound function** | | **%.3f** | | **%.3f** | %.3f | | |\n", in, inWRU, inSized)
		p("| **token check** (cached) | | %.4f | | | | | |\n", tok)
		p("| **delivery function** | | **%.3f** | | **%.3f** | %.3f | | |\n", out, outWRU, outSized)
		p("| **endpoint health check** (cached) | | %.4f | | | | | |\n", health)
		p("| **both functions**, without the cached reads | | **%.3f** | | **%.3f** | %.3f | | |\n", in+out, inWRU+outWRU, inSized+outSized)
		p("\nThe token check (inbound) and the endpoint health check (delivery) are GetItems on clients of their own, each cached a minute per instance: the issue's budget of calls is \"plus the token cache\", so the totals leave them out and show them apart. ReceiveMessage's time includes its long-poll wait for a message. WRU reported: the ConsumedCapacity DynamoDB Local returns (`ReturnConsumedCapacity TOTAL`, asked by the counter). WRU from item sizes: worked out by `awscount.ItemSize` from the items each PutItem carries, by DynamoDB's documented rules (one unit per KB begun), as a check that does not trust the emulator.")
		if c.InboundMean > 0 {
			p(" One inbound `Handle` took %s on average in this run, %s of it (%.0f%%) waiting on the calls above; one delivery invocation took %s.",
				fmtDur(c.InboundMean), fmtDur(c.InboundAWS), 100*float64(c.InboundAWS)/float64(c.InboundMean), fmtDur(c.DeliveryMean))
		}
		p(" The delivery function got batches of %.1f records on average here. In AWS the event source mapping receives up to 10 records per call and deletes them in batches; it also long-polls while the queue is empty (a fixed cost, not per message).\n\n", c.Batches)
	}
}

// cost shows the cost per million messages of each counted run, and how it moves with
// the batch size the event source mapping gets.
func (r *Report) cost(p func(string, ...any)) {
	if len(r.Counted) == 0 {
		return
	}
	p("## Cost per million messages (us-east-1 list prices, history on)\n\n")
	p("| item |")
	for _, c := range r.Counted {
		p(" per message (c = %d) | $/M (c = %d) |", c.Concurrency, c.Concurrency)
	}
	p("\n|---|")
	for range r.Counted {
		p("---:|---:|")
	}
	p("\n")
	all := make([][]Line, len(r.Counted))
	for i, c := range r.Counted {
		all[i] = Cost(c.Usage)
	}
	for li := range all[0] {
		p("| %s |", all[0][li].Item)
		for i := range r.Counted {
			l := all[i][li]
			p(" %.4g %s | %.2f |", l.PerMsg, l.Unit, l.Dollars)
		}
		p("\n")
	}
	p("| **total** |")
	for i := range r.Counted {
		p(" | **%.2f** |", Total(all[i]))
	}
	p("\n\nHistory is the exchange the delivery function writes once per turn (the user message and the bot's replies, one item): there is no separate history write. Prices (in `bench/cost.go`): HTTP API $%.2f/M requests; Lambda arm64 $%.10f/GB-s and $%.2f/M requests; DynamoDB on-demand $%.3f/M WRU, $%.3f/M RRU; SQS FIFO $%.2f/M requests. Free tiers ignored. Lambda duration lines use the mean billed (rounded up to 1 ms) `Handle` time measured on the emulators, at the deployed %d MB of both functions; a real DynamoDB write and a real receiver take longer than the loopback ones, so in AWS those two lines are larger. Lambda duration lines are per function: the inbound one's billed time; the delivery one's per invocation, shared by the batch.\n\n",
		Prices.HTTPAPI.PerM, Prices.LambdaARMGBSecond, Prices.LambdaRequests.PerM, Prices.DynamoWRU.PerM, Prices.DynamoRRU.PerM, Prices.SQSFIFO.PerM, DeployedMemoryMB)
	// What the batch size does: the per-batch lines scale with 1/batch.
	p("The lines paid per delivery invocation — its Lambda request and duration, and the mapping's ReceiveMessage and DeleteMessageBatch — are divided by the batch size, so the total depends on how full the batches are, which the traffic decides: a quiet queue hands the function one record at a time. Each run's usage at other batch sizes:\n\n")
	p("| records per delivery invocation |")
	for _, c := range r.Counted {
		p(" $/M (usage of c = %d) |", c.Concurrency)
	}
	p("\n|---:|")
	for range r.Counted {
		p("---:|")
	}
	p("\n")
	for _, batch := range []float64{1, 2, 5, 10} {
		p("| %.0f |", batch)
		for _, c := range r.Counted {
			p(" %.2f |", Total(Cost(AtBatch(c.Usage, c.Batches, batch))))
		}
		p("\n")
	}
	p("\n")
	for _, c := range r.Counted {
		fixed := Total(Cost(AtBatch(c.Usage, c.Batches, math.Inf(1))))
		perBatch := (Total(Cost(c.Usage)) - fixed) * c.Batches
		p("- c = %d: $%.2f is paid per message whatever the batching (API Gateway, the inbound Lambda request and its %s billed, 2 WRU, the SendMessage); the rest is $%.2f per million delivery invocations, $%.2f per million messages at the %.1f records per invocation measured. ",
			c.Concurrency, fixed, fmtMs(c.Usage.InboundBilled), perBatch, Total(Cost(c.Usage))-fixed, c.Batches)
		if fixed < TargetCost {
			p("The target of $%.2f holds from %.1f records per invocation.\n", TargetCost, perBatch/(TargetCost-fixed))
		} else {
			p("That fixed part alone is over the target of $%.2f.\n", TargetCost)
		}
	}
	p("\nThe inbound duration line is the one the emulators inflate most: at c = 64 DynamoDB Local and local-aws-sqs share two cores with everything else and each call waits its turn (see the mean time per call above).\n\n")
}

// AtBatch is u, measured at batches of measured records per delivery invocation, with
// the per-invocation lines scaled to batches of batch records. The billed time of one
// invocation is kept: a fuller batch takes longer, so this flatters large batches a
// little.
func AtBatch(u Usage, measured, batch float64) Usage {
	if measured <= 0 || batch <= 0 {
		return u
	}
	if math.IsInf(batch, 1) {
		u.DeliveryInvocations, u.ESMRequests = 0, 0
		return u
	}
	k := measured / batch
	u.DeliveryInvocations *= k
	u.ESMRequests *= k
	return u
}

func maxSlowReps(ss []SlowBot) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s.Reps))
	}
	return n
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
	rank := map[string]int{CallerInbound: 0, CallerToken: 1, CallerDelivery: 2, CallerHealth: 3, CallerESM: 4}
	slices.SortStableFunc(rows, func(a, b CallRow) int {
		if d := rank[a.Caller] - rank[b.Caller]; d != 0 {
			return d
		}
		return strings.Compare(a.Op.String(), b.Op.String())
	})
}
