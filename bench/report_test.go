//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/shared/emulator"
	"github.com/parley-chat/parley/shared/runtimeapi"
)

func TestMain(m *testing.M) {
	code := m.Run()
	emulator.StopAll()
	os.Exit(code)
}

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
		Window: envDuration(t, "PARLEY_BENCH_WINDOW", 5*time.Second), Warmup: envDuration(t, "PARLEY_BENCH_WARMUP", time.Second)}
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
		if err := GoBuild(ctx, pkg, out); err != nil {
			t.Fatal(err)
		}
	}
	logs := t.TempDir()
	stamp := time.Now().UnixNano()
	resources := map[string]Resources{}
	for _, name := range []string{"aws", "floor", "count"} {
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
	r.Notes = append(r.Notes, "Every SQS call on the emulators goes through `bench.Proxy`, which makes local-aws-sqs answer a long poll as soon as it has a message, as SQS does (local-aws-sqs 2.0.2 waits until it has all MaxNumberOfMessages or the full WaitTimeSeconds has passed, which put a 1-second floor under every latency). Both Parley and the floor go through it.")
	const tok = "prly_bench-token"
	awsEnv := EmulatorEnv(ddb.URL, sqsProxy.URL)
	parleyEnv := func(port string, extra ...string) []string {
		return BaseEnv(append([]string{port, "PARLEY_TOKEN=" + tok, "PARLEY_RESPONSE_ENDPOINT_URL=" + receiver.URL,
			"PARLEY_SIGNING_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, extra...)...)
	}
	type system struct {
		System
		bin  string
		args []string
		env  func(port string) []string
	}
	systems := []system{
		{System{"local stack", "`parley dev`: the embedded store and queue, 4 delivery workers, echo bot, its text log to a file. Not compared with the floor: it has no network hop to a store or queue.", false},
			parley, []string{"dev"}, func(port string) []string { return parleyEnv(port) }},
		{System{"emulators", "`parley dev` on DynamoDB Local and local-aws-sqs (PARLEY_TABLE_NAME/QUEUE_URL set): the adapters the functions use, 4 delivery workers (`delivery.Poll`), echo bot.", true},
			parley, []string{"dev"}, func(port string) []string {
				return parleyEnv(port, append(awsEnv, resources["aws"].Env()...)...)
			}},
		{System{"floor", "`bench/floor` on the same emulators: one conditional PutItem and one SendMessage per message; 4 pollers receiving up to 10, one POST each, one DeleteMessageBatch per batch. No validation, bot, completion, history, signing or logging.", false},
			floorBin, nil, func(port string) []string {
				return BaseEnv(append(awsEnv, port, "FLOOR_TOKEN="+tok, "FLOOR_TABLE="+resources["floor"].Table,
					"FLOOR_QUEUE_URL="+resources["floor"].QueueURL, "FLOOR_RESPONSE_URL="+receiver.URL)...)
			}},
	}
	for _, s := range systems {
		r.Systems = append(r.Systems, s.System)
		for _, c := range []int{1, 16, 64} {
			r.E2E = append(r.E2E, E2E{System: s.Name, Concurrency: c})
		}
	}
	// A first pass that is not recorded warms up the emulators (DynamoDB Local's JIT)
	// and the page cache. Then the repetitions are interleaved: each runs every system
	// at every concurrency, so a noisy minute on the machine falls on all of them alike.
	for rep := -1; rep < reps; rep++ {
		for _, c := range []int{1, 16, 64} {
			for _, s := range systems {
				if rep < 0 && c != 16 {
					continue
				}
				port, err := FreePort()
				if err != nil {
					t.Fatal(err)
				}
				addr, portEnv := Port(port)
				p, err := StartProc(s.Name, s.bin, s.args, s.env(portEnv), filepath.Join(logs, strings.ReplaceAll(s.Name, " ", "-")+".log"))
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
				res := Load{URL: "http://" + addr + "/", Token: tok, Receiver: receiver, Concurrency: c,
					Warmup: r.Warmup, Duration: r.Window, RunID: fmt.Sprintf("r%d-%s-c%d-%d", rep+1, strings.ReplaceAll(s.Name, " ", ""), c, stamp)}.Run(ctx)
				p.Stop(15 * time.Second)
				if rep < 0 {
					t.Logf("warm-up %-12s c=%-3d %7.0f msg/s (not recorded)", s.Name, c, res.PerSecond)
					continue
				}
				t.Logf("rep %d %-12s c=%-3d %7.0f msg/s  p50 %-9s p99 %-9s POST p50 %-9s failed %d lost %d %s",
					rep+1, s.Name, c, res.PerSecond, fmtDur(res.P50), fmtDur(res.P99), fmtDur(res.PostP50), res.Failed, res.Lost, res.FirstError)
				for i := range r.E2E {
					if r.E2E[i].System == s.Name && r.E2E[i].Concurrency == c {
						r.E2E[i].Reps = append(r.E2E[i].Reps, res)
					}
				}
			}
		}
	}

	counted, err := countCalls(ctx, ddb.URL, sqsProxy.URL, resources["count"], 16, r.Window)
	if err != nil {
		t.Fatal(err)
	}
	r.Messages, r.Calls, r.Usage, r.Batches = counted.Messages, counted.Calls, counted.Usage, counted.Batches
	r.InboundMean = meanDuration(counted.InboundDurs)
	for _, c := range counted.Calls {
		if c.Caller == "inbound function" {
			r.InboundAWS += c.Stat.Time / time.Duration(max(counted.Messages, 1))
		}
	}
	t.Logf("counted run: %d messages, inbound Handle p50 %s, delivery batch p50 %s, %.1f records per batch",
		counted.Messages, fmtDur(Percentile(counted.InboundDurs, 50)), fmtDur(Percentile(counted.DeliveryBatches, 50)), counted.Batches)
	for _, c := range counted.Calls {
		if c.Op.Operation == "GetItem" && c.Caller == "inbound function" {
			r.Notes = append(r.Notes, fmt.Sprintf("DynamoDB.GetItem is the token check, cached for a minute per token: the counted run made %d, because its %d concurrent first requests all missed the empty cache at once. A Lambda instance serves one request at a time, so in AWS it is one read per token, instance and minute.", c.Stat.Calls, 16))
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
}

// bootstraps reads the size of `make build`'s bootstraps and measures the init time of
// the same code built for this machine: process start to the first Runtime API next.
func bootstraps(t *testing.T, buildDir string) []Binary {
	root, err := ModuleRoot()
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
