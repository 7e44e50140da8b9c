//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parley-chat/parley/bench"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/testkit/proc"
	"github.com/parley-chat/parley/shared/token"
	"github.com/parley-chat/parley/shared/webhook"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestSecurity: a full run — the split local stack as two processes with a static
// token, and the inbound and delivery handlers wired as the Lambdas wire them with a
// token created by `parley token create` — with good and bad traffic (replays, a
// reused id, wrong and missing tokens, malformed, invalid and oversized bodies),
// receivers that fail and reject. Then: no token, signing secret or message text in
// any log line; the table holds only the token's SHA-256; every delivery passes an
// independent Standard Webhooks verifier with the right secret and fails it with a
// wrong secret or anything tampered.
func TestSecurity(t *testing.T) {
	scenario(t)
	ctx := context.Background()
	parts := onEmulators(t, "security", 5)
	bin := parleyCLI(t)
	tag := randomHex(6)
	staticToken := "prly_static-" + randomHex(16)
	secretKey := make([]byte, 32)
	_, _ = rand.Read(secretKey)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(secretKey)
	wrongToken := "prly_wrong-" + randomHex(16)
	text := func(what string) string { return "confidential-" + tag + "-" + what }

	// A token created by the CLI, as an operator would.
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "token", "create", "--name", "security-check")
	cmd.Env = bench.BaseEnv(parts.Env()...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("parley token create: %v\n%s", err, errb.String())
	}
	tableToken := strings.Fields(out.String())[0]
	if !strings.HasPrefix(tableToken, token.Prefix) {
		t.Fatalf("token create printed %q, want the token first", out.String())
	}

	// Receivers: the first attempt of each message fails with 503, then 200; a
	// message whose text says reject is refused for good (404) and dead-lettered.
	var seen seenSet
	rcv := newReceiver(t)
	rcv.decide = func(d *arrival) (int, string, time.Duration) {
		if bytes.Contains(d.Body, []byte("reject")) {
			return 404, "", 0
		}
		if seen.first(d.ID) {
			return 503, "", 0
		}
		return 200, "", 0
	}

	// 1. The split local stack, two processes.
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr, portEnv := bench.Port(port)
	common := append(bench.BaseEnv(parts.Env()...), "PARLEY_TOKEN="+staticToken, "PARLEY_SIGNING_SECRET="+secret,
		"PARLEY_RESPONSE_ENDPOINT_URL="+rcv.URL, "PARLEY_RETRY_MIN_DELAY=1s", "PARLEY_RETRY_MAX_DELAY=1s", "PARLEY_MAX_ATTEMPTS=3")
	logs := logDir(t)
	in := &roleProc{role: "inbound", bin: bin, log: filepath.Join(logs, "inbound.log"), url: "http://" + addr + "/",
		env: append(append([]string(nil), common...), portEnv, "PARLEY_DEV_ROLE=inbound")}
	outp := &roleProc{role: "delivery", bin: bin, log: filepath.Join(logs, "delivery.log"),
		env: append(append([]string(nil), common...), "PARLEY_DEV_ROLE=delivery")}
	in.start(t)
	outp.start(t)

	// 2. The handlers as the Lambdas wire them: the table's tokens, JSON logs.
	var lambdaLogs proc.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&lambdaLogs, nil))
	ddb, sq := parts.Clients()
	store := dynamo.New(ddb, parts.Res.Table)
	queue := sqsfifo.New(sq, parts.Res.QueueURL, parts.Res.DeadLetterQueueURL)
	api := httptest.NewServer(inbound.New(store, queue, token.NewTable(store, time.Minute), inbound.Config{}, jsonLog))
	defer api.Close()
	ch := channel(t, bot.Echo{}, rcv.URL, secret, delivery.Policy{MinDelay: time.Second, MaxDelay: time.Second, MaxAttempts: 3}, 2*time.Second)
	pollCtx, stop := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		h := delivery.New(store, queue, delivery.Single(ch), delivery.Config{}, jsonLog)
		delivery.Poll(pollCtx, queue, h, delivery.PollConfig{Budget: delivery.FunctionTimeout(ch.BotTimeout)}, jsonLog)
		close(polled)
	}()

	client := bench.NewClient(4)
	type call struct {
		what, tok, body string
		want            int
	}
	var sent atomic.Int64
	traffic := func(url, tok, stack string) []string {
		conv := "sec-" + stack + "-" + tag
		msg := func(id, what string) string { return messageBody("user-"+stack, conv, id, text(what)) }
		big := messageBody("user-"+stack, conv, "big", strings.Repeat(text("oversized")+" ", 3000))
		calls := []call{
			{"a message", tok, msg("m1", "hello"), 200},
			{"its replay", tok, msg("m1", "hello"), 200},
			{"the same id, other text", tok, msg("m1", "changed"), 409},
			{"a second message", tok, msg("m2", "second"), 200},
			{"a message the receiver rejects", tok, msg("m3", "reject me"), 200},
			{"a wrong token", wrongToken, msg("m4", "wrong token"), 401},
			{"no token", "", msg("m5", "no token"), 401},
			{"malformed JSON", tok, `{"userId":"u","text":"` + text("malformed") + `",`, 400},
			{"an unknown type", tok, strings.Replace(msg("m6", "bad type"), `"type":"text"`, `"type":"`+text("type")+`"`, 1), 400},
			{"an oversized body", tok, big, 413},
		}
		var problems []string
		for _, c := range calls {
			status, _, _, err := post(ctx, client, url, c.tok, c.body)
			sent.Add(1)
			if err != nil || status != c.want {
				problems = append(problems, fmt.Sprintf("%s %s: %d %v, want %d", stack, c.what, status, err, c.want))
			}
		}
		// Reading history with the token in the header.
		req, _ := http.NewRequest("GET", strings.TrimSuffix(url, "/")+"/v1/conversations/"+conv+"/messages", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if res, err := client.Do(req); err != nil || res.StatusCode != 200 {
			problems = append(problems, fmt.Sprintf("%s history: %v %v", stack, res, err))
		} else {
			res.Body.Close()
		}
		return problems
	}
	problems := append(traffic(in.url, staticToken, "dev"), traffic(api.URL+"/", tableToken, "lambda")...)
	for _, p := range problems {
		t.Error(p)
	}
	// Each stack: m1, m2 delivered after one 503; m3 dead-lettered after a 404.
	if !waitFor(30*time.Second, func() bool { return len(rcv.acked()) >= 4 && countStatus(rcv.all(), 404) >= 2 }) {
		t.Errorf("deliveries did not finish: %d acknowledged, %d rejected", len(rcv.acked()), countStatus(rcv.all(), 404))
	}
	time.Sleep(time.Second)
	stop()
	<-polled
	in.stop()
	outp.stop()

	// Logs.
	var all strings.Builder
	for _, f := range []string{in.log, outp.log} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	all.WriteString(lambdaLogs.String())
	logText := all.String()
	secrets := map[string]string{
		"the static token": staticToken, "the table token": tableToken, "a wrong token": wrongToken,
		"the signing secret": strings.TrimPrefix(secret, "whsec_"), "a message text": "confidential-" + tag,
	}
	leaked := leaks(logText, secrets)
	lines := strings.Count(logText, "\n")

	// The table at rest.
	items := scanAll(t, ddb, parts.Res.Table)
	sum := sha256.Sum256([]byte(tableToken))
	hashed, plainAtRest := false, []string{}
	for _, item := range items {
		flat := flatten(item)
		if strings.Contains(flat, hex.EncodeToString(sum[:])) {
			hashed = true
		}
		for what, s := range map[string]string{"the table token": tableToken, "the static token": staticToken, "the signing secret": strings.TrimPrefix(secret, "whsec_")} {
			if strings.Contains(flat, s) {
				plainAtRest = append(plainAtRest, what)
			}
		}
	}

	// Signatures.
	wrongKey := make([]byte, 32)
	_, _ = rand.Read(wrongKey)
	wrongSecret := "whsec_" + base64.StdEncoding.EncodeToString(wrongKey)
	acked := rcv.acked()
	checks := map[string]int{}
	for _, d := range acked {
		at := d.At
		if verifySignature(secret, d.Header, d.Body, at) == nil {
			checks["accepted with the right secret"]++
		}
		keys, _ := webhook.ParseSecrets(secret)
		if webhook.Verify(keys, d.Header, d.Body, 5*time.Minute, at) == nil {
			checks["accepted by shared/webhook too"]++
		}
		if verifySignature(wrongSecret, d.Header, d.Body, at) != nil {
			checks["rejected with a wrong secret"]++
		}
		if verifySignature(secret, d.Header, append(bytes.Clone(d.Body), ' '), at) != nil {
			checks["rejected with a tampered body"]++
		}
		h := d.Header.Clone()
		h.Set("webhook-id", d.ID+"x")
		if verifySignature(secret, h, d.Body, at) != nil {
			checks["rejected with a tampered webhook-id"]++
		}
		h = d.Header.Clone()
		h.Set("webhook-timestamp", fmt.Sprint(at.Unix()-1))
		if verifySignature(secret, h, d.Body, at) != nil {
			checks["rejected with a tampered timestamp"]++
		}
		h = d.Header.Clone()
		h.Del("webhook-signature")
		if verifySignature(secret, h, d.Body, at) != nil {
			checks["rejected without a signature"]++
		}
	}

	summarize(t, "sent %d requests to two stacks (good, replayed, reused id, wrong/missing token, malformed, bad type, oversized, history read) and %d deliveries arrived (%d acknowledged); %d log lines, leaks %d; %d table items, token stored as its SHA-256 %v, plain secrets at rest %v; signatures of %d deliveries: %v",
		sent.Load(), len(rcv.all()), len(acked), lines, len(leaked), len(items), hashed, plainAtRest, len(acked), checks)
	if len(leaked) > 0 {
		t.Errorf("%d log lines leak a secret or message text, e.g.:\n%s", len(leaked), strings.Join(leaked[:min(5, len(leaked))], "\n"))
	}
	if lines < 10 {
		t.Errorf("only %d log lines: the scan saw no real logs", lines)
	}
	if !hashed || len(plainAtRest) > 0 {
		t.Errorf("token at rest: hash stored %v, plain values stored %v", hashed, plainAtRest)
	}
	if len(acked) < 4 {
		t.Errorf("%d deliveries acknowledged, want at least 4 to check", len(acked))
	}
	for what, n := range checks {
		if n != len(acked) {
			t.Errorf("signature check %q held for %d of %d deliveries", what, n, len(acked))
		}
	}
	if len(checks) != 7 {
		t.Errorf("signature checks %v: some never held", checks)
	}
}

type seenSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

// first reports whether id is seen for the first time.
func (s *seenSet) first(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if s.seen[id] {
		return false
	}
	s.seen[id] = true
	return true
}

func countStatus(ds []arrival, status int) int {
	n := 0
	for _, d := range ds {
		if d.Status == status {
			n++
		}
	}
	return n
}

func scanAll(t *testing.T, client *dynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: &table})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Items...)
	}
	return items
}

// flatten renders every value of an item, nested ones too, as text to search.
func flatten(item map[string]types.AttributeValue) string {
	var b strings.Builder
	var walk func(v types.AttributeValue)
	walk = func(v types.AttributeValue) {
		switch x := v.(type) {
		case *types.AttributeValueMemberS:
			b.WriteString(x.Value + "\n")
		case *types.AttributeValueMemberN:
			b.WriteString(x.Value + "\n")
		case *types.AttributeValueMemberB:
			b.Write(x.Value)
			b.WriteString("\n")
		case *types.AttributeValueMemberSS:
			b.WriteString(strings.Join(x.Value, "\n") + "\n")
		case *types.AttributeValueMemberL:
			for _, e := range x.Value {
				walk(e)
			}
		case *types.AttributeValueMemberM:
			for k, e := range x.Value {
				b.WriteString(k + "\n")
				walk(e)
			}
		}
	}
	for k, v := range item {
		b.WriteString(k + "\n")
		walk(v)
	}
	return b.String()
}
