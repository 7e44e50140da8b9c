// Command inbound is the Lambda behind API Gateway (HTTP API, payload 2.0) that
// accepts user messages. It only wires: configuration from the environment, SDK
// clients and the bot created once per execution environment, then the shared handler.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/parley-chat/parley/shared/awsenv"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
)

type config struct {
	table, queueURL, bot, llmKeyARN   string
	botOptions                        bot.Options
	recordTTL, historyTTL, botTimeout time.Duration
}

// loadConfig reads the environment once and reports every problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	r := envvar.New(getenv)
	c := config{
		table: r.Required("PARLEY_TABLE_NAME"), queueURL: r.Required("PARLEY_QUEUE_URL"),
		bot: r.String("PARLEY_BOT", "echo"), llmKeyARN: r.String("PARLEY_LLM_API_KEY_SECRET_ARN", ""),
		botOptions: bot.ConfigFromEnv(r),
		recordTTL:  r.Duration("PARLEY_RECORD_TTL", 7*24*time.Hour, time.Minute, 365*24*time.Hour),
		historyTTL: r.Duration("PARLEY_HISTORY_TTL", 30*24*time.Hour, time.Minute, 365*24*time.Hour),
		botTimeout: r.Duration("PARLEY_BOT_TIMEOUT", 10*time.Second, time.Millisecond, 25*time.Second),
	}
	if !slices.Contains(bot.Names, c.bot) {
		r.Check(fmt.Errorf("PARLEY_BOT=%q: want one of %v", c.bot, bot.Names))
	}
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
func setup(getenv func(string) string, log *slog.Logger) (*inbound.Handler, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	awsCfg, err := awsenv.Config(getenv)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	store := dynamo.New(awsenv.DynamoDB(awsCfg, getenv), cfg.table)
	queue := sqsfifo.New(awsenv.SQS(awsCfg, getenv), cfg.queueURL, "")

	opts := cfg.botOptions
	opts.History = store
	if cfg.llmKeyARN != "" {
		// Read once per cold start, not per message.
		sm := awsenv.SecretsManager(awsCfg, getenv)
		out, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(cfg.llmKeyARN)})
		if err != nil {
			return nil, fmt.Errorf("read the llm API key: %w", err)
		}
		opts.LLM.APIKey = aws.ToString(out.SecretString)
	}
	b, err := bot.New(cfg.bot, opts)
	if err != nil {
		return nil, fmt.Errorf("bot: %w", err)
	}
	return inbound.New(store, queue, b, token.NewTable(store, time.Minute), inbound.Config{
		RecordTTL: cfg.recordTTL, BotTimeout: cfg.botTimeout, History: store, HistoryTTL: cfg.historyTTL,
	}, log), nil
}
