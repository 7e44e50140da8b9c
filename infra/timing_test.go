package main

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// timingProbe runs in the root module (`go run` of a file there resolves imports against
// the module of the working directory): it prints the application's own numbers for the
// bot timeouts in its arguments, and the limits this module copies.
const timingProbe = `package main

import (
	"encoding/json"
	"os"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/webhook"
)

func main() {
	out := map[string]any{
		"maxBotTimeout":     delivery.MaxBotTimeout,
		"defaultBotTimeout": delivery.DefaultBotTimeout,
		"maxVisibility":     delivery.MaxVisibility,
		"maxSendTimeout":    webhook.MaxTimeout,
		"minRecordTTL":      inbound.MinRecordTTL,
		"minHistoryTTL":     delivery.MinHistoryTTL,
		"maxReceives":       delivery.MaxReceives,
		"eraseTimeout":      inbound.EraseTimeout,
		"callTimeout":       inbound.DefaultCallTimeout,
	}
	var timings [][2]time.Duration
	for _, arg := range os.Args[1:] {
		bot, err := time.ParseDuration(arg)
		if err != nil {
			panic(err)
		}
		timings = append(timings, [2]time.Duration{delivery.FunctionTimeout(bot), delivery.VisibilityTimeout(bot)})
	}
	out["timings"] = timings
	json.NewEncoder(os.Stdout).Encode(out)
}
`

// apiGatewayTimeout is the HTTP API's integration timeout, which the inbound function's
// must stay under.
const apiGatewayTimeout = 30 * time.Second

// TestTimingMatchesApplication: the CDK app copies the delivery side's timing rule and
// limits (it cannot import the root module); the root module's own functions and
// constants must give the same numbers, for every bot timeout SAM offers and a few more.
func TestTimingMatchesApplication(t *testing.T) {
	bots := []time.Duration{time.Second, 15 * time.Second, 45 * time.Second, 4 * time.Minute, maxBotTimeout}
	for _, v := range readSAMDoc(t, readSAMTemplate(t)).Parameters["BotTimeoutSeconds"].AllowedValues {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("BotTimeoutSeconds allows %q", v)
		}
		bots = append(bots, time.Duration(n)*time.Second)
	}

	var args []string
	for _, b := range bots {
		args = append(args, b.String())
	}
	out := goRunInRoot(t, timingProbe, nil, args...)
	var app struct {
		MaxBotTimeout, DefaultBotTimeout, MaxVisibility, MaxSendTimeout time.Duration
		MinRecordTTL, MinHistoryTTL                                     time.Duration
		EraseTimeout, CallTimeout                                       time.Duration
		MaxReceives                                                     int
		Timings                                                         [][2]time.Duration
	}
	if err := json.Unmarshal(out, &app); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}

	defaultBot, err := time.ParseDuration(defaults[keyBotTimeout])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"maxBotTimeout (delivery.MaxBotTimeout)", maxBotTimeout, app.MaxBotTimeout},
		{"default botTimeout (delivery.DefaultBotTimeout)", defaultBot, app.DefaultBotTimeout},
		{"maxVisibilityDelay (delivery.MaxVisibility)", maxVisibilityDelay, app.MaxVisibility},
		{"maxDeliveryTimeout (webhook.MaxTimeout)", maxDeliveryTimeout, app.MaxSendTimeout},
		{"minRecordTTL (inbound.MinRecordTTL)", minRecordTTL, app.MinRecordTTL},
		{"minHistoryTTL (delivery.MinHistoryTTL)", minHistoryTTL, app.MinHistoryTTL},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %s, the application has %s", c.name, c.got, c.want)
		}
	}
	// The inbound function's timeout: an erasure after its token lookup, within API
	// Gateway's integration timeout.
	inbound := time.Duration(inboundTimeoutSeconds) * time.Second
	if need := app.CallTimeout + app.EraseTimeout; inbound <= need {
		t.Errorf("inbound timeout %s: an erasure takes up to %s (token lookup %s, inbound.EraseTimeout %s)", inbound, need, app.CallTimeout, app.EraseTimeout)
	}
	if inbound >= apiGatewayTimeout {
		t.Errorf("inbound timeout %s: API Gateway gives up after %s, want less", inbound, apiGatewayTimeout)
	}
	if maxReceiveCount != app.MaxReceives {
		t.Errorf("maxReceiveCount: got %d, delivery.MaxReceives is %d", maxReceiveCount, app.MaxReceives)
	}
	if len(app.Timings) != len(bots) {
		t.Fatalf("probe answered %d timings for %d bot timeouts", len(app.Timings), len(bots))
	}
	for i, b := range bots {
		got, want := deliveryTiming(b), Timing{FunctionTimeout: app.Timings[i][0], VisibilityTimeout: app.Timings[i][1]}
		if got != want {
			t.Errorf("bot timeout %s: CDK %+v, shared/delivery %+v", b, got, want)
		}
	}
}
