// Command delivery is the SQS-triggered Lambda that runs each turn — the bot answers
// the user message — and POSTs the bot's messages to the Response Endpoint URL, in each
// conversation's order. It only wires: configuration from the environment, the secrets
// read once per execution environment, SDK clients created once, then the shared
// handler.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/parley-chat/parley/shared/awsenv"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/channel"
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/message"
	"github.com/parley-chat/parley/shared/metrics"
	"github.com/parley-chat/parley/shared/settings"
	"github.com/parley-chat/parley/shared/sqsfifo"
)

type config struct {
	responseURL, secretARN, queueURL, deadURL, table string
	bot, llmKeyARN                                   string
	botOptions                                       bot.Options
	settings                                         delivery.Settings
}

// loadConfig reads the environment once and reports every problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	r := envvar.New(getenv)
	c := config{
		responseURL: settings.ResponseEndpointURL.Required(r), secretARN: settings.SigningSecretARN.String(r),
		queueURL: settings.QueueURL.Required(r), deadURL: settings.DeadLetterQueueURL.Required(r), table: settings.TableName.Required(r),
		bot: settings.Bot.String(r), llmKeyARN: settings.LLMAPIKeySecretARN.String(r),
		botOptions: bot.ConfigFromEnv(r),
	}
	c.settings = delivery.ConfigFromEnv(r)
	if c.bot == "llm" && c.llmKeyARN == "" && c.botOptions.LLM.APIKey == "" {
		r.Check(errors.New("PARLEY_LLM_API_KEY_SECRET_ARN is not set: the llm bot needs its API key"))
	}
	return c, r.Err()
}

func main() {
	log := lambdacontext.NewLogger()
	h, err := setup(os.Getenv, log)
	if err != nil {
		log.Error("start", slog.String("error", err.Error()))
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// setup builds the handler from the environment: everything main does but start.
func setup(getenv func(string) string, log *slog.Logger) (*delivery.Handler, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	for _, name := range bot.Unused(cfg.bot, settings.Delivery, getenv) {
		log.Warn("setting does nothing for this bot", slog.String("setting", name), slog.String("bot", cfg.bot))
	}
	ctx := context.Background()
	awsCfg, err := awsenv.Config(getenv)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	var sm *secretsmanager.Client
	if cfg.secretARN != "" || cfg.llmKeyARN != "" {
		sm = awsenv.SecretsManager(awsCfg, getenv)
	}
	secrets := ""
	if cfg.secretARN != "" {
		if secrets, err = readSigningSecret(ctx, sm, cfg.secretARN); err != nil {
			return nil, err
		}
	}
	s := cfg.settings
	store := dynamo.New(awsenv.DynamoDB(awsCfg, getenv), cfg.table)
	opts := cfg.botOptions
	opts.History = store
	if cfg.llmKeyARN != "" {
		// Read once per cold start, not per message.
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(cfg.llmKeyARN)})
		if err != nil {
			return nil, fmt.Errorf("read the llm API key: %w", err)
		}
		opts.LLM.APIKey = aws.ToString(out.SecretString)
	}
	b, err := bot.New(cfg.bot, opts)
	if err != nil {
		return nil, fmt.Errorf("bot: %w", err)
	}
	if sm == nil {
		sm = awsenv.SecretsManager(awsCfg, getenv)
	}
	// The other channels are read from the table, each kept a minute; their llm keys
	// from Secrets Manager, each kept five.
	builder := channel.Builder{Settings: s, History: store, Secrets: awsenv.NewSecrets(sm, 5*time.Minute)}
	def, err := builder.Assemble(message.DefaultChannel, b, cfg.responseURL, secrets, s.Policy, s.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("the deployment's channel: %w", err)
	}
	channels := channel.NewRegistry(def, store, builder)
	queue := sqsfifo.New(awsenv.SQS(awsCfg, getenv), cfg.queueURL, cfg.deadURL)
	return delivery.New(store, queue, channels, delivery.Config{HistoryTTL: s.HistoryTTL, Disable: s.Disable, Metrics: metrics.Recorder{On: true}}, log), nil
}

// readSigningSecret reads the signing secret once per cold start. Secrets Manager makes
// a 44-character alphanumeric secret, which is the base64 of a 33-byte key; receivers
// use it as whsec_<secret>. A value holding several secrets (rotation) is kept whole.
func readSigningSecret(ctx context.Context, client *secretsmanager.Client, arn string) (string, error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("read signing secret: %w", err)
	}
	var parts []string
	for _, s := range strings.Fields(aws.ToString(out.SecretString)) {
		if !strings.HasPrefix(s, "whsec_") {
			s = "whsec_" + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " "), nil
}
