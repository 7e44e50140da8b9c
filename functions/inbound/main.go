// Command inbound is the Lambda behind API Gateway (HTTP API, payload 2.0) that
// accepts user messages. It only wires: configuration from the environment, SDK
// clients created once per execution environment, then the shared handler.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parley-chat/parley/shared/awsenv"
	"github.com/parley-chat/parley/shared/bot"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
)

type config struct {
	table, queueURL, bot  string
	recordTTL, botTimeout time.Duration
}

// loadConfig reads the environment once and reports every problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{table: getenv("PARLEY_TABLE_NAME"), queueURL: getenv("PARLEY_QUEUE_URL"), bot: getenv("PARLEY_BOT"),
		recordTTL: 7 * 24 * time.Hour, botTimeout: 10 * time.Second}
	var errs []error
	for name, v := range map[string]string{"PARLEY_TABLE_NAME": c.table, "PARLEY_QUEUE_URL": c.queueURL} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	if _, err := bot.New(c.bot); err != nil {
		errs = append(errs, fmt.Errorf("PARLEY_BOT: %w", err))
	}
	for name, dst := range map[string]*time.Duration{"PARLEY_RECORD_TTL": &c.recordTTL, "PARLEY_BOT_TIMEOUT": &c.botTimeout} {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive Go duration", name, v))
			}
			*dst = d
		}
	}
	return c, errors.Join(errs...)
}

func main() {
	log := lambdacontext.NewLogger()
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		log.Error("configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	awsCfg, err := awsenv.Config(os.Getenv)
	if err != nil {
		log.Error("aws configuration", slog.String("error", err.Error()))
		os.Exit(1)
	}
	ddb := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.BaseEndpoint = awsenv.Endpoint(os.Getenv, "DYNAMODB") })
	sq := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) { o.BaseEndpoint = awsenv.Endpoint(os.Getenv, "SQS") })
	store := dynamo.New(ddb, cfg.table)
	queue := sqsfifo.New(sq, cfg.queueURL, "")
	b, _ := bot.New(cfg.bot)
	h := inbound.New(store, queue, b, token.NewTable(store, time.Minute),
		inbound.Config{RecordTTL: cfg.recordTTL, BotTimeout: cfg.botTimeout}, log)
	lambda.Start(h.Handle)
}
