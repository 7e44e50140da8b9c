// Command delivery is the SQS-triggered Lambda that POSTs bot messages to the
// Response Endpoint URL. It only wires: configuration from the environment, the
// signing secret read once per execution environment, SDK clients created once, then
// the shared handler.
package main

import (
	"context"
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
	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/dynamo"
	"github.com/parley-chat/parley/shared/envvar"
	"github.com/parley-chat/parley/shared/sqsfifo"
	"github.com/parley-chat/parley/shared/webhook"
)

type config struct {
	responseURL, secretARN, queueURL, deadURL, table string
	policy                                           delivery.Policy
	timeout                                          time.Duration
}

// loadConfig reads the environment once and reports every problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	r := envvar.New(getenv)
	c := config{
		responseURL: r.Required("PARLEY_RESPONSE_ENDPOINT_URL"), secretARN: r.String("PARLEY_SIGNING_SECRET_ARN", ""),
		queueURL: r.Required("PARLEY_QUEUE_URL"), deadURL: r.Required("PARLEY_DEAD_LETTER_QUEUE_URL"), table: r.Required("PARLEY_TABLE_NAME"),
	}
	c.policy, c.timeout = delivery.ConfigFromEnv(r)
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
	ctx := context.Background()
	awsCfg, err := awsenv.Config(getenv)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	secrets := ""
	if cfg.secretARN != "" {
		sm := awsenv.SecretsManager(awsCfg, getenv)
		if secrets, err = readSecret(ctx, sm, cfg.secretARN); err != nil {
			return nil, err
		}
	}
	signer, err := webhook.NewSigner(secrets)
	if err != nil {
		return nil, fmt.Errorf("signing secret: %w", err)
	}
	sender, err := webhook.NewSender(webhook.Config{URL: cfg.responseURL, Timeout: cfg.timeout, Signer: signer})
	if err != nil {
		return nil, err
	}
	queue := sqsfifo.New(awsenv.SQS(awsCfg, getenv), cfg.queueURL, cfg.deadURL)
	attempts := dynamo.New(awsenv.DynamoDB(awsCfg, getenv), cfg.table)
	return delivery.New(sender, queue, attempts, cfg.policy, cfg.timeout, log), nil
}

// readSecret reads the signing secret once per cold start. Secrets Manager makes a
// 44-character alphanumeric secret, which is the base64 of a 33-byte key; receivers
// use it as whsec_<secret>. A value holding several secrets (rotation) is kept whole.
func readSecret(ctx context.Context, client *secretsmanager.Client, arn string) (string, error) {
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
