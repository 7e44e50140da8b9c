package awsenv

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// DynamoDB returns a DynamoDB client honouring AWS_ENDPOINT_URL_DYNAMODB.
func DynamoDB(cfg aws.Config, getenv func(string) string, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	endpoint := Endpoint(getenv, "DYNAMODB")
	return dynamodb.NewFromConfig(cfg, append([]func(*dynamodb.Options){func(o *dynamodb.Options) { o.BaseEndpoint = endpoint }}, opts...)...)
}

// SQS returns an SQS client honouring AWS_ENDPOINT_URL_SQS.
func SQS(cfg aws.Config, getenv func(string) string) *sqs.Client {
	endpoint := Endpoint(getenv, "SQS")
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = endpoint })
}

// SecretsManager returns a Secrets Manager client honouring
// AWS_ENDPOINT_URL_SECRETS_MANAGER (the SDKs' name for the service).
func SecretsManager(cfg aws.Config, getenv func(string) string) *secretsmanager.Client {
	endpoint := Endpoint(getenv, "SECRETS_MANAGER")
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = endpoint })
}
