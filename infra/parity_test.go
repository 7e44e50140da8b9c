package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/intrinsics"
)

// The SAM template (../template.yaml) and the CDK stack describe one system. These tests
// read both into a system (system_test.go) and compare everything a deploy depends on:
// a change to one without the other fails here.

func readSAMTemplate(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// samParams are the SAM parameter values that match a CDK configuration.
func samParams(cfg Config) map[string]any {
	return map[string]any{
		"Stage":                        cfg.Stage,
		"ResponseEndpointUrl":          cfg.ResponseEndpointURL,
		"Bot":                          cfg.Bot,
		"RecordTtl":                    cfg.RecordTTL,
		"RetryMinDelay":                cfg.RetryMinDelay,
		"RetryMaxDelay":                cfg.RetryMaxDelay,
		"MaxAttempts":                  strconv.Itoa(cfg.MaxAttempts),
		"DeliveryTimeout":              cfg.DeliveryTimeout,
		"OldestMessageAgeAlarmSeconds": cfg.OldestMessageAge.Seconds(),
	}
}

func samSystem(data []byte, params map[string]any) (*system, error) {
	raw, err := processTemplate(data, true, params)
	if err != nil {
		return nil, err
	}
	return loadSystem(raw)
}

// compareSystems lists how sam differs from cdk.
func compareSystems(cdk, sam *system) []string {
	return diff("template.yaml", sam, cdk)
}

func TestParity(t *testing.T) {
	s := defaultSynth(t)
	cdk := cdkSystem(t, s)
	// Only the Response Endpoint URL has no default in either.
	sam, err := samSystem(readSAMTemplate(t), map[string]any{"ResponseEndpointUrl": testEndpoint})
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	for _, d := range compareSystems(cdk, sam) {
		t.Error(d)
	}

	// The comparison covers what it should: a sanity check of the CDK side.
	in, out := cdk.Functions["InboundFunction"], cdk.Functions["DeliveryFunction"]
	if in == nil || out == nil {
		t.Fatalf("functions: got %v", cdk.Functions)
	}
	if len(in.Environment) != 4 || len(out.Environment) != 8 || !slices.Equal(in.Routes, []string{"$default"}) ||
		len(out.Queues) != 1 || len(cdk.Queues) != 2 || len(cdk.Tables) != 1 || len(cdk.Alarms) != 6 || len(cdk.Outputs) != 5 {
		t.Errorf("CDK system is missing parts: %+v %+v %+v", cdk, in, out)
	}
}

// TestParityWithSettings synthesizes the stack with every setting changed and gives the
// SAM template the matching parameters: still one system, the receive budget included.
func TestParityWithSettings(t *testing.T) {
	s := synth(t, map[string]any{
		keyBot: "parrot", keyRecordTTL: "24h", keyRetryMinDelay: "1s", keyRetryMaxDelay: "1h",
		keyMaxAttempts: "5", keyDeliveryTimeout: "20s", keyOldestMessageAge: "30m",
	}, false)
	cdk := cdkSystem(t, s)
	sam, err := samSystem(readSAMTemplate(t), samParams(s.cfg))
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	for _, d := range compareSystems(cdk, sam) {
		t.Error(d)
	}
	if got := sam.Queues["DeliveryQueue"].MaxReceiveCount; got != 6 {
		t.Errorf("SAM maxReceiveCount for MaxAttempts=5: got %d, want 6", got)
	}

	// And the CDK side changed alone is caught.
	samDefaults, err := samSystem(readSAMTemplate(t), map[string]any{"ResponseEndpointUrl": testEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	diffs := strings.Join(compareSystems(cdk, samDefaults), "\n")
	for _, want := range []string{"MaxReceiveCount", "PARLEY_MAX_ATTEMPTS", "PARLEY_BOT", "Threshold"} {
		if !strings.Contains(diffs, want) {
			t.Errorf("changing %s in CDK alone went unnoticed; differences:\n%s", want, diffs)
		}
	}
}

// TestParityCatchesDrift changes template.yaml one way at a time, as someone editing
// only the SAM side would, and expects the comparison to notice every change.
func TestParityCatchesDrift(t *testing.T) {
	cdk := cdkSystem(t, defaultSynth(t))
	original := string(readSAMTemplate(t))
	tests := []struct {
		name, old, new string
		want           string // in the reported differences
	}{
		{"runtime", "Runtime: provided.al2023", "Runtime: provided.al2", "Runtime"},
		{"architecture", "Architectures: [arm64]", "Architectures: [x86_64]", "Architectures"},
		{"handler", "Handler: bootstrap", "Handler: main", "Handler"},
		{"inbound memory", "MemorySize: 256", "MemorySize: 512", "InboundFunction].MemorySize"},
		{"delivery timeout", "Timeout: 120", "Timeout: 60", "DeliveryFunction].Timeout"},
		{"env var removed", "          PARLEY_BOT: !Ref Bot\n", "", "PARLEY_BOT"},
		{"env var renamed", "PARLEY_DEAD_LETTER_QUEUE_URL:", "PARLEY_DLQ_URL:", "PARLEY_DLQ_URL"},
		{"env default", "Default: 12h", "Default: 6h", "PARLEY_RETRY_MAX_DELAY"},
		{"log format", "LogFormat: JSON", "LogFormat: Text", "LogFormat"},
		{"log retention", "RetentionInDays: 30", "RetentionInDays: 7", "LogRetention"},
		{"sort key", "        - {AttributeName: sk, KeyType: RANGE}\n", "", "Keys"},
		{"TTL attribute", "AttributeName: expiresAt", "AttributeName: ttl", "TimeToLive"},
		{"point-in-time recovery", "PointInTimeRecoveryEnabled: true", "PointInTimeRecoveryEnabled: false", "PointInTime"},
		{"table retention", "  Table:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain", "  Table:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Delete", "DeletionPolicy"},
		{"dead-letter queue not FIFO", "  DeadLetterQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      FifoQueue: true", "  DeadLetterQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      FifoQueue: false", "DeadLetterQueue].Fifo"},
		{"content-based dedup", "ContentBasedDeduplication: false # the code", "ContentBasedDeduplication: true # the code", "ContentBasedDeduplication"},
		{"visibility timeout", "VisibilityTimeout: 720", "VisibilityTimeout: 300", "VisibilityTimeout"},
		{"receive budget", `"11": {MaxReceiveCount: 12}`, `"11": {MaxReceiveCount: 11}`, "MaxReceiveCount"},
		{"dead-letter target", "deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn", "deadLetterTargetArn: !GetAtt DeliveryQueue.Arn", "DeadLetterTarget"},
		{"batch size", "BatchSize: 10", "BatchSize: 5", "BatchSize"},
		{"batch item failures", "            FunctionResponseTypes: [ReportBatchItemFailures]\n", "", "FunctionResponseTypes"},
		{"maximum concurrency", "MaximumConcurrency: 10", "MaximumConcurrency: 5", "MaximumConcurrency"},
		{"catch-all route", "        Proxy:\n          Type: HttpApi\n          Properties:\n            Path: /{proxy+}", "        Proxy:\n          Type: HttpApi\n          Properties:\n            Path: /messages", "Routes"},
		{"payload format", `PayloadFormatVersion: "2.0"`, `PayloadFormatVersion: "1.0"`, "PayloadFormatVersion"},
		{"extra action", "                  - dynamodb:Query\n", "                  - dynamodb:Query\n                  - dynamodb:Scan\n", "dynamodb:Scan"},
		{"missing action", "                  - sqs:GetQueueUrl\n", "", "sqs:GetQueueUrl"},
		{"wider resource", "Resource: !Ref SigningSecret", "Resource: '*'", "SigningSecret"},
		{"managed policy", "policy/service-role/AWSLambdaBasicExecutionRole", "policy/AdministratorAccess", "ManagedPolicies"},
		{"secret length", "PasswordLength: 44", "PasswordLength: 32", "PasswordLength"},
		{"alarm threshold", "Default: 3600", "Default: 7200", "Threshold"},
		{"alarm metric", "MetricName: Throttles", "MetricName: Invocations", "Metric"},
		{"output", "  SigningSecretArn:\n    Description", "  SecretArn:\n    Description", "Outputs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(original, tt.old) {
				t.Fatalf("template.yaml has no %q to change", tt.old)
			}
			mutated := strings.Replace(original, tt.old, tt.new, 1)
			sam, err := samSystem([]byte(mutated), map[string]any{"ResponseEndpointUrl": testEndpoint})
			if err != nil {
				t.Fatalf("read mutated template.yaml: %v", err)
			}
			diffs := compareSystems(cdk, sam)
			if !strings.Contains(strings.Join(diffs, "\n"), tt.want) {
				t.Errorf("changing %q to %q: want a difference in %s, got %q", tt.old, tt.new, tt.want, diffs)
			}
		})
	}
}

// TestSAMTemplate checks what only SAM has: the transform, the makefile build, the
// parameters (with the CDK defaults), the receive-budget mapping and the alarm topic.
func TestSAMTemplate(t *testing.T) {
	data := readSAMTemplate(t)
	var doc struct {
		Transform  string
		Parameters map[string]struct {
			Default        any
			AllowedPattern string
		}
		Mappings  map[string]map[string]map[string]float64
		Resources map[string]struct {
			Type       string
			Condition  string
			Metadata   map[string]any
			Properties map[string]any
		}
	}
	if err := decodeTemplate(data, true, &intrinsics.ProcessorOptions{NoProcess: true}, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Transform != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform: got %q", doc.Transform)
	}
	for _, name := range []string{"InboundFunction", "DeliveryFunction"} {
		r := doc.Resources[name]
		if r.Type != "AWS::Serverless::Function" || r.Metadata["BuildMethod"] != "makefile" || r.Properties["CodeUri"] != "." {
			t.Errorf("%s: got type %s, metadata %v, CodeUri %v; want a function built by the makefile method from .", name, r.Type, r.Metadata, r.Properties["CodeUri"])
		}
	}

	// Parameter defaults are the CDK defaults.
	cfg, err := LoadConfig(lookupIn(map[string]any{keyResponseEndpointURL: testEndpoint}))
	if err != nil {
		t.Fatal(err)
	}
	want := samParams(cfg)
	delete(want, "ResponseEndpointUrl")
	for name, value := range want {
		p, ok := doc.Parameters[name]
		if !ok {
			t.Errorf("no parameter %s", name)
			continue
		}
		if got, want := fmt.Sprint(p.Default), fmt.Sprint(value); got != want {
			t.Errorf("parameter %s default: got %v, want %v", name, p.Default, value)
		}
	}
	if p, ok := doc.Parameters["ResponseEndpointUrl"]; !ok || p.Default != nil {
		t.Errorf("ResponseEndpointUrl must be a parameter without a default: got %+v", p)
	}

	// The mapping covers exactly the attempts the CDK app accepts, each +1.
	budget := doc.Mappings["ReceiveBudget"]
	if len(budget) != maxMaxAttempts {
		t.Errorf("ReceiveBudget has %d entries, want %d", len(budget), maxMaxAttempts)
	}
	for n := 1; n <= maxMaxAttempts; n++ {
		if got := budget[strconv.Itoa(n)]["MaxReceiveCount"]; got != float64(n+1) {
			t.Errorf("ReceiveBudget[%d]: got %v, want %d", n, got, n+1)
		}
	}

	// With AlarmEmail set, every alarm notifies the topic.
	if doc.Resources["AlarmTopic"].Condition != "HasAlarmEmail" {
		t.Errorf("AlarmTopic condition: got %q, want HasAlarmEmail", doc.Resources["AlarmTopic"].Condition)
	}
	raw, err := processTemplate(data, true, map[string]any{"ResponseEndpointUrl": testEndpoint, "AlarmEmail": "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	alarms := 0
	for name, res := range raw.Resources {
		var r struct {
			Type       string
			Properties struct{ AlarmActions, OKActions []string }
		}
		if json.Unmarshal(res, &r) != nil || r.Type != "AWS::CloudWatch::Alarm" {
			continue // including AlarmTopic, which goformation replaces by its condition
		}
		alarms++
		if !slices.Equal(r.Properties.AlarmActions, []string{"ref:AlarmTopic"}) || !slices.Equal(r.Properties.OKActions, []string{"ref:AlarmTopic"}) {
			t.Errorf("%s actions with AlarmEmail set: got %v / %v, want [ref:AlarmTopic]", name, r.Properties.AlarmActions, r.Properties.OKActions)
		}
	}
	if alarms != 6 {
		t.Errorf("alarms: got %d, want 6", alarms)
	}
}

// TestSAMBuildMatchesBundling: `sam build` runs the root Makefile's build-<Function>
// targets; they must build what the CDK app bundles, the same way.
func TestSAMBuildMatchesBundling(t *testing.T) {
	for name, pkg := range map[string]string{"InboundFunction": "./functions/inbound", "DeliveryFunction": "./functions/delivery"} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("make", "--no-print-directory", "-n", "build-"+name, "ARTIFACTS_DIR=/artifacts")
			cmd.Dir = repoRoot(t)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("make -n build-%s: %v", name, err)
			}
			env, args := map[string]string{}, []string(nil)
			for _, word := range shellWords(strings.TrimSpace(string(out))) {
				if k, v, ok := strings.Cut(word, "="); ok && len(args) == 0 && !strings.HasPrefix(word, "-") {
					env[k] = v
					continue
				}
				args = append(args, word)
			}
			wantEnv := map[string]string{}
			for _, kv := range buildEnv {
				k, v, _ := strings.Cut(kv, "=")
				wantEnv[k] = v
			}
			wantArgs := append([]string{"go"}, buildArgs(pkg, "/artifacts")...)
			if !slices.Equal(args, wantArgs) || fmt.Sprint(env) != fmt.Sprint(wantEnv) {
				t.Errorf("make build-%s runs %v %q,\nthe CDK app runs %v %q", name, env, args, wantEnv, wantArgs)
			}
		})
	}
}

// shellWords splits a command line on spaces outside double or single quotes.
func shellWords(s string) []string {
	var words []string
	var word strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
