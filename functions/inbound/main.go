// Command inbound is the Lambda behind API Gateway (HTTP API, payload 2.0) that
// accepts user messages and hands each turn to the delivery queue. It only wires:
// configuration from the environment, SDK clients created once per execution
// environment, then the shared handler. The bot does not run here.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/parley-chat/parley/shared/awsenv"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/inbound"
	"github.com/parley-chat/parley/shared/metrics"
	"github.com/parley-chat/parley/shared/settings"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/token"
)

type config struct {
	table, queueURL       string
	recordTTL, historyTTL time.Duration
}

// loadConfig reads the environment once and reports every problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	r := envvar.New(getenv)
	c := config{
		table: settings.TableName.Required(r), queueURL: settings.QueueURL.Required(r),
		recordTTL: settings.RecordTTL.Duration(r), historyTTL: settings.HistoryTTL.Duration(r),
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
	return inbound.New(store, queue, token.NewTable(store, time.Minute), inbound.Config{RecordTTL: cfg.recordTTL, HistoryTTL: cfg.historyTTL, Metrics: metrics.Recorder{On: true}}, log), nil
}
