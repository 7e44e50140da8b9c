package main

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits the configuration is checked against at synth time, so that a bad value fails
// `cdk synth` instead of a deploy or, worse, a running system.
const (
	// maxDeliveryTimeout bounds one POST to the Response Endpoint: ten of them, one batch,
	// must fit in the delivery function's timeout with room to record the outcome.
	maxDeliveryTimeout = 30 * time.Second
	// maxVisibilityDelay is SQS's ceiling for ChangeMessageVisibility, which is how the
	// delivery function waits between attempts.
	maxVisibilityDelay = 12 * time.Hour
	// queueRetention is how long both queues keep a message (the SQS maximum). A retry
	// schedule longer than this would let SQS drop a message before it reaches the DLQ.
	queueRetention = 14 * 24 * time.Hour
	// maxMaxAttempts keeps the receive budget (maxAttempts+1) in the range the SAM
	// template's ReceiveBudget mapping covers.
	maxMaxAttempts = 30
	// defaultOldestMessageAge is when a message waiting in the delivery queue raises an alarm.
	defaultOldestMessageAge = time.Hour
)

// Config is everything the stack takes from CDK context (`cdk synth -c key=value` or
// cdk.json). Durations keep the text the user gave: the functions parse it again.
type Config struct {
	Stage               string // stack name suffix: Parley-<stage>
	ResponseEndpointURL string // where the delivery function POSTs bot messages
	Bot                 string
	RecordTTL           string // how long inbound de-duplication records live
	RetryMinDelay       string
	RetryMaxDelay       string
	MaxAttempts         int
	DeliveryTimeout     string
	RemovalPolicy       string // "retain" or "destroy"; applies to the table and log groups
	AlarmEmail          string // optional: subscribes to the alarm topic
	OldestMessageAge    time.Duration
}

// StackName is the CloudFormation stack name for the configured stage.
func (c Config) StackName() string { return "Parley-" + c.Stage }

// MaxReceiveCount is the delivery queue's redrive budget: one receive per attempt, plus
// one so that the function itself, not the redrive policy, moves a message that used
// all its attempts to the dead-letter queue together with the reason.
func (c Config) MaxReceiveCount() int { return c.MaxAttempts + 1 }

// Context keys and their defaults. The names are part of the user interface (README).
const (
	keyStage               = "stage"
	keyResponseEndpointURL = "responseEndpointUrl"
	keyBot                 = "bot"
	keyRecordTTL           = "recordTtl"
	keyRetryMinDelay       = "retryMinDelay"
	keyRetryMaxDelay       = "retryMaxDelay"
	keyMaxAttempts         = "maxAttempts"
	keyDeliveryTimeout     = "deliveryTimeout"
	keyRemovalPolicy       = "removalPolicy"
	keyAlarmEmail          = "alarmEmail"
	keyOldestMessageAge    = "oldestMessageAgeAlarm"
)

var defaults = map[string]string{
	keyStage:            "dev",
	keyBot:              "echo",
	keyRecordTTL:        "168h",
	keyRetryMinDelay:    "5s",
	keyRetryMaxDelay:    "12h",
	keyMaxAttempts:      "11",
	keyDeliveryTimeout:  "10s",
	keyRemovalPolicy:    "retain",
	keyOldestMessageAge: defaultOldestMessageAge.String(),
}

var (
	stagePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)
	botPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// LoadConfig reads and validates the configuration. lookup returns a context value or nil;
// every problem is reported at once, each naming its context key.
func LoadConfig(lookup func(key string) any) (Config, error) {
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
	duration := func(key string, min, max time.Duration) (string, time.Duration) {
		s := get(key)
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			fail(key, "%q is not a Go duration such as 10s or 12h", s)
		case d < min || d > max:
			fail(key, "%s is out of range [%s, %s]", s, min, max)
		}
		return s, d
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

	c.Bot = get(keyBot)
	if !botPattern.MatchString(c.Bot) {
		fail(keyBot, "%q must be a lower-case bot name such as echo", c.Bot)
	}

	c.RecordTTL, _ = duration(keyRecordTTL, time.Minute, 365*24*time.Hour)
	var minDelay, maxDelay time.Duration
	c.RetryMinDelay, minDelay = duration(keyRetryMinDelay, time.Second, maxVisibilityDelay)
	c.RetryMaxDelay, maxDelay = duration(keyRetryMaxDelay, time.Second, maxVisibilityDelay)
	c.DeliveryTimeout, _ = duration(keyDeliveryTimeout, time.Second, maxDeliveryTimeout)
	_, c.OldestMessageAge = duration(keyOldestMessageAge, time.Minute, queueRetention)
	if minDelay > 0 && maxDelay > 0 && minDelay > maxDelay {
		fail(keyRetryMinDelay, "%s is longer than %s %s", c.RetryMinDelay, keyRetryMaxDelay, c.RetryMaxDelay)
	}

	s := get(keyMaxAttempts)
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		fail(keyMaxAttempts, "%q is not a whole number", s)
	case n < 1 || n > maxMaxAttempts:
		fail(keyMaxAttempts, "%d is out of range [1, %d]", n, maxMaxAttempts)
	default:
		c.MaxAttempts = n
		// The waits between attempts must fit in the queue's retention, or SQS deletes a
		// message that is still being retried and it never reaches the dead-letter queue.
		if maxDelay > 0 && time.Duration(n-1)*maxDelay >= queueRetention {
			fail(keyMaxAttempts, "%d attempts %s apart (%s) do not fit in the queue's 14-day retention",
				n, c.RetryMaxDelay, time.Duration(n-1)*maxDelay)
		}
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

func checkEndpointURL(s string) error {
	if s == "" {
		return errors.New("required: the absolute http(s) URL the delivery function POSTs bot messages to")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q must be an absolute http or https URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry credentials", s)
	}
	return nil
}
