// Package devstack is the local stack of `make run`: the inbound handler behind
// net/http, the embedded store and queue, the delivery worker and a built-in inbox,
// all in one process with no AWS account.
package devstack

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
)

// Roles of a local stack process. Running the inbound and delivery roles as separate
// processes on DynamoDB and SQS mirrors the two Lambdas (and lets tests kill either).
const (
	RoleAll      = "all"
	RoleInbound  = "inbound"
	RoleDelivery = "delivery"
)

// Config is the local stack's configuration (CONTRACT.md §3).
type Config struct {
	Role string // RoleAll, RoleInbound or RoleDelivery
	// TableName, QueueURL and DeadLetterQueueURL, when set, put the stack on DynamoDB
	// and SQS instead of the embedded store and queue.
	TableName, QueueURL, DeadLetterQueueURL string

	Addr            string // listen address; default 127.0.0.1:8080
	Token           string
	ResponseURL     string // empty: the built-in inbox
	Bot             string
	BotOptions      bot.Options
	SigningSecrets  string // empty: a fresh secret is made at start
	Policy          delivery.Policy
	DeliveryTimeout time.Duration
	RecordTTL       time.Duration
	BotTimeout      time.Duration
	Workers         int
}

// ConfigFromEnv reads the configuration through getenv and reports every bad variable
// at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Addr:               "127.0.0.1:8080",
		Token:              "dev-token",
		ResponseURL:        getenv("PARLEY_RESPONSE_ENDPOINT_URL"),
		Bot:                "echo",
		SigningSecrets:     getenv("PARLEY_SIGNING_SECRET"),
		RecordTTL:          7 * 24 * time.Hour,
		BotTimeout:         10 * time.Second,
		Workers:            4,
		Role:               RoleAll,
		TableName:          getenv("PARLEY_TABLE_NAME"),
		QueueURL:           getenv("PARLEY_QUEUE_URL"),
		DeadLetterQueueURL: getenv("PARLEY_DEAD_LETTER_QUEUE_URL"),
	}
	var errs []error
	if r := getenv("PARLEY_DEV_ROLE"); r != "" {
		c.Role = r
	}
	switch {
	case c.Role != RoleAll && c.Role != RoleInbound && c.Role != RoleDelivery:
		errs = append(errs, fmt.Errorf("PARLEY_DEV_ROLE=%q: want all, inbound or delivery", c.Role))
	case (c.TableName == "") != (c.QueueURL == "") || (c.TableName != "" && c.DeadLetterQueueURL == ""):
		errs = append(errs, fmt.Errorf("PARLEY_TABLE_NAME, PARLEY_QUEUE_URL and PARLEY_DEAD_LETTER_QUEUE_URL go together: set all three for DynamoDB and SQS, or none"))
	case c.Role != RoleAll && c.TableName == "":
		errs = append(errs, fmt.Errorf("PARLEY_DEV_ROLE=%s needs DynamoDB and SQS (PARLEY_TABLE_NAME, PARLEY_QUEUE_URL, PARLEY_DEAD_LETTER_QUEUE_URL): the embedded parts live in one process", c.Role))
	}
	if p := getenv("PORT"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("PORT=%q: want a port number", p))
		}
		c.Addr = "127.0.0.1:" + strconv.Itoa(n)
	}
	if t := getenv("PARLEY_TOKEN"); t != "" {
		c.Token = t
	}
	if b := getenv("PARLEY_BOT"); b != "" {
		c.Bot = b
	}
	opts, err := bot.ConfigFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	} else if _, err := bot.New(c.Bot, opts); err != nil {
		errs = append(errs, fmt.Errorf("PARLEY_BOT=%s: %w", c.Bot, err))
	}
	c.BotOptions = opts
	if c.ResponseURL != "" {
		if u, err := url.Parse(c.ResponseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("PARLEY_RESPONSE_ENDPOINT_URL=%q: want an absolute http or https URL", c.ResponseURL))
		}
	}
	policy, timeout, err := delivery.ConfigFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.Policy, c.DeliveryTimeout = policy, timeout
	duration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a Go duration such as 5s or 2m", name, v))
				return
			}
			*dst = d
		}
	}
	duration("PARLEY_RECORD_TTL", &c.RecordTTL)
	duration("PARLEY_BOT_TIMEOUT", &c.BotTimeout)
	if c.RecordTTL < time.Minute {
		errs = append(errs, fmt.Errorf("PARLEY_RECORD_TTL=%s: want at least 1m", c.RecordTTL))
	}
	if c.BotTimeout <= 0 || c.BotTimeout > 25*time.Second {
		errs = append(errs, fmt.Errorf("PARLEY_BOT_TIMEOUT=%s: want more than 0 and at most 25s", c.BotTimeout))
	}
	return c, errors.Join(errs...)
}
