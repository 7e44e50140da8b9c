//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/testkit/emulator"
	"github.com/parley-chat/parley/shared/testkit/proc"
	"github.com/parley-chat/parley/shared/testkit/runtimeapi"
)

// envInt reads a positive whole number from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration", name, v)
	}
	return d
}

// TestReport is `make bench`: it measures everything and writes the report to the
// file named by PARLEY_BENCH. It needs the microbenchmark output (PARLEY_BENCH_MICRO)
// and the built bootstraps (PARLEY_BENCH_BUILD, `make build`'s .build), which the make
// target provides. It builds only with the bench tag, so `make test` neither runs nor skips it.
func TestReport(t *testing.T) {
	out := os.Getenv("PARLEY_BENCH")
	if out == "" {
		t.Fatal("PARLEY_BENCH is not set: run `make bench`")
	}
	ctx := context.Background()
	r := &Report{Date: time.Now(), Machine: ThisMachine(), Floor: "floor",
		Window: envDuration(t, "PARLEY_BENCH_WINDOW", 5*time.Second), Warmup: envDuration(t, "PARLEY_BENCH_WARMUP", time.Second),
		SlowRate: envInt(t, "PARLEY_BENCH_SLOW_RATE", 50), SlowWindow: envDuration(t, "PARLEY_BENCH_SLOW_WINDOW", 5*time.Second),
		SlowDelay: 2 * time.Second}
	r.SlowConversations = r.SlowRate * 4 // each conversation gets a message every 4 s: its turns never queue
	reps := envInt(t, "PARLEY_BENCH_REPS", 5)

	microFile := os.Getenv("PARLEY_BENCH_MICRO")
	if microFile == "" {
		t.Fatal("PARLEY_BENCH_MICRO is not set: the file holding `go test -bench` output")
	}
	f, err := os.Open(microFile)
	if err != nil {
		t.Fatal(err)
	}
	r.Micro, err = ParseMicro(f)
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", microFile, err)
	}

	buildDir := os.Getenv("PARLEY_BENCH_BUILD")
	if buildDir == "" {
		t.Fatal("PARLEY_BENCH_BUILD is not set: the folder of `make build` (.build)")
	}
	r.Binaries = bootstraps(t, buildDir)

	ddb, sq := emulator.DynamoDB(t), emulator.SQS(t)
	bin := t.TempDir()
	parley, floorBin := filepath.Join(bin, "parley"), filepath.Join(bin, "floor")
	for pkg, out := range map[string]string{"./cmd/parley": parley, "./bench/floor": floorBin} {
		if err := proc.GoBuild(ctx, "", pkg, out, []string{"-trimpath"}); err != nil {
			t.Fatal(err)
		}
	}
	logs := os.Getenv("PARLEY_BENCH_LOGS")
	if logs == "" {
		logs = t.TempDir()
	} else if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().UnixNano()
	resources := map[string]Resources{}
	for _, name := range []string{"aws", "floor", "count16", "count64"} {
		res, err := CreateResources(ctx, ddb.DynamoDBClient(), sq.SQSClient(), fmt.Sprintf("bench-%s-%d", name, stamp), 30)
		if err != nil {
			t.Fatal(err)
		}
		resources[name] = res
	}
	receiver, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer receiver.Close()
	sqsProxy, err := NewProxy(sq.URL)
	if err != nil {
		t.Fatal(err)
	}
	sqsProxy.FixLongPoll = true
	defer sqsProxy.Close()
	r.Notes = append(r.Notes, "Every SQS call on the emulators goes through `bench.Proxy`, which makes local-aws-sqs answer a long poll as soon as it has a message, as SQS does (local-aws-sqs 2.0.2 waits until it has all MaxNumberOfMessages or the full WaitTimeSeconds has passed, which put a 1-second floor under every latency). Both Parley and the floor go through it. It does not add the FIFO group lock local-aws-sqs lacks: in a closed loop each conversation has one message in flight at a time, so there is nothing to lock.")

	// The processes whose CPU time is sampled: the system under test is added per run.
	emulators := Children(map[string]string{"DynamoDB Local": "DynamoDBLocal.jar", "local-aws-sqs": "local-aws-sqs"})
	const benchProc = "bench (load, receiver, proxy)"
	const sut = "system under test"
	r.CPUProcesses = []string{sut, "DynamoDB Local", "local-aws-sqs", benchProc}
	if len(emulators) != 2 {
		r.Notes = append(r.Notes, fmt.Sprintf("The emulators' processes were not all found (%v): their CPU columns are incomplete.", emulators))
	}
	cpuOf := func(system int) func() CPUSample {
		pids := map[string]int{sut: system, benchProc: os.Getpid()}
		for k, v := range emulators {
			pids[k] = v
		}
		return func() CPUSample { return SampleCPU(pids) }
	}

	const tok = "prly_bench-token"
	awsEnv := EmulatorEnv(ddb.URL, sqsProxy.URL)
	parleyEnv := func(port string, extra ...string) []string {
		return BaseEnv(append([]string{port, "PARLEY_TOKEN=" + tok, "PARLEY_RESPONSE_ENDPOINT_URL=" + receiver.URL,
			"PARLEY_SIGNING_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, extra...)...)
	}
	// Each process gets queues of its own: a process stopped in the middle of a long
	// poll leaves it running in the emulator, which then hands the next message to no
	// one and shows it again only after the visibility timeout.
	queues := 0
	freshQueues := func(name string) Resources {
		queues++
		res := resources[name]
		var err error
		res.QueueURL, res.DeadLetterQueueURL, err = CreateQueues(ctx, sq.SQSClient(), fmt.Sprintf("bench-%s-%d-q%d", name, stamp, queues), 30)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	type system struct {
		System
		bin  string
		args []string
		env  func(port string, extra ...string) []string
	}
	systems := []system{
		{System{"local stack", "`parley dev`: the embedded store and queue, `delivery.Poll`, echo bot, its text log to a file. Not compared with the floor: it has no network hop to a store or queue.", false},
			parley, []string{"dev"}, func(port string, extra ...string) []string { return parleyEnv(port, extra...) }},
		{System{"emulators", "`parley dev` on DynamoDB Local and local-aws-sqs (PARLEY_TABLE_NAME/QUEUE_URL set): the adapters the functions use; `delivery.Poll` (one receive loop, up to 64 batches at once) in place of the event source mapping; echo bot; signed webhooks; its text log to a file.", true},
			parley, []string{"dev"}, func(port string, extra ...string) []string {
				return parleyEnv(port, append(append(extra, awsEnv...), freshQueues("aws").Env()...)...)
			}},
		{System{"floor", "`bench/floor` on the same emulators: per message one conditional PutItem and one SendMessage; a poller shaped like `delivery.Poll`, and per turn one conditional PutItem of the exchange and one POST, one DeleteMessageBatch per batch. No validation, bot, signing, retry bookkeeping or logging.", false},
			floorBin, nil, func(port string, _ ...string) []string {
				res := freshQueues("floor")
				return BaseEnv(append(awsEnv, port, "FLOOR_TOKEN="+tok, "FLOOR_TABLE="+res.Table,
					"FLOOR_QUEUE_URL="+res.QueueURL, "FLOOR_RESPONSE_URL="+receiver.URL)...)
			}},
	}
	for _, s := range systems {
		r.Systems = append(r.Systems, s.System)
		for _, c := range []int{1, 16, 64} {
			r.E2E = append(r.E2E, E2E{System: s.Name, Concurrency: c})
		}
	}
	start := func(s system, extra ...string) (*proc.Proc, string) {
		port, err := proc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr, portEnv := Port(port)
		p, err := proc.Start(proc.Spec{Name: s.Name, Bin: s.bin, Args: s.args, Env: s.env(portEnv, extra...),
			Log: filepath.Join(logs, strings.ReplaceAll(s.Name, " ", "-")+".log")})
		if err == nil {
			t.Logf("started %s (pid %d) on %s", s.Name, p.Pid(), addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = p.WaitHTTP(wctx, "http://"+addr+"/")
		cancel()
		if err != nil {
			p.Kill()
			t.Fatal(err)
		}
		return p, "http://" + addr + "/"
	}
	r.Machine.LoadBefore = LoadAverage()
	// A first pass that is not recorded warms up the emulators (DynamoDB Local's JIT)
	// and the page cache. Then the repetitions are interleaved: each runs every system
	// at every concurrency, so a noisy minute on the machine falls on all of them alike.
	for rep := -1; rep < reps; rep++ {
		for _, c := range []int{1, 16, 64} {
			for _, s := range systems {
				if rep < 0 && c != 16 {
					continue
				}
				p, url := start(s)
				res := Load{URL: url, Token: tok, Receiver: receiver, Concurrency: c, CPU: cpuOf(p.Pid()),
					Warmup: r.Warmup, Duration: r.Window, RunID: fmt.Sprintf("r%d-%s-c%d-%d", rep+1, strings.ReplaceAll(s.Name, " ", ""), c, stamp)}.Run(ctx)
				p.Stop(15 * time.Second)
				if rep < 0 {
					t.Logf("warm-up %-12s c=%-3d %7.0f msg/s (not recorded)", s.Name, c, res.PerSecond)
					continue
				}
				t.Logf("rep %d %-12s c=%-3d %7.0f msg/s  p50 %-9s p99 %-9s POST p50 %-9s failed %d lost %d %s cpu %v",
					rep+1, s.Name, c, res.PerSecond, fmtDur(res.P50), fmtDur(res.P99), fmtDur(res.PostP50), res.Failed, res.Lost, res.FirstError, res.CPU)
				for i := range r.E2E {
					if r.E2E[i].System == s.Name && r.E2E[i].Concurrency == c {
						r.E2E[i].Reps = append(r.E2E[i].Reps, res)
					}
				}
			}
		}
	}

	// The POST with a slow bot: an http bot (Rasa REST) that answers after SlowDelay.
	rasa := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var in struct {
			Sender string `json:"sender"`
		}
		_ = json.NewDecoder(req.Body).Decode(&in)
		select {
		case <-time.After(r.SlowDelay):
		case <-req.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]map[string]string{{"recipient_id": in.Sender, "text": "Your order ships today."}})
	}))
	defer rasa.Close()
	for _, s := range systems[:2] {
		for _, b := range []struct {
			name string
			env  []string
		}{
			{"echo", nil},
			{"http, " + fmtDur(r.SlowDelay), []string{"PARLEY_BOT=http", "PARLEY_HTTP_BOT_URL=" + rasa.URL, "PARLEY_BOT_TIMEOUT=10s"}},
		} {
			sb := SlowBot{System: s.Name, Bot: b.name}
			p, url := start(s, b.env...)
			for rep := 0; rep < reps; rep++ {
				res := OpenLoad{URL: url, Token: tok, Receiver: receiver, Rate: r.SlowRate, Duration: r.SlowWindow, Conversations: r.SlowConversations,
					RunID: fmt.Sprintf("slow%d-%s-%s-%d", rep, strings.ReplaceAll(s.Name, " ", ""), b.name[:4], stamp)}.Run(ctx)
				t.Logf("slow bot %-12s %-10s rep %d: %d POSTs, p50 %s p99 %s max %s; reply p50 %s p99 %s; failed %d lost %d %s",
					s.Name, b.name, rep+1, res.Sent, fmtDur(res.PostP50), fmtDur(res.PostP99), fmtDur(res.PostMax), fmtDur(res.ReplyP50), fmtDur(res.ReplyP99), res.Failed, res.Lost, res.FirstError)
				sb.Reps = append(sb.Reps, res)
			}
			p.Stop(15 * time.Second)
			r.SlowBots = append(r.SlowBots, sb)
		}
	}

	for _, c := range []int{16, 64} {
		counted, err := countCalls(ctx, ddb.URL, sqsProxy.URL, resources[fmt.Sprintf("count%d", c)], c, r.Window)
		if err != nil {
			t.Fatal(err)
		}
		r.Counted = append(r.Counted, counted.CountedRun)
		t.Logf("counted run c=%d: %d messages, inbound Handle p50 %s, delivery invocation p50 %s, %.1f records per batch",
			c, counted.Messages, fmtDur(Percentile(counted.InboundDurs, 50)), fmtDur(Percentile(counted.DeliveryBatches, 50)), counted.Batches)
		for _, row := range counted.Calls {
			if row.Caller == CallerToken {
				r.Notes = append(r.Notes, fmt.Sprintf("The token check (c = %d) made %d %s calls in the counted run: the cache is empty at the start and concurrent first requests may each miss it. A Lambda instance serves one request at a time, so in AWS it is one read per token, instance and minute.", c, row.Stat.Calls, row.Op))
			}
		}
	}
	if stray := receiver.Stray(); stray > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("The receiver got %d deliveries nobody was waiting for (redeliveries, or replies after a client gave up).", stray))
	}

	r.Machine.LoadAfter = LoadAverage()
	md := r.Markdown()
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println(md)
	for _, e := range r.E2E {
		if failed, lost, first := e.Problems(); failed+lost > 0 {
			t.Errorf("%s at c=%d: %d POSTs failed, %d replies lost: %s", e.System, e.Concurrency, failed, lost, first)
		}
	}
	for _, s := range r.SlowBots {
		if _, failed, lost := s.Problems(); failed+lost > 0 {
			t.Errorf("slow bot %s %s: %d POSTs failed, %d replies lost", s.System, s.Bot, failed, lost)
		}
	}
}

// bootstraps reads the size of `make build`'s bootstraps and measures the init time of
// the same code built for this machine: process start to the first Runtime API next.
func bootstraps(t *testing.T, buildDir string) []Binary {
	root, err := proc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	runs := envInt(t, "PARLEY_BENCH_INIT_RUNS", 20)
	env := map[string][]string{
		"inbound": {"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
			"PARLEY_TABLE_NAME=bench", "PARLEY_QUEUE_URL=http://127.0.0.1:9/queue/bench.fifo", "AWS_LAMBDA_FUNCTION_NAME=inbound"},
		"delivery": {"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
			"PARLEY_TABLE_NAME=bench", "PARLEY_QUEUE_URL=http://127.0.0.1:9/queue/bench.fifo",
			"PARLEY_DEAD_LETTER_QUEUE_URL=http://127.0.0.1:9/queue/bench-dlq.fifo",
			"PARLEY_RESPONSE_ENDPOINT_URL=http://127.0.0.1:9/hook", "AWS_LAMBDA_FUNCTION_NAME=delivery"},
	}
	var out []Binary
	for _, fn := range []string{"inbound", "delivery"} {
		b, err := InspectBinary(fn, filepath.Join(buildDir, fn, "bootstrap"))
		if err != nil {
			t.Fatalf("%v (run `make build` first)", err)
		}
		host, err := runtimeapi.Build(context.Background(), filepath.Join(root, "functions", fn), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var inits []time.Duration
		for range runs {
			f, err := runtimeapi.Run(host, env[fn], runtimeapi.Config{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			d, err := f.WaitReady(ctx)
			cancel()
			f.Stop()
			if err != nil {
				t.Fatalf("%s: %v", fn, err)
			}
			inits = append(inits, d)
		}
		b.InitP50, b.InitRuns = MedianDuration(inits), len(inits)
		t.Logf("%s: %s, init p50 %s (min %s, max %s)", fn, b.Arch, fmtDur(b.InitP50), fmtDur(Percentile(inits, 1)), fmtDur(Percentile(inits, 100)))
		out = append(out, b)
	}
	return out
}
