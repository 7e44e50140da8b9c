// Package devstack is the local stack of `make run`: the inbound handler behind
// net/http, the embedded store and queue, the delivery worker and a built-in inbox,
// all in one process with no AWS account.
package devstack

import (
	"fmt"
	"strconv"
	"time"

	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/settings"
	"github.com/parley-chat/parley/shared/webhook"
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
	// Warnings name settings given that do nothing: another bot's.
	Warnings []string
}

// ConfigFromEnv reads the configuration through getenv and reports every bad variable
// at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	r := envvar.New(getenv)
	c := Config{
		Addr:               "127.0.0.1:" + strconv.Itoa(settings.Port.Int(r)),
		Token:              settings.Token.String(r),
		AdminToken:         settings.AdminToken.String(r),
		ResponseURL:        settings.ResponseEndpointURL.String(r),
		Bot:                settings.Bot.String(r),
		SigningSecrets:     settings.SigningSecret.String(r),
		RecordTTL:          settings.RecordTTL.Duration(r),
		Role:               settings.DevRole.String(r),
		TableName:          settings.TableName.String(r),
		QueueURL:           settings.QueueURL.String(r),
		DeadLetterQueueURL: settings.DeadLetterQueueURL.String(r),
	}
	c.Delivery = delivery.ConfigFromEnv(r)
	switch {
	case (c.TableName == "") != (c.QueueURL == "") || (c.TableName != "" && c.DeadLetterQueueURL == ""):
		r.Check(fmt.Errorf("PARLEY_TABLE_NAME, PARLEY_QUEUE_URL and PARLEY_DEAD_LETTER_QUEUE_URL go together: set all three for DynamoDB and SQS, or none"))
	case c.Role != RoleAll && c.TableName == "":
		r.Check(fmt.Errorf("PARLEY_DEV_ROLE=%s needs DynamoDB and SQS (PARLEY_TABLE_NAME, PARLEY_QUEUE_URL, PARLEY_DEAD_LETTER_QUEUE_URL): the embedded parts live in one process", c.Role))
	}
	if c.SigningSecrets != "" {
		if _, err := webhook.NewSigner(c.SigningSecrets); err != nil {
			r.Check(fmt.Errorf("PARLEY_SIGNING_SECRET: %w", err))
		}
	}
	c.BotOptions = bot.ConfigFromEnv(r)
	if c.Bot == "llm" && c.BotOptions.LLM.APIKey == "" && bot.Hosted(c.BotOptions.LLM.BaseURL) {
		r.Check(fmt.Errorf("PARLEY_BOT=llm: a hosted provider needs PARLEY_LLM_API_KEY (or point PARLEY_LLM_BASE_URL at a local server such as Ollama)"))
	}
	if _, err := bot.New(c.Bot, c.BotOptions); err != nil {
		r.Check(fmt.Errorf("PARLEY_BOT=%s: %w", c.Bot, err))
	}
	c.Warnings = bot.Unused(c.Bot, settings.Local, getenv)
	return c, r.Err()
}
