// Package devstack is the local stack of `make run`: the inbound handler behind
// net/http, the embedded store and queue, the delivery worker and a built-in inbox,
// all in one process with no AWS account.
package devstack

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/inbound"
)

// Roles of a local stack process. Running the inbound and delivery roles as separate
// processes on DynamoDB and SQS mirrors the two Lambdas (and lets tests kill either).
const (
	RoleAll      = "all"
	RoleInbound  = "inbound"
	RoleDelivery = "delivery"
)

// Config is the local stack's configuration (README, Configuration).
type Config struct {
	Role string // RoleAll, RoleInbound or RoleDelivery
	// TableName, QueueURL and DeadLetterQueueURL, when set, put the stack on DynamoDB
	// and SQS instead of the embedded store and queue.
	TableName, QueueURL, DeadLetterQueueURL string

	Addr           string // listen address; default 127.0.0.1:8080
	Token          string
	AdminToken     string // the operator API's; empty: a fresh one is made at start
	ResponseURL    string // empty: the built-in inbox
	Bot            string
	BotOptions     bot.Options
	SigningSecrets string // empty: a fresh secret is made at start
	Delivery       delivery.Settings
	RecordTTL      time.Duration
}

// ConfigFromEnv reads the configuration through getenv and reports every bad variable
// at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envvar.New(getenv)
	c := Config{
		Addr:               "127.0.0.1:" + strconv.Itoa(r.Int("PORT", 8080, 0, 65535)),
		Token:              r.String("PARLEY_TOKEN", "dev-token"),
		AdminToken:         getenv("PARLEY_ADMIN_TOKEN"),
		ResponseURL:        getenv("PARLEY_RESPONSE_ENDPOINT_URL"),
		Bot:                r.String("PARLEY_BOT", "echo"),
		SigningSecrets:     getenv("PARLEY_SIGNING_SECRET"),
		RecordTTL:          r.Duration("PARLEY_RECORD_TTL", inbound.MinRecordTTL, inbound.MinRecordTTL, 365*24*time.Hour),
		Role:               r.String("PARLEY_DEV_ROLE", RoleAll),
		TableName:          getenv("PARLEY_TABLE_NAME"),
		QueueURL:           getenv("PARLEY_QUEUE_URL"),
		DeadLetterQueueURL: getenv("PARLEY_DEAD_LETTER_QUEUE_URL"),
	}
	c.Delivery = delivery.ConfigFromEnv(r)
	switch {
	case c.Role != RoleAll && c.Role != RoleInbound && c.Role != RoleDelivery:
		r.Check(fmt.Errorf("PARLEY_DEV_ROLE=%q: want all, inbound or delivery", c.Role))
	case (c.TableName == "") != (c.QueueURL == "") || (c.TableName != "" && c.DeadLetterQueueURL == ""):
		r.Check(fmt.Errorf("PARLEY_TABLE_NAME, PARLEY_QUEUE_URL and PARLEY_DEAD_LETTER_QUEUE_URL go together: set all three for DynamoDB and SQS, or none"))
	case c.Role != RoleAll && c.TableName == "":
		r.Check(fmt.Errorf("PARLEY_DEV_ROLE=%s needs DynamoDB and SQS (PARLEY_TABLE_NAME, PARLEY_QUEUE_URL, PARLEY_DEAD_LETTER_QUEUE_URL): the embedded parts live in one process", c.Role))
	}
	if c.ResponseURL != "" {
		if u, err := url.Parse(c.ResponseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.Check(fmt.Errorf("PARLEY_RESPONSE_ENDPOINT_URL=%q: want an absolute http or https URL", c.ResponseURL))
		}
	}
	c.BotOptions = bot.ConfigFromEnv(r)
	if _, err := bot.New(c.Bot, c.BotOptions); err != nil {
		r.Check(fmt.Errorf("PARLEY_BOT=%s: %w", c.Bot, err))
	}
	return c, r.Err()
}
