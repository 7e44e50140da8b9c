package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits the configuration is checked against at synth time, so that a bad value fails
// `cdk synth` instead of a deploy or, worse, a running system.
const (
	// maxDeliveryTimeout bounds one POST to the Response Endpoint (webhook.MaxTimeout in
	// the root module): two of them at their longest fit in the delivery function's
	// timeout (see deliveryTiming).
	maxDeliveryTimeout = 30 * time.Second
	// maxVisibilityDelay is SQS's ceiling for ChangeMessageVisibility and for a queue's
	// visibility timeout (delivery.MaxVisibility): how the delivery function waits
	// between attempts.
	maxVisibilityDelay = 12 * time.Hour
	// queueRetention is how long both queues keep a message (the SQS maximum). A retry
	// schedule longer than this would let SQS drop a message before it reaches the DLQ.
	queueRetention = 14 * 24 * time.Hour
	// maxMaxAttempts is the delivery function's own limit (delivery.Policy.Validate
	// accepts 1–100); the waits between the attempts must also fit in queueRetention.
	maxMaxAttempts = 100
	// maxReceiveCount is the delivery queue's redrive budget: SQS's maximum, whatever
	// maxAttempts is. It mirrors delivery.MaxReceives in the root module (which this
	// module does not import); template.yaml has the same literal. The delivery function
	// counts attempts itself and, after the last one, moves the message to the dead-letter
	// queue with the reason; the redrive policy is only the backstop for a message that
	// crashes the function every time. SQS's receive count is not an attempt count: every
	// message held back behind a failing message of its conversation is received again
	// with it, so a budget near maxAttempts would dead-letter messages never attempted.
	maxReceiveCount = 1000
	// defaultOldestMessageAge is when a message waiting in the delivery queue raises an alarm.
	defaultOldestMessageAge = time.Hour
	// maxHoldLimit is the delivery function's own bound on PARLEY_HOLD_LIMIT; the hold
	// limit also counts in the retry budget's retention check (checkRetryBudget).
	maxHoldLimit = 7 * 24 * time.Hour
	// The delivery function's bounds on PARLEY_DISABLE_AFTER_FAILURES (0: only a 410
	// disables), PARLEY_DISABLE_AFTER (at most the queue's retention) and
	// PARLEY_ENDPOINT_RATE_LIMIT (POSTs a second per function; 0: no limit).
	maxDisableAfterFailures = 100000
	maxEndpointRateLimit    = 10000
	// maxFailedAttemptsAlarm bounds the failed-attempts alarm's threshold.
	maxFailedAttemptsAlarm = 1000000
	// maxBotTimeout is delivery.MaxBotTimeout: the bot runs in the delivery function,
	// whose timeout grows with it (deliveryTiming).
	maxBotTimeout = 5 * time.Minute
	// minRecordTTL is inbound.MinRecordTTL and minHistoryTTL delivery.MinHistoryTTL: a
	// record and an exchange outlive the queue's 14-day retention by a day, so a job
	// being retried always finds them. The functions refuse shorter ones when they start.
	minRecordTTL  = 15 * 24 * time.Hour
	minHistoryTTL = 15 * 24 * time.Hour
	maxTTL        = 365 * 24 * time.Hour
	// Lambda's limits for an SQS event source's maximum concurrency.
	minMaxConcurrency = 2
	maxMaxConcurrency = 1000
	// maxSystemPromptBytes keeps the delivery function's environment well under Lambda's
	// 4 KB limit for all variables together.
	maxSystemPromptBytes = 2048
	// maxRulesFileBytes bounds the rules file copied into the delivery function.
	maxRulesFileBytes = 1 << 20
	// rulesFileInAsset is where the bundling puts the rules file: /var/task is the
	// unpacked function package.
	rulesFileInAsset  = "rules.json"
	rulesFileOnLambda = "/var/task/" + rulesFileInAsset
)

// Timing is the delivery side's timing, derived from the bot timeout.
type Timing struct {
	FunctionTimeout   time.Duration // the delivery function's, in whole seconds
	VisibilityTimeout time.Duration // the delivery queue's
}

// deliveryTiming copies the rule of FunctionTimeout and VisibilityTimeout in
// shared/delivery/config.go (the root module, which this one cannot import):
// one job's bot and two POSTs at their longest, with 20 s to settle; the queue's
// visibility six times that (Lambda's guidance for SQS sources), at most SQS's 12 h.
// Lambda takes whole seconds: a bot timeout with a fraction of a second rounds the
// function timeout up. timing_test.go runs the root module's functions to compare.
func deliveryTiming(botTimeout time.Duration) Timing {
	fn := botTimeout + 2*maxDeliveryTimeout + 20*time.Second
	if r := fn % time.Second; r != 0 {
		fn += time.Second - r
	}
	return Timing{FunctionTimeout: fn, VisibilityTimeout: min(6*fn, maxVisibilityDelay)}
}

// Bot names (the delivery function's PARLEY_BOT) and LLM providers the functions know.
var (
	botNames     = []string{"echo", "rules", "llm", "http"}
	llmProviders = []string{"openai", "anthropic"}
)

// Config is everything the stack takes from CDK context (`cdk synth -c key=value` or
// cdk.json). Durations keep the text the user gave: the functions parse it again.
type Config struct {
	Stage               string // stack name suffix: Parley-<stage>
	ResponseEndpointURL string // where the delivery function POSTs bot messages
	Bot                 string // one of botNames
	RecordTTL           string // how long the inbound function's message records live
	HistoryTTL          string // how long the conversation history (the exchanges) lives
	BotTimeout          string // how long the bot may take for one turn
	Timing              Timing // derived from BotTimeout
	MaxConcurrency      int    // the delivery queue's event source: concurrent batches at most
	// RulesFile is the absolute path of the rules bot's intents file on the deploying
	// machine, copied into the delivery function; "" (also for other bots): none, the
	// rules bot answers from its built-in example.
	RulesFile       string
	HTTPBotURL      string // bot=http: the bot service's Rasa REST webhook
	LLM             LLMConfig
	RetryMinDelay   string
	RetryMaxDelay   string
	MaxAttempts     int
	DeliveryTimeout string
	// HoldLimit is how long a failing message may hold its conversation back before it
	// goes to the dead-letter queue and the conversation goes on; "0": strict order.
	HoldLimit string
	// An endpoint is disabled after DisableAfterFailures failed attempts in a row
	// spanning at least DisableAfter (or at once on a 410); 0 failures: only on a 410.
	DisableAfterFailures int
	DisableAfter         string
	// EndpointRateLimit is the default channel's POSTs a second per function instance,
	// in canonical text; "0": no limit.
	EndpointRateLimit   string
	Tracing             string // "active" (X-Ray) or "passthrough" (Lambda's default: off)
	RemovalPolicy       string // "retain" or "destroy"; applies to the table and log groups
	AlarmEmail          string // optional: subscribes to the alarm topic
	OldestMessageAge    time.Duration
	FailedAttemptsAlarm int // failed delivery attempts in 5 minutes that raise an alarm
}

// LLMConfig is the llm bot's configuration, set only when bot=llm. Optional values are
// "" when not given; numbers keep a canonical text form, as the function reads them.
type LLMConfig struct {
	Provider         string // openai (any OpenAI-compatible API) or anthropic
	BaseURL          string
	Model            string
	SystemPrompt     string
	Temperature      string
	MaxTokens        string
	History          string // earlier messages sent along
	APIKeySecretName string // an existing Secrets Manager secret holding the API key
}

// StackName is the CloudFormation stack name for the configured stage.
func (c Config) StackName() string { return "Parley-" + c.Stage }

// Context keys and their defaults. The names are part of the user interface (README).
const (
	keyStage               = "stage"
	keyResponseEndpointURL = "responseEndpointUrl"
	keyBot                 = "bot"
	keyRecordTTL           = "recordTtl"
	keyHistoryTTL          = "historyTtl"
	keyBotTimeout          = "botTimeout"
	keyMaxConcurrency      = "maxConcurrency"
	keyRulesFile           = "rulesFile"
	keyHTTPBotURL          = "httpBotUrl"
	keyLLMProvider         = "llmProvider"
	keyLLMBaseURL          = "llmBaseUrl"
	keyLLMModel            = "llmModel"
	keyLLMSystemPrompt     = "llmSystemPrompt"
	keyLLMTemperature      = "llmTemperature"
	keyLLMMaxTokens        = "llmMaxTokens"
	keyLLMHistory          = "llmHistory"
	keyLLMAPIKeySecretName = "llmApiKeySecretName"
	keyRetryMinDelay       = "retryMinDelay"
	keyRetryMaxDelay       = "retryMaxDelay"
	keyMaxAttempts         = "maxAttempts"
	keyDeliveryTimeout     = "deliveryTimeout"
	keyRemovalPolicy       = "removalPolicy"
	keyAlarmEmail          = "alarmEmail"
	keyOldestMessageAge    = "oldestMessageAgeAlarm"
	keyHoldLimit           = "holdLimit"
	keyDisableAfterFails   = "disableAfterFailures"
	keyDisableAfter        = "disableAfter"
	keyEndpointRateLimit   = "endpointRateLimit"
	keyTracing             = "tracing"
	keyFailedAttemptsAlarm = "failedAttemptsAlarm"
)

var defaults = map[string]string{
	keyStage:               "dev",
	keyBot:                 "echo",
	keyRecordTTL:           "360h",
	keyHistoryTTL:          "720h",
	keyBotTimeout:          "30s",
	keyMaxConcurrency:      "10",
	keyLLMProvider:         "openai",
	keyRetryMinDelay:       "5s",
	keyRetryMaxDelay:       "12h",
	keyMaxAttempts:         "11",
	keyDeliveryTimeout:     "10s",
	keyRemovalPolicy:       "retain",
	keyOldestMessageAge:    defaultOldestMessageAge.String(),
	keyHoldLimit:           "1h",
	keyDisableAfterFails:   "20",
	keyDisableAfter:        "24h",
	keyEndpointRateLimit:   "0",
	keyTracing:             "passthrough",
	keyFailedAttemptsAlarm: "100",
}

// Tracing modes (the tracing context key): X-Ray on both functions, or Lambda's
// default, which records nothing unless a caller asks (neither API Gateway's HTTP API
// nor SQS does).
var tracingModes = []string{"passthrough", "active"}

// botKeys are the context keys that only one bot uses: given with another bot, they
// would silently do nothing, so they are refused.
var botKeys = map[string][]string{
	"rules": {keyRulesFile},
	"http":  {keyHTTPBotURL},
	"llm": {keyLLMProvider, keyLLMBaseURL, keyLLMModel, keyLLMSystemPrompt, keyLLMTemperature,
		keyLLMMaxTokens, keyLLMHistory, keyLLMAPIKeySecretName},
}

var (
	stagePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)
	// Secrets Manager's characters for secret names.
	secretNamePattern = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
	// A name ending in a hyphen and six characters looks like a complete ARN's random
	// suffix: Secrets Manager can misread the partial ARN the function is given.
	secretSuffixPattern = regexp.MustCompile(`-[A-Za-z0-9/_+=.@]{6}$`)
)

// LoadConfig reads and validates the configuration. lookup returns a context value or nil;
// repoRoot is the repository root, which a relative rulesFile is resolved against.
// Every problem is reported at once, each naming its context key.
func LoadConfig(lookup func(key string) any, repoRoot string) (Config, error) {
	var errs []error
	get := func(key string) string {
		v := lookup(key)
		if v == nil {
			return defaults[key]
		}
		s := strings.TrimSpace(fmt.Sprint(v))
		if s == "" {
			return defaults[key]
		}
		return s
	}
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("context %q: "+format, append([]any{key}, args...)...))
	}
	// why, if given, says where the range comes from.
	duration := func(key string, min, max time.Duration, why ...string) (string, time.Duration) {
		s := get(key)
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			fail(key, "%q is not a Go duration such as 10s or 12h", s)
		case d < min || d > max:
			fail(key, "%s is out of range [%s, %s]%s", s, short(min), short(max), strings.Join(append([]string{""}, why...), ": "))
		}
		return s, d
	}
	whole := func(key string, min, max int) int {
		s := get(key)
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			fail(key, "%q is not a whole number", s)
		case n < min || n > max:
			fail(key, "%d is out of range [%d, %d]", n, min, max)
		default:
			return n
		}
		return 0
	}

	var c Config

	c.Stage = get(keyStage)
	if !stagePattern.MatchString(c.Stage) {
		fail(keyStage, "%q must be 1-32 letters, digits or dashes, starting with a letter or digit", c.Stage)
	}

	c.ResponseEndpointURL = get(keyResponseEndpointURL)
	if err := checkEndpointURL(c.ResponseEndpointURL); err != nil {
		fail(keyResponseEndpointURL, "%v (pass it with -c responseEndpointUrl=https://your.host/path)", err)
	}

	c.RecordTTL, _ = duration(keyRecordTTL, minRecordTTL, maxTTL,
		"a message record must outlive the delivery queue's 14-day retention by a day")
	c.HistoryTTL, _ = duration(keyHistoryTTL, minHistoryTTL, maxTTL,
		"an exchange must outlive the delivery queue's 14-day retention by a day")
	var botTimeout time.Duration
	c.BotTimeout, botTimeout = duration(keyBotTimeout, time.Second, maxBotTimeout)
	c.Timing = deliveryTiming(botTimeout)
	c.MaxConcurrency = whole(keyMaxConcurrency, minMaxConcurrency, maxMaxConcurrency)
	c.Bot = get(keyBot)
	if slices.Contains(botNames, c.Bot) {
		c.loadBot(get, lookup, repoRoot, fail)
	} else {
		fail(keyBot, "%q is not a bot: want one of %s", c.Bot, strings.Join(botNames, ", "))
	}
	var minDelay, maxDelay time.Duration
	c.RetryMinDelay, minDelay = duration(keyRetryMinDelay, time.Second, maxVisibilityDelay)
	c.RetryMaxDelay, maxDelay = duration(keyRetryMaxDelay, time.Second, maxVisibilityDelay)
	c.DeliveryTimeout, _ = duration(keyDeliveryTimeout, time.Second, maxDeliveryTimeout)
	_, c.OldestMessageAge = duration(keyOldestMessageAge, time.Minute, queueRetention)
	if minDelay > 0 && maxDelay > 0 && minDelay > maxDelay {
		fail(keyRetryMinDelay, "%s is longer than %s %s", c.RetryMinDelay, keyRetryMaxDelay, c.RetryMaxDelay)
	}

	var holdLimit time.Duration
	c.HoldLimit, holdLimit = duration(keyHoldLimit, 0, maxHoldLimit)
	_, holdErr := time.ParseDuration(c.HoldLimit)
	if n := whole(keyMaxAttempts, 1, maxMaxAttempts); n > 0 {
		c.MaxAttempts = n
		// Checked when the maximum delay and the hold limit are valid themselves.
		if maxDelay > 0 && maxDelay <= maxVisibilityDelay && holdErr == nil && holdLimit >= 0 && holdLimit <= maxHoldLimit {
			if err := checkRetryBudget(n, maxDelay, holdLimit); err != nil {
				fail(keyMaxAttempts, "%d attempts with retryMaxDelay %s and holdLimit %s: %v", n, c.RetryMaxDelay, c.HoldLimit, err)
			}
		}
	}
	c.DisableAfterFailures = whole(keyDisableAfterFails, 0, maxDisableAfterFailures)
	c.DisableAfter, _ = duration(keyDisableAfter, 0, queueRetention)
	if s := get(keyEndpointRateLimit); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			fail(keyEndpointRateLimit, "%q is not a number", s)
		case f < 0 || f > maxEndpointRateLimit:
			fail(keyEndpointRateLimit, "%s is out of range [0, %d] (POSTs a second; 0: no limit)", s, maxEndpointRateLimit)
		default:
			c.EndpointRateLimit = strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	c.Tracing = strings.ToLower(get(keyTracing))
	if !slices.Contains(tracingModes, c.Tracing) {
		fail(keyTracing, "%q must be active or passthrough", c.Tracing)
	}
	if n := whole(keyFailedAttemptsAlarm, 1, maxFailedAttemptsAlarm); n > 0 {
		c.FailedAttemptsAlarm = n
	}

	c.RemovalPolicy = strings.ToLower(get(keyRemovalPolicy))
	if c.RemovalPolicy != "retain" && c.RemovalPolicy != "destroy" {
		fail(keyRemovalPolicy, "%q must be retain or destroy", c.RemovalPolicy)
	}

	if v := lookup(keyAlarmEmail); v != nil && strings.TrimSpace(fmt.Sprint(v)) != "" {
		c.AlarmEmail = strings.TrimSpace(fmt.Sprint(v))
		if a, err := mail.ParseAddress(c.AlarmEmail); err != nil || a.Address != c.AlarmEmail {
			fail(keyAlarmEmail, "%q is not an e-mail address", c.AlarmEmail)
		}
	}

	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return c, nil
}

// checkRetryBudget is the retention rule of delivery.Policy.Validate (the root module,
// which this one cannot import): SQS deletes a message after its retention, so the
// longest its attempts can span — every wait at the maximum delay, which a receiver's
// Retry-After can force — plus the time it may wait behind its conversation's failing
// head must fit in it, or a message still being retried is lost instead of
// dead-lettered. policy_test.go runs the delivery function's own check to compare.
func checkRetryBudget(maxAttempts int, maxDelay, holdLimit time.Duration) error {
	span := time.Duration(max(maxAttempts-1, 0)) * maxDelay
	if span+holdLimit > queueRetention {
		return fmt.Errorf("the waits may span %s when a receiver asks for the maximum delay each time, which with the hold limit is more than the queue's 14-day retention; lower maxAttempts, retryMaxDelay or holdLimit",
			short(span))
	}
	return nil
}

// loadBot reads the settings of the configured bot, and refuses those of the others.
func (c *Config) loadBot(get func(string) string, lookup func(string) any, repoRoot string, fail func(key, format string, args ...any)) {
	given := func(key string) bool {
		v := lookup(key)
		return v != nil && strings.TrimSpace(fmt.Sprint(v)) != ""
	}
	for bot, keys := range botKeys {
		for _, key := range keys {
			if bot != c.Bot && given(key) {
				fail(key, "is only used with bot=%s, and bot is %s", bot, c.Bot)
			}
		}
	}
	whole := func(key string, min, max int) string {
		if !given(key) {
			return ""
		}
		s := get(key)
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			fail(key, "%q is not a whole number", s)
		case n < min || n > max:
			fail(key, "%d is out of range [%d, %d]", n, min, max)
		}
		return strconv.Itoa(n)
	}

	switch c.Bot {
	case "rules":
		if given(keyRulesFile) {
			c.RulesFile = get(keyRulesFile)
			if !filepath.IsAbs(c.RulesFile) {
				c.RulesFile = filepath.Join(repoRoot, c.RulesFile)
			}
			if err := checkRulesFile(c.RulesFile); err != nil {
				fail(keyRulesFile, "%v (a JSON rules file; a relative path is relative to the repository root)", err)
			}
		}

	case "http":
		c.HTTPBotURL = get(keyHTTPBotURL)
		if c.HTTPBotURL == "" {
			fail(keyHTTPBotURL, "required with bot=http: the absolute http(s) URL of the bot service's Rasa REST webhook")
		} else if err := checkURL(c.HTTPBotURL, "http", "https"); err != nil {
			fail(keyHTTPBotURL, "%v", err)
		}

	case "llm":
		l := &c.LLM
		l.Provider = get(keyLLMProvider)
		if !slices.Contains(llmProviders, l.Provider) {
			fail(keyLLMProvider, "%q is not a provider: want %s", l.Provider, strings.Join(llmProviders, " or "))
		}
		if l.BaseURL = get(keyLLMBaseURL); l.BaseURL != "" {
			if err := checkURL(l.BaseURL, "https"); err != nil {
				fail(keyLLMBaseURL, "%v", err)
			}
		}
		if l.Model = get(keyLLMModel); l.Model == "" {
			fail(keyLLMModel, "required with bot=llm: the model name, such as gpt-4o-mini")
		}
		if l.SystemPrompt = get(keyLLMSystemPrompt); len(l.SystemPrompt) > maxSystemPromptBytes {
			fail(keyLLMSystemPrompt, "%d bytes, at most %d (Lambda allows 4 KB of environment in all)", len(l.SystemPrompt), maxSystemPromptBytes)
		}
		if given(keyLLMTemperature) {
			s := get(keyLLMTemperature)
			f, err := strconv.ParseFloat(s, 64)
			switch {
			case err != nil || math.IsNaN(f):
				fail(keyLLMTemperature, "%q is not a number", s)
			case f < 0 || f > 2:
				fail(keyLLMTemperature, "%s is out of range [0, 2]", s)
			}
			l.Temperature = strconv.FormatFloat(f, 'f', -1, 64)
		}
		l.MaxTokens = whole(keyLLMMaxTokens, 1, 32000)
		l.History = whole(keyLLMHistory, 0, 100)
		l.APIKeySecretName = get(keyLLMAPIKeySecretName)
		switch name := l.APIKeySecretName; {
		case name == "":
			fail(keyLLMAPIKeySecretName, "required with bot=llm: the name of an existing Secrets Manager secret holding the API key")
		case strings.HasPrefix(name, "arn:"):
			fail(keyLLMAPIKeySecretName, "%q is an ARN: give the secret's name", name)
		case !secretNamePattern.MatchString(name):
			fail(keyLLMAPIKeySecretName, "%q is not a secret name (1-512 letters, digits and /_+=.@-)", name)
		case secretSuffixPattern.MatchString(name):
			fail(keyLLMAPIKeySecretName, "%q ends in a hyphen and six characters, which Secrets Manager can take for an ARN's random suffix: rename the secret", name)
		}
	}
}

// checkRulesFile checks what synth can: the rules file exists and is a JSON document.
// The delivery function validates its intents when it starts.
func checkRulesFile(path string) error {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a file", path)
	case info.Size() > maxRulesFileBytes:
		return fmt.Errorf("%s is %d bytes, more than %d", path, info.Size(), maxRulesFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s is not JSON: %v", path, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return fmt.Errorf("%s is not a JSON object", path)
	}
	return nil
}

// short writes a duration without its zero minutes and seconds: 360h, not 360h0m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func checkEndpointURL(s string) error {
	if s == "" {
		return errors.New("required: the absolute http(s) URL the delivery function POSTs bot messages to")
	}
	return checkURL(s, "http", "https")
}

// checkURL accepts an absolute URL with one of the schemes, a host and no credentials.
func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("%q must be an absolute %s URL", s, strings.Join(schemes, " or "))
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry credentials", s)
	}
	return nil
}
