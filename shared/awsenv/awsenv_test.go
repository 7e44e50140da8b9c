package awsenv

import (
	"context"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	env := map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "tok"}
	cfg, err := Config(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || cfg.Region != "eu-west-1" || creds.AccessKeyID != "AKID" || creds.SecretAccessKey != "secret" || creds.SessionToken != "tok" {
		t.Errorf("config = %s %+v %v", cfg.Region, creds, err)
	}
	_, err = Config(func(k string) string { return map[string]string{"AWS_ACCESS_KEY_ID": "x"}[k] })
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("missing variables: %v, want both named", err)
	}
}

func TestEndpoint(t *testing.T) {
	env := map[string]string{"AWS_ENDPOINT_URL": "http://all", "AWS_ENDPOINT_URL_SQS": "http://sqs"}
	get := func(k string) string { return env[k] }
	if got := Endpoint(get, "SQS"); got == nil || *got != "http://sqs" {
		t.Errorf("SQS endpoint = %v", got)
	}
	if got := Endpoint(get, "DYNAMODB"); got == nil || *got != "http://all" {
		t.Errorf("DynamoDB endpoint = %v, want the general one", got)
	}
	if got := Endpoint(func(string) string { return "" }, "SQS"); got != nil {
		t.Errorf("endpoint = %v, want nil", *got)
	}
}
