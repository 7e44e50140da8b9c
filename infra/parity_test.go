package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

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

// samParams are the SAM parameter values that match a CDK configuration. A rules file
// is the one setting SAM cannot take: RulesFilePath says where the user put it. SAM
// takes the bot timeout in seconds and the TTLs in hours; the configurations compared
// give them in those units, so that the functions' environments read the same.
// Number parameters are float64, as goformation reads YAML numbers.
func samParams(cfg Config) map[string]any {
	rulesFilePath := ""
	if cfg.RulesFile != "" {
		rulesFilePath = rulesFileOnLambda
	}
	in := func(text string, unit time.Duration) float64 {
		d, err := time.ParseDuration(text)
		if err != nil {
			panic(err) // LoadConfig checked it
		}
		return float64(d / unit)
	}
	rateLimit, err := strconv.ParseFloat(cfg.EndpointRateLimit, 64)
	if err != nil {
		panic(err) // LoadConfig checked it
	}
	return map[string]any{
		"Stage":                        cfg.Stage,
		"ResponseEndpointUrl":          cfg.ResponseEndpointURL,
		"Bot":                          cfg.Bot,
		"RulesFilePath":                rulesFilePath,
		"HttpBotUrl":                   cfg.HTTPBotURL,
		"LlmProvider":                  cmp.Or(cfg.LLM.Provider, defaults[keyLLMProvider]),
		"LlmBaseUrl":                   cfg.LLM.BaseURL,
		"LlmModel":                     cfg.LLM.Model,
		"LlmSystemPrompt":              cfg.LLM.SystemPrompt,
		"LlmTemperature":               cfg.LLM.Temperature,
		"LlmMaxTokens":                 cfg.LLM.MaxTokens,
		"LlmHistory":                   cfg.LLM.History,
		"LlmApiKeySecretName":          cfg.LLM.APIKeySecretName,
		"BotTimeoutSeconds":            strconv.FormatFloat(in(cfg.BotTimeout, time.Second), 'f', -1, 64),
		"RecordTtlHours":               in(cfg.RecordTTL, time.Hour),
		"HistoryTtlHours":              in(cfg.HistoryTTL, time.Hour),
		"MaxConcurrency":               float64(cfg.MaxConcurrency),
		"RetryMinDelay":                cfg.RetryMinDelay,
		"RetryMaxDelay":                cfg.RetryMaxDelay,
		"MaxAttempts":                  strconv.Itoa(cfg.MaxAttempts),
		"DeliveryTimeout":              cfg.DeliveryTimeout,
		"OldestMessageAgeAlarmSeconds": cfg.OldestMessageAge.Seconds(),
		"HoldLimit":                    cfg.HoldLimit,
		"DisableAfterFailures":         float64(cfg.DisableAfterFailures),
		"DisableAfterHours":            in(cfg.DisableAfter, time.Hour),
		"EndpointRateLimit":            rateLimit,
		"Tracing":                      cfg.Tracing,
		"FailedAttemptsAlarmThreshold": float64(cfg.FailedAttemptsAlarm),
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
	if len(in.Environment) != 3 || len(out.Environment) != 16 || !slices.Equal(in.Routes, []string{"$default"}) ||
		len(out.Queues) != 1 || len(cdk.Queues) != 2 || len(cdk.Tables) != 1 || len(cdk.Alarms) != 9 || len(cdk.Outputs) != 5 {
		t.Errorf("CDK system is missing parts: %+v %+v %+v", cdk, in, out)
	}
	if d, ok := cdk.Dashboards["Dashboard"]; !ok || len(dashboardWidgets(d)) != 9 {
		t.Errorf("CDK dashboard: got %+v, want 9 widgets", cdk.Dashboards)
	}
}

// dashboardWidgets are a dashboard body's widgets, nil when it has none.
func dashboardWidgets(d dashboard) []any {
	body, _ := d.Body.(map[string]any)
	widgets, _ := body["widgets"].([]any)
	return widgets
}

// everySetting changes every setting that is not a bot's from its default: the
// parity tests synthesize the stack with it and give SAM the matching parameters.
var everySetting = map[string]any{
	keyBot: "rules", keyRecordTTL: "400h", keyRetryMinDelay: "1s", keyRetryMaxDelay: "1h",
	keyMaxAttempts: "5", keyDeliveryTimeout: "20s", keyOldestMessageAge: "30m",
	keyHistoryTTL: "2160h", keyBotTimeout: "180s", keyMaxConcurrency: "50",
	keyHoldLimit: "6h", keyDisableAfterFails: "5", keyDisableAfter: "48h", keyEndpointRateLimit: "2.5",
	keyTracing: "active", keyFailedAttemptsAlarm: "40",
}

// TestParityWithSettings synthesizes the stack with every setting changed and gives the
// SAM template the matching parameters: still one system, the receive budget and the
// timing that follows the bot timeout included.
func TestParityWithSettings(t *testing.T) {
	s := synth(t, everySetting, false)
	cdk := cdkSystem(t, s)
	sam, err := samSystem(readSAMTemplate(t), samParams(s.cfg))
	if err != nil {
		t.Fatalf("read template.yaml: %v", err)
	}
	for _, d := range compareSystems(cdk, sam) {
		t.Error(d)
	}
	if got := sam.Queues["DeliveryQueue"].MaxReceiveCount; got != 1000 {
		t.Errorf("SAM maxReceiveCount for MaxAttempts=5: got %d, want 1000 (not derived from MaxAttempts)", got)
	}

	// And the CDK side changed alone is caught.
	samDefaults, err := samSystem(readSAMTemplate(t), map[string]any{"ResponseEndpointUrl": testEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	diffs := strings.Join(compareSystems(cdk, samDefaults), "\n")
	for _, want := range []string{"PARLEY_MAX_ATTEMPTS", "PARLEY_BOT]", "PARLEY_HISTORY_TTL", "PARLEY_RECORD_TTL", "PARLEY_BOT_TIMEOUT",
		"Threshold", "DeliveryFunction].Timeout", "DeliveryQueue].VisibilityTimeout", "MaximumConcurrency",
		"PARLEY_HOLD_LIMIT", "PARLEY_DISABLE_AFTER_FAILURES", "PARLEY_DISABLE_AFTER]", "PARLEY_ENDPOINT_RATE_LIMIT",
		"InboundFunction].Tracing", "DeliveryFunction].Tracing", "InboundFunction].Permissions[*]", "DeliveryFunction].Permissions[*]",
		"FailedAttemptsHigh].Threshold", "Dashboards[Dashboard].Body[widgets][5][properties][annotations]"} {
		if !strings.Contains(diffs, want) {
			t.Errorf("changing %s in CDK alone went unnoticed; differences:\n%s", want, diffs)
		}
	}
}

// TestParityBots: each bot configuration of the CDK app and the SAM template with the
// matching parameters are one system, environment values and permissions included;
// and the parameter values pass the template's own checks.
func TestParityBots(t *testing.T) {
	data := readSAMTemplate(t)
	doc := readSAMDoc(t, data)
	for name, context := range botContexts(t) {
		t.Run(name, func(t *testing.T) {
			s := synth(t, context, false)
			cdk := cdkSystem(t, s)
			params := samParams(s.cfg)
			sam, err := samSystem(data, params)
			if err != nil {
				t.Fatalf("read template.yaml: %v", err)
			}
			for _, d := range compareSystems(cdk, sam) {
				t.Error(d)
			}
			for p, v := range params {
				if err := doc.checkParameter(p, fmt.Sprint(v)); err != nil {
					t.Error(err)
				}
			}
			if failed := failedRules(t, data, params); len(failed) > 0 {
				t.Errorf("template rules fail: %v", failed)
			}
		})
	}
}

// TestSAMRules: the template's Rules refuse a bot without its required parameters, as
// the CDK app refuses the context.
func TestSAMRules(t *testing.T) {
	base := map[string]any{"ResponseEndpointUrl": testEndpoint}
	for _, tt := range []struct {
		params map[string]any
		want   []string
	}{
		{map[string]any{}, nil},
		{map[string]any{"Bot": "http"}, []string{"Bot=http needs HttpBotUrl."}},
		{map[string]any{"Bot": "llm"}, []string{"Bot=llm needs LlmApiKeySecretName.", "Bot=llm needs LlmModel."}},
		{map[string]any{"Bot": "llm", "LlmModel": "m"}, []string{"Bot=llm needs LlmApiKeySecretName."}},
		{map[string]any{"Bot": "llm", "LlmModel": "m", "LlmApiKeySecretName": "k"}, nil},
		{map[string]any{"Bot": "echo", "LlmModel": "m"}, nil},
	} {
		params := maps.Clone(base)
		maps.Copy(params, tt.params)
		if got := failedRules(t, readSAMTemplate(t), params); !slices.Equal(got, tt.want) {
			t.Errorf("parameters %v: failing rules %v, want %v", tt.params, got, tt.want)
		}
	}
}

// failedRules evaluates the template's Rules with the parameters, as CloudFormation
// does before a deploy, and returns the failing assertions' descriptions, sorted. It
// also checks that every condition evaluates: one that does not would make each
// !If on it quietly drop its value.
func failedRules(t *testing.T, data []byte, params map[string]any) []string {
	t.Helper()
	var doc struct {
		Conditions map[string]any
		Rules      map[string]struct {
			RuleCondition *bool
			Assertions    []struct {
				Assert            any
				AssertDescription string
			}
		}
	}
	if err := decodeTemplate(data, true, processorOptions(params), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rules) == 0 {
		t.Fatal("template.yaml has no Rules")
	}
	for name, c := range doc.Conditions {
		if _, ok := c.(bool); !ok {
			t.Errorf("condition %s does not evaluate: %v", name, c)
		}
	}
	var failed []string
	for name, r := range doc.Rules {
		if r.RuleCondition != nil && !*r.RuleCondition {
			continue
		}
		for _, a := range r.Assertions {
			switch a.Assert {
			case true:
			case false:
				failed = append(failed, a.AssertDescription)
			default:
				t.Errorf("rule %s: assertion %q did not evaluate: %v", name, a.AssertDescription, a.Assert)
			}
		}
	}
	sort.Strings(failed)
	return failed
}

// channelKeysStatement is template.yaml's statement that lets the delivery function read
// the channels' llm keys.
const channelKeysStatement = "              - Effect: Allow\n                Action: secretsmanager:GetSecretValue\n" +
	"                Resource: !Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:parley/*\n"

// xrayStatement is template.yaml's X-Ray statement in the inbound function's role.
const xrayStatement = "              - !If\n                - TracingActive\n                - Effect: Allow\n" +
	"                  Action: [xray:PutTraceSegments, xray:PutTelemetryRecords]\n                  Resource: \"*\"\n                - !Ref AWS::NoValue\n"

// TestParityCatchesDrift changes template.yaml one way at a time, as someone editing
// only the SAM side would, and expects the comparison to notice every change.
func TestParityCatchesDrift(t *testing.T) {
	cdk := cdkSystem(t, defaultSynth(t))
	llmStack := synth(t, botContexts(t)["llm with every setting"], false)
	cdkLLM, llmParams := cdkSystem(t, llmStack), samParams(llmStack.cfg)
	original := string(readSAMTemplate(t))
	tests := []struct {
		name, old, new string
		want           string // in the reported differences
		llm            bool   // compare with the llm bot's configuration
	}{
		{"runtime", "Runtime: provided.al2023", "Runtime: provided.al2", "Runtime", false},
		{"architecture", "Architectures: [arm64]", "Architectures: [x86_64]", "Architectures", false},
		{"handler", "Handler: bootstrap", "Handler: main", "Handler", false},
		{"inbound memory", "MemorySize: 256", "MemorySize: 512", "InboundFunction].MemorySize", false},
		// The timeout before the erasure endpoints; and API Gateway's own limit.
		{"inbound timeout", "      Timeout: 29\n", "      Timeout: 10\n", "InboundFunction].Timeout", false},
		{"inbound timeout too long", "      Timeout: 29\n", "      Timeout: 30\n", "InboundFunction].Timeout", false},
		{"delivery timeout", "Timeout: !FindInMap [DeliveryTiming, !Ref BotTimeoutSeconds, FunctionTimeout]", "Timeout: 120", "DeliveryFunction].Timeout", false},
		{"delivery timing row", `"30": {FunctionTimeout: 110,`, `"30": {FunctionTimeout: 100,`, "DeliveryFunction].Timeout", false},
		{"visibility timing row", "VisibilityTimeout: 660}", "VisibilityTimeout: 720}", "DeliveryQueue].VisibilityTimeout", false},
		{"visibility timeout", "VisibilityTimeout: !FindInMap [DeliveryTiming, !Ref BotTimeoutSeconds, VisibilityTimeout]", "VisibilityTimeout: 720", "VisibilityTimeout", false},
		{"timing column swapped", "Timeout: !FindInMap [DeliveryTiming, !Ref BotTimeoutSeconds, FunctionTimeout]", "Timeout: !FindInMap [DeliveryTiming, !Ref BotTimeoutSeconds, VisibilityTimeout]", "DeliveryFunction].Timeout", false},
		{"bot timeout default", "    Default: \"30\"\n", "    Default: \"60\"\n", "PARLEY_BOT_TIMEOUT", false},
		{"env var removed", "          PARLEY_BOT: !Ref Bot\n", "", "PARLEY_BOT", false},
		{"bot setting on inbound", "          PARLEY_RECORD_TTL: !Sub \"${RecordTtlHours}h\"\n", "          PARLEY_RECORD_TTL: !Sub \"${RecordTtlHours}h\"\n          PARLEY_BOT: !Ref Bot\n", "InboundFunction].Environment[PARLEY_BOT]", false},
		{"env var renamed", "PARLEY_DEAD_LETTER_QUEUE_URL:", "PARLEY_DLQ_URL:", "PARLEY_DLQ_URL", false},
		{"env default", "Default: 12h", "Default: 6h", "PARLEY_RETRY_MAX_DELAY", false},
		{"record TTL default", "    Default: 360\n", "    Default: 400\n", "PARLEY_RECORD_TTL", false},
		{"record TTL unit", `PARLEY_RECORD_TTL: !Sub "${RecordTtlHours}h"`, `PARLEY_RECORD_TTL: !Sub "${RecordTtlHours}d"`, "PARLEY_RECORD_TTL", false},
		{"history TTL default", "    Default: 720\n", "    Default: 700\n", "PARLEY_HISTORY_TTL", false},
		{"bot timeout missing", "          PARLEY_BOT_TIMEOUT: !Sub \"${BotTimeoutSeconds}s\"\n", "", "PARLEY_BOT_TIMEOUT", false},
		{"log format", "LogFormat: JSON", "LogFormat: Text", "LogFormat", false},
		{"log retention", "RetentionInDays: 30", "RetentionInDays: 7", "LogRetention", false},
		{"sort key", "        - {AttributeName: sk, KeyType: RANGE}\n", "", "Keys", false},
		{"TTL attribute", "AttributeName: expiresAt", "AttributeName: ttl", "TimeToLive", false},
		{"point-in-time recovery", "PointInTimeRecoveryEnabled: true", "PointInTimeRecoveryEnabled: false", "PointInTime", false},
		{"table retention", "  Table:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain", "  Table:\n    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Delete", "DeletionPolicy", false},
		{"dead-letter queue not FIFO", "  DeadLetterQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      FifoQueue: true", "  DeadLetterQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      FifoQueue: false", "DeadLetterQueue].Fifo", false},
		{"content-based dedup", "ContentBasedDeduplication: false # the code", "ContentBasedDeduplication: true # the code", "ContentBasedDeduplication", false},
		{"dead-letter dedup scope", "DeduplicationScope: messageGroup", "DeduplicationScope: queue", "DeadLetterQueue].DeduplicationScope", false},
		{"throughput limit", "DeduplicationScope: messageGroup\n      FifoThroughputLimit: perMessageGroupId\n      MessageRetentionPeriod: 1209600 # 14 days\n      VisibilityTimeout",
			"DeduplicationScope: messageGroup\n      FifoThroughputLimit: perQueue\n      MessageRetentionPeriod: 1209600 # 14 days\n      VisibilityTimeout", "DeliveryQueue].FifoThroughputLimit", false},
		// The old budget, maxAttempts + 1 with the default 11.
		{"receive budget", "maxReceiveCount: 1000", "maxReceiveCount: 12", "MaxReceiveCount", false},
		{"dead-letter target", "deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn", "deadLetterTargetArn: !GetAtt DeliveryQueue.Arn", "DeadLetterTarget", false},
		{"batch size", "BatchSize: 10", "BatchSize: 5", "BatchSize", false},
		{"batch item failures", "            FunctionResponseTypes: [ReportBatchItemFailures]\n", "", "FunctionResponseTypes", false},
		{"maximum concurrency", "MaximumConcurrency: !Ref MaxConcurrency", "MaximumConcurrency: 5", "MaximumConcurrency", false},
		{"maximum concurrency default", "    Default: 10\n    MinValue: 2\n", "    Default: 20\n    MinValue: 2\n", "MaximumConcurrency", false},
		{"catch-all route", "        Proxy:\n          Type: HttpApi\n          Properties:\n            Path: /{proxy+}", "        Proxy:\n          Type: HttpApi\n          Properties:\n            Path: /messages", "Routes", false},
		{"payload format", `PayloadFormatVersion: "2.0"`, `PayloadFormatVersion: "1.0"`, "PayloadFormatVersion", false},
		{"extra action", "                  - dynamodb:DeleteItem\n", "                  - dynamodb:DeleteItem\n                  - dynamodb:Scan\n", "dynamodb:Scan", false},
		{"inbound UpdateItem", "                  - dynamodb:PutItem\n", "                  - dynamodb:PutItem\n                  - dynamodb:UpdateItem\n", "InboundFunction].Permissions", false},
		{"inbound Query missing", "                  - dynamodb:Query\n", "", "InboundFunction].Permissions", false},
		{"inbound Scan missing", "                  - dynamodb:Scan\n", "", "InboundFunction].Permissions", false},
		{"inbound BatchWriteItem missing", "                  - dynamodb:BatchWriteItem\n", "", "InboundFunction].Permissions", false},
		{"delivery BatchGetItem missing", "                  - dynamodb:BatchGetItem\n", "", "DeliveryFunction].Permissions", false},
		// The history Query for llm bots only with Bot=llm, as before channels.
		{"delivery Query missing", "                  - dynamodb:DeleteItem\n                  - dynamodb:Query\n", "                  - dynamodb:DeleteItem\n", "DeliveryFunction].Permissions[getatt:Table.Arn]", false},
		{"delivery Query with Bot=llm only", "                  - dynamodb:DeleteItem\n                  - dynamodb:Query\n                Resource: !GetAtt Table.Arn\n",
			"                  - dynamodb:DeleteItem\n                Resource: !GetAtt Table.Arn\n              - !If\n                - IsLlmBot\n                - Effect: Allow\n                  Action: dynamodb:Query\n                  Resource: !GetAtt Table.Arn\n                - !Ref AWS::NoValue\n",
			"DeliveryFunction].Permissions[getatt:Table.Arn]", false},
		{"channel keys missing", channelKeysStatement, "", "secret:parley/*", false},
		{"channel keys wider", ":secret:parley/*\n", ":secret:*\n", "secret:*", false},
		{"channel keys narrower", ":secret:parley/*\n", ":secret:parley/openai-??????\n", "secret:parley/*", false},
		{"channel keys with Bot=llm only", channelKeysStatement,
			"              - !If\n                - IsLlmBot\n                - Effect: Allow\n                  Action: secretsmanager:GetSecretValue\n" +
				"                  Resource: !Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:parley/*\n                - !Ref AWS::NoValue\n",
			"secret:parley/*", false},
		{"missing action", "                  - sqs:GetQueueUrl\n", "", "sqs:GetQueueUrl", false},
		{"wider resource", "Resource: !Ref SigningSecret", "Resource: '*'", "SigningSecret", false},
		{"managed policy", "policy/service-role/AWSLambdaBasicExecutionRole", "policy/AdministratorAccess", "ManagedPolicies", false},
		{"secret length", "PasswordLength: 44", "PasswordLength: 32", "PasswordLength", false},
		{"alarm threshold", "Default: 3600", "Default: 7200", "Threshold", false},
		{"alarm metric", "MetricName: Throttles", "MetricName: Invocations", "Metric", false},
		{"output", "  SigningSecretArn:\n    Description", "  SecretArn:\n    Description", "Outputs", false},
		{"delivery table name", "          PARLEY_TABLE_NAME: !Ref Table\n          PARLEY_RESPONSE", "          PARLEY_RESPONSE", "DeliveryFunction].Environment[PARLEY_TABLE_NAME]", false},
		// Delivery ordering and endpoint health.
		{"hold limit missing", "          PARLEY_HOLD_LIMIT: !Ref HoldLimit\n", "", "PARLEY_HOLD_LIMIT", false},
		{"hold limit default", "    Default: 1h\n", "    Default: 2h\n", "PARLEY_HOLD_LIMIT", false},
		{"disable after failures default", "    Default: 20\n", "    Default: 10\n", "PARLEY_DISABLE_AFTER_FAILURES", false},
		{"disable after unit", `PARLEY_DISABLE_AFTER: !Sub "${DisableAfterHours}h"`, `PARLEY_DISABLE_AFTER: !Sub "${DisableAfterHours}m"`, "PARLEY_DISABLE_AFTER]", false},
		{"disable after default", "    Default: 24\n", "    Default: 48\n", "PARLEY_DISABLE_AFTER]", false},
		{"rate limit default", "    Default: 0\n    MinValue: 0\n    MaxValue: 10000\n", "    Default: 1\n    MinValue: 0\n    MaxValue: 10000\n", "PARLEY_ENDPOINT_RATE_LIMIT", false},
		{"rate limit missing", "          PARLEY_ENDPOINT_RATE_LIMIT: !Ref EndpointRateLimit\n", "", "PARLEY_ENDPOINT_RATE_LIMIT", false},
		// Tracing.
		{"tracing always on", "Tracing: !If [TracingActive, Active, PassThrough]", "Tracing: Active", "InboundFunction].Tracing", false},
		{"tracing default", "    Default: passthrough\n", "    Default: active\n", "Tracing", false},
		{"x-ray permission without tracing", xrayStatement, "              - Effect: Allow\n                Action: [xray:PutTraceSegments, xray:PutTelemetryRecords]\n                Resource: \"*\"\n",
			"InboundFunction].Permissions[*]", false},
		// The alarms on Parley's own metrics.
		{"parley namespace", "      Namespace: Parley\n", "      Namespace: parley\n", "EndpointDisabled].Namespace", false},
		{"parley dimension", "        - {Name: Service, Value: parley}\n", "        - {Name: Service, Value: Parley}\n", "EndpointDisabled].Dimension", false},
		{"parley metric", "MetricName: DeadLettered", "MetricName: DeadLetters", "DeadLettered].Metric", false},
		{"parley alarm statistic", "      MetricName: FailedAttempts\n      Dimensions:\n        - {Name: Service, Value: parley}\n      Statistic: Sum",
			"      MetricName: FailedAttempts\n      Dimensions:\n        - {Name: Service, Value: parley}\n      Statistic: Average", "FailedAttemptsHigh].Statistic", false},
		{"failed attempts threshold default", "    Default: 100\n", "    Default: 50\n", "FailedAttemptsHigh].Threshold", false},
		{"alarm missing", "  DeadLettered:\n    Type: AWS::CloudWatch::Alarm", "  DeadLettered:\n    Type: AWS::CloudWatch::CompositeAlarm", "Alarms[DeadLettered]: missing", false},
		// The dashboard.
		{"dashboard name", "DashboardName: !Sub Parley-${Stage}-${AWS::Region}", "DashboardName: !Sub Parley-${Stage}", "Dashboards[Dashboard].Name", false},
		{"dashboard statistic", `{"label": "bot latency p99", "stat": "p99"`, `{"label": "bot latency p99", "stat": "p90"`, "Body[widgets][1][properties][metrics][2][4][stat]", false},
		{"dashboard metric", `["Parley", "DeadLettered", "Service", "parley"`, `["Parley", "DeadLetters", "Service", "parley"`, "Body[widgets][3][properties][metrics][1][1]", false},
		{"dashboard dimension", `["Parley", "Delivered", "Service", "parley"`, `["Parley", "Delivered", "Channel", "parley"`, "Body[widgets][2][properties][metrics][0][2]", false},
		{"dashboard queue", `"${DeadLetterQueue.QueueName}", {"label": "dead-letter queue"`, `"${DeliveryQueue.QueueName}", {"label": "dead-letter queue"`, "Body[widgets][4][properties][metrics][1][3]", false},
		{"dashboard function", `"${InboundFunction}", {"label": "inbound errors"`, `"${DeliveryFunction}", {"label": "inbound errors"`, "Body[widgets][6][properties][metrics][0][3]", false},
		{"dashboard region", `"region": "${AWS::Region}"`, `"region": "eu-west-1"`, "Body[widgets][0][properties][region]", false},
		{"dashboard layout", `"width": 8, "height": 6, "x": 8, "y": 0`, `"width": 8, "height": 6, "x": 16, "y": 0`, "Body[widgets][1][x]", false},
		{"dashboard widget property", `"title": "Functions: invocations"`, `"title": "Functions: invocations", "stacked": true`, "Body[widgets][8][properties][stacked]", false},
		{"dashboard metric missing", "{\"label\": \"replayed\", \"stat\": \"Sum\"}],\n              [\"Parley\", \"Pushed\", \"Service\", \"parley\", {\"label\": \"pushed\", \"stat\": \"Sum\"}]]",
			"{\"label\": \"replayed\", \"stat\": \"Sum\"}]]", "Body[widgets][0][properties][metrics][2]: missing", false},
		{"dashboard body not JSON", `"yAxis": {"left": {"label": "ms", "min": 0, "showUnits": false}}}},`, `"yAxis": {"left": {"label": "ms", "min": 0, "showUnits": false}}},`, "unreadable body", false},
		{"llm setting with another bot", "PARLEY_LLM_MODEL: !If [IsLlmBot,", "PARLEY_LLM_MODEL: !If [HasAlarmEmail,", "PARLEY_LLM_MODEL", true},
		{"llm optional setting", "PARLEY_LLM_HISTORY: !If [HasLlmHistory, !Ref LlmHistory,", "PARLEY_LLM_HISTORY: !If [HasLlmHistory, !Ref LlmMaxTokens,", "PARLEY_LLM_HISTORY", true},
		{"llm key ARN", ":secret:${LlmApiKeySecretName}\n", ":secret:${LlmApiKeySecretName}-??????\n", "PARLEY_LLM_API_KEY_SECRET_ARN", true},
		{"llm key resource", "${LlmApiKeySecretName}-??????", "${LlmApiKeySecretName}*", "parley/openai*", true},
		{"llm key statement condition", "                - IsLlmBot\n                - Effect: Allow\n                  Action: secretsmanager:GetSecretValue",
			"                - IsHttpBot\n                - Effect: Allow\n                  Action: secretsmanager:GetSecretValue", "secretsmanager:GetSecretValue", true},
		{"llm key action", "Action: secretsmanager:GetSecretValue\n                  Resource: !Sub", "Action: secretsmanager:*\n                  Resource: !Sub", "secretsmanager:*", true},
	}
	// The last widget, cut out whole.
	if start := strings.Index(original, `,
          {"type": "metric", "width": 8, "height": 6, "x": 16, "y": 12`); start >= 0 {
		if end := strings.Index(original[start:], "\n        ]}"); end >= 0 {
			tests = append(tests, struct {
				name, old, new string
				want           string
				llm            bool
			}{"dashboard widget missing", original[start : start+end], "", "Body[widgets][8]: missing", false})
		}
	}
	if tt := tests[len(tests)-1]; tt.name != "dashboard widget missing" {
		t.Error("template.yaml: no last widget found to cut out")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(original, tt.old) {
				t.Fatalf("template.yaml has no %q to change", tt.old)
			}
			mutated := strings.Replace(original, tt.old, tt.new, 1)
			want, params := cdk, map[string]any{"ResponseEndpointUrl": testEndpoint}
			if tt.llm {
				want, params = cdkLLM, llmParams
			}
			sam, err := samSystem([]byte(mutated), params)
			if err != nil {
				t.Fatalf("read mutated template.yaml: %v", err)
			}
			diffs := compareSystems(want, sam)
			if !strings.Contains(strings.Join(diffs, "\n"), tt.want) {
				t.Errorf("changing %q to %q: want a difference in %s, got %q", tt.old, tt.new, tt.want, diffs)
			}
		})
	}
}

// TestParityCatchesDriftWithSettings: drift that only shows when the settings are not
// their defaults — a parameter not wired, a condition that ignores it — compared with
// the stack synthesized with everySetting (tracing on, a hold limit of 6h, ...).
func TestParityCatchesDriftWithSettings(t *testing.T) {
	s := synth(t, everySetting, false)
	cdk, params := cdkSystem(t, s), samParams(s.cfg)
	original := string(readSAMTemplate(t))
	if sam, err := samSystem([]byte(original), params); err != nil || len(compareSystems(cdk, sam)) > 0 {
		t.Fatalf("template.yaml differs before any change: %v %v", err, compareSystems(cdk, sam))
	}
	for _, tt := range []struct{ name, old, new, want string }{
		{"hold limit fixed", "PARLEY_HOLD_LIMIT: !Ref HoldLimit", "PARLEY_HOLD_LIMIT: 1h", "PARLEY_HOLD_LIMIT"},
		{"disable after failures fixed", "PARLEY_DISABLE_AFTER_FAILURES: !Ref DisableAfterFailures", "PARLEY_DISABLE_AFTER_FAILURES: 20", "PARLEY_DISABLE_AFTER_FAILURES"},
		{"disable after fixed", `PARLEY_DISABLE_AFTER: !Sub "${DisableAfterHours}h"`, "PARLEY_DISABLE_AFTER: 24h", "PARLEY_DISABLE_AFTER]"},
		{"rate limit fixed", "PARLEY_ENDPOINT_RATE_LIMIT: !Ref EndpointRateLimit", "PARLEY_ENDPOINT_RATE_LIMIT: 0", "PARLEY_ENDPOINT_RATE_LIMIT"},
		{"tracing condition", "TracingActive: !Equals [!Ref Tracing, active]", "TracingActive: !Equals [!Ref Tracing, passthrough]", "Tracing"},
		{"tracing never", "Tracing: !If [TracingActive, Active, PassThrough]", "Tracing: PassThrough", "InboundFunction].Tracing"},
		{"x-ray permission missing", xrayStatement, "", "InboundFunction].Permissions[*]"},
		{"failed attempts threshold fixed", "Threshold: !Ref FailedAttemptsAlarmThreshold", "Threshold: 100", "FailedAttemptsHigh].Threshold"},
		{"dashboard annotation fixed", `"value": ${OldestMessageAgeAlarmSeconds}`, `"value": 3600`, "Body[widgets][5][properties][annotations][horizontal][0][value]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(original, tt.old) {
				t.Fatalf("template.yaml has no %q to change", tt.old)
			}
			sam, err := samSystem([]byte(strings.Replace(original, tt.old, tt.new, 1)), params)
			if err != nil {
				t.Fatalf("read mutated template.yaml: %v", err)
			}
			if diffs := compareSystems(cdk, sam); !strings.Contains(strings.Join(diffs, "\n"), tt.want) {
				t.Errorf("changing %q to %q: want a difference in %s, got %q", tt.old, tt.new, tt.want, diffs)
			}
		})
	}
}

// TestSAMTemplate checks what only SAM has: the transform, the makefile build, the
// parameters (with the CDK defaults and ranges), the fixed receive budget and the alarm topic.
func TestSAMTemplate(t *testing.T) {
	data := readSAMTemplate(t)
	doc := readSAMDoc(t, data)
	if doc.Transform != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform: got %q", doc.Transform)
	}
	for _, name := range []string{"InboundFunction", "DeliveryFunction"} {
		r := doc.Resources[name]
		if r.Type != "AWS::Serverless::Function" || r.Metadata["BuildMethod"] != "makefile" || r.Properties["CodeUri"] != "." {
			t.Errorf("%s: got type %s, metadata %v, CodeUri %v; want a function built by the makefile method from .", name, r.Type, r.Metadata, r.Properties["CodeUri"])
		}
	}

	// The choices are the CDK app's.
	if got := doc.Parameters["Bot"].AllowedValues; !slices.Equal(got, botNames) {
		t.Errorf("Bot AllowedValues: got %v, want %v", got, botNames)
	}
	if got := doc.Parameters["LlmProvider"].AllowedValues; !slices.Equal(got, llmProviders) {
		t.Errorf("LlmProvider AllowedValues: got %v, want %v", got, llmProviders)
	}
	// The patterns take the values the CDK app writes (numbers in canonical form) and
	// refuse what it refuses.
	for _, c := range []struct {
		param string
		good  []string
		bad   []string
	}{
		{"LlmTemperature", []string{"", "0", "0.7", "1", "1.25", "2", "2.0"}, []string{"2.1", "3", "-1", "x", ".5"}},
		{"LlmMaxTokens", []string{"", "1", "512", "9999", "10000", "29999", "31999", "32000"}, []string{"0", "32001", "40000", "100000", "01"}},
		{"LlmHistory", []string{"", "0", "9", "10", "99", "100"}, []string{"101", "-1", "00"}},
		{"LlmBaseUrl", []string{"", "https://api.groq.com/openai/v1"}, []string{"http://localhost:11434/v1", "api.openai.com"}},
		{"HttpBotUrl", []string{"", "http://rasa:5005/webhooks/rest/webhook", "https://bot.example.com/"}, []string{"ftp://bot/", "bot.example.com"}},
		{"LlmApiKeySecretName", []string{"", "parley/openai", "prod/llm_key+1=a.b@c"}, []string{"my key", "arn:aws:secretsmanager:x"}},
		{"RulesFilePath", []string{"", "/var/task/rules.json"}, []string{"rules.json"}},
		{"BotTimeoutSeconds", []string{"10", "30", "300"}, []string{"25", "30s", "301", ""}},
		{"RecordTtlHours", []string{"360", "8760"}, []string{"359", "168", "8761", "15d"}},
		{"HistoryTtlHours", []string{"360", "720", "8760"}, []string{"359", "8761", "720h"}},
		{"MaxConcurrency", []string{"2", "10", "1000"}, []string{"1", "1001", "ten"}},
		{"MaxAttempts", []string{"1", "11", "28"}, []string{"0", "-1", "29", "100", "eleven", ""}},
		{"OldestMessageAgeAlarmSeconds", []string{"60", "3600"}, []string{"59", "an hour"}},
		{"RetryMaxDelay", []string{"5s", "1h", "12h"}, []string{"13h", "4h", "12h0m", "720m", ""}},
		{"HoldLimit", []string{"0", "1h", "12h"}, []string{"13h", "24h", "1d", "-1h", ""}},
		{"DisableAfterFailures", []string{"0", "20", "100000"}, []string{"-1", "100001", "twenty"}},
		{"DisableAfterHours", []string{"0", "24", "336"}, []string{"-1", "337", "24h"}},
		{"EndpointRateLimit", []string{"0", "0.5", "10000"}, []string{"-1", "10001", "fast"}},
		{"Tracing", []string{"passthrough", "active"}, []string{"Active", "on", ""}},
		{"FailedAttemptsAlarmThreshold", []string{"1", "100", "1000000"}, []string{"0", "1000001", "many"}},
	} {
		for _, v := range c.good {
			if err := doc.checkParameter(c.param, v); err != nil {
				t.Error(err)
			}
		}
		for _, v := range c.bad {
			if doc.checkParameter(c.param, v) == nil {
				t.Errorf("parameter %s accepts %q", c.param, v)
			}
		}
	}

	// Parameter defaults are the CDK defaults.
	cfg, err := loadConfig(t, map[string]any{keyResponseEndpointURL: testEndpoint})
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
		// And passes the parameter's own constraints.
		if p.Default != nil {
			if err := doc.checkParameter(name, fmt.Sprint(p.Default)); err != nil {
				t.Errorf("default: %v", err)
			}
		}
	}
	if got := doc.Parameters["Tracing"].AllowedValues; !slices.Equal(got, tracingModes) {
		t.Errorf("Tracing AllowedValues: got %v, want %v", got, tracingModes)
	}
	if p, ok := doc.Parameters["ResponseEndpointUrl"]; !ok || p.Default != nil {
		t.Errorf("ResponseEndpointUrl must be a parameter without a default: got %+v", p)
	}

	// The number parameters take the CDK app's ranges.
	for _, c := range []struct {
		param    string
		min, max float64
	}{
		{"RecordTtlHours", minRecordTTL.Hours(), maxTTL.Hours()},
		{"HistoryTtlHours", minHistoryTTL.Hours(), maxTTL.Hours()},
		{"MaxConcurrency", minMaxConcurrency, maxMaxConcurrency},
		{"DisableAfterFailures", 0, maxDisableAfterFailures},
		{"DisableAfterHours", 0, queueRetention.Hours()},
		{"EndpointRateLimit", 0, maxEndpointRateLimit},
		{"FailedAttemptsAlarmThreshold", 1, maxFailedAttemptsAlarm},
	} {
		if p := doc.Parameters[c.param]; p.Type != "Number" || p.MinValue == nil || *p.MinValue != c.min || p.MaxValue == nil || *p.MaxValue != c.max {
			t.Errorf("%s: got type %q, range [%v, %v]; want Number, [%v, %v]", c.param, p.Type, p.MinValue, p.MaxValue, c.min, c.max)
		}
	}

	// MaxAttempts is a Number from 1 (its upper bound: TestSAMRetryBudget), and the
	// redrive budget does not follow it: at both ends of the range the delivery queue
	// dead-letters after the CDK app's maxReceiveCount.
	p := doc.Parameters["MaxAttempts"]
	if p.Type != "Number" || p.MinValue == nil || *p.MinValue != 1 || p.MaxValue == nil {
		t.Fatalf("MaxAttempts: got type %q, range [%v, %v]; want Number, [1, ...]", p.Type, p.MinValue, p.MaxValue)
	}
	for _, n := range []string{"1", strconv.Itoa(int(*p.MaxValue))} {
		sam, err := samSystem(data, map[string]any{"ResponseEndpointUrl": testEndpoint, "MaxAttempts": n})
		if err != nil {
			t.Fatal(err)
		}
		if got := sam.Queues["DeliveryQueue"].MaxReceiveCount; got != maxReceiveCount {
			t.Errorf("maxReceiveCount with MaxAttempts=%s: got %d, want %d", n, got, maxReceiveCount)
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
	if alarms != 9 {
		t.Errorf("alarms: got %d, want 9", alarms)
	}
}

// TestSAMRetryBudget: the delivery function refuses a retry budget whose worst case,
// (maxAttempts - 1) x the maximum delay + the hold limit, exceeds the queue's 14-day
// retention (checkRetryBudget, which policy_test.go compares with the function's own
// check). CloudFormation cannot add, so template.yaml bounds each of the three instead:
// RetryMaxDelay and HoldLimit are choices, MaxAttempts has a MaxValue, and no
// combination of allowed values breaks the rule. The bound is also tight: one more
// attempt at the largest choices would.
func TestSAMRetryBudget(t *testing.T) {
	doc := readSAMDoc(t, readSAMTemplate(t))
	maxAttempts := doc.Parameters["MaxAttempts"].MaxValue
	delays, holds := doc.Parameters["RetryMaxDelay"].AllowedValues, doc.Parameters["HoldLimit"].AllowedValues
	if maxAttempts == nil || len(delays) == 0 || len(holds) == 0 {
		t.Fatalf("want MaxAttempts with a MaxValue, RetryMaxDelay and HoldLimit with AllowedValues: got %v, %v, %v", maxAttempts, delays, holds)
	}
	parse := func(param, v string, limit time.Duration) time.Duration {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > limit {
			t.Fatalf("%s allows %q: want a Go duration in [0, %s]", param, v, limit)
		}
		return d
	}
	var longestDelay, longestHold time.Duration
	for _, d := range delays {
		longestDelay = max(longestDelay, parse("RetryMaxDelay", d, maxVisibilityDelay))
	}
	for _, h := range holds {
		longestHold = max(longestHold, parse("HoldLimit", h, maxHoldLimit))
	}
	n := int(*maxAttempts)
	if n > maxMaxAttempts {
		t.Errorf("MaxAttempts allows %d, the delivery function at most %d", n, maxMaxAttempts)
	}
	for _, d := range delays {
		for _, h := range holds {
			for attempts := 1; attempts <= n; attempts++ {
				// Through LoadConfig: what `cdk synth` accepts with the same values.
				_, err := loadConfig(t, map[string]any{keyResponseEndpointURL: testEndpoint, keyRetryMinDelay: "1s",
					keyRetryMaxDelay: d, keyHoldLimit: h, keyMaxAttempts: strconv.Itoa(attempts)})
				if err != nil {
					t.Fatalf("MaxAttempts=%d RetryMaxDelay=%s HoldLimit=%s passes template.yaml's constraints and breaks the retry budget: %v", attempts, d, h, err)
				}
			}
		}
	}
	if checkRetryBudget(n+1, longestDelay, longestHold) == nil {
		t.Errorf("MaxAttempts at most %d is not tight: %d attempts with RetryMaxDelay %s and HoldLimit %s fit too", n, n+1, longestDelay, longestHold)
	}
}

// TestSAMDeliveryTiming: SAM has no arithmetic, so the bot timeout is a choice and each
// choice has its row in the DeliveryTiming mapping. Every choice has a row, every row is
// a choice, and each gives the delivery function and queue the CDK app's numbers for
// that bot timeout (which timing_test.go compares with the application's).
func TestSAMDeliveryTiming(t *testing.T) {
	data := readSAMTemplate(t)
	doc := readSAMDoc(t, data)
	p := doc.Parameters["BotTimeoutSeconds"]
	rows := doc.Mappings["DeliveryTiming"]
	if p.Type != "String" || len(p.AllowedValues) == 0 {
		t.Fatalf("BotTimeoutSeconds: got type %q, allowed values %v; want a String with AllowedValues", p.Type, p.AllowedValues)
	}
	if got, want := slices.Sorted(maps.Keys(rows)), slices.Sorted(slices.Values(p.AllowedValues)); !slices.Equal(got, want) {
		t.Errorf("DeliveryTiming rows %v, BotTimeoutSeconds allows %v: want the same", got, want)
	}
	for _, v := range p.AllowedValues {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || time.Duration(n)*time.Second > maxBotTimeout {
			t.Errorf("BotTimeoutSeconds allows %q: want whole seconds in [1, %d]", v, int(maxBotTimeout.Seconds()))
			continue
		}
		bot := time.Duration(n) * time.Second
		want := deliveryTiming(bot)
		row := rows[v]
		if len(row) != 2 || row["FunctionTimeout"] != want.FunctionTimeout.Seconds() || row["VisibilityTimeout"] != want.VisibilityTimeout.Seconds() {
			t.Errorf("DeliveryTiming %q: got %v, want FunctionTimeout %v, VisibilityTimeout %v", v, row, want.FunctionTimeout.Seconds(), want.VisibilityTimeout.Seconds())
		}
		// And the template uses the row: the stack with this bot timeout.
		sam, err := samSystem(data, map[string]any{"ResponseEndpointUrl": testEndpoint, "BotTimeoutSeconds": v})
		if err != nil {
			t.Fatal(err)
		}
		if got := sam.Functions["DeliveryFunction"].Timeout; got != int(want.FunctionTimeout.Seconds()) {
			t.Errorf("BotTimeoutSeconds=%s: delivery function timeout %d, want %v", v, got, want.FunctionTimeout.Seconds())
		}
		if got := sam.Queues["DeliveryQueue"].VisibilityTimeout; got != int(want.VisibilityTimeout.Seconds()) {
			t.Errorf("BotTimeoutSeconds=%s: visibility timeout %d, want %v", v, got, want.VisibilityTimeout.Seconds())
		}
		if got := sam.Functions["DeliveryFunction"].Environment["PARLEY_BOT_TIMEOUT"]; got != v+"s" {
			t.Errorf("BotTimeoutSeconds=%s: PARLEY_BOT_TIMEOUT %q", v, got)
		}
	}
}

// samDoc is template.yaml read without resolving anything.
type samDoc struct {
	Transform  string
	Mappings   map[string]map[string]map[string]any
	Parameters map[string]struct {
		Type               string
		Default            any
		AllowedPattern     string
		AllowedValues      []string
		MaxLength          int
		MinValue, MaxValue *float64
	}
	Resources map[string]struct {
		Type       string
		Condition  string
		Metadata   map[string]any
		Properties map[string]any
	}
}

func readSAMDoc(t *testing.T, data []byte) *samDoc {
	t.Helper()
	var doc samDoc
	if err := decodeTemplate(data, true, &intrinsics.ProcessorOptions{NoProcess: true}, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

// checkParameter applies a parameter's constraints to a value, as CloudFormation does.
func (d *samDoc) checkParameter(name, value string) error {
	p, ok := d.Parameters[name]
	switch {
	case !ok:
		return fmt.Errorf("no parameter %s", name)
	case p.AllowedValues != nil && !slices.Contains(p.AllowedValues, value):
		return fmt.Errorf("parameter %s: %q is not one of %v", name, value, p.AllowedValues)
	case p.Type == "Number":
		n, err := strconv.ParseFloat(value, 64)
		switch {
		case err != nil:
			return fmt.Errorf("parameter %s: %q is not a number", name, value)
		case p.MinValue != nil && n < *p.MinValue:
			return fmt.Errorf("parameter %s: %q is less than %v", name, value, *p.MinValue)
		case p.MaxValue != nil && n > *p.MaxValue:
			return fmt.Errorf("parameter %s: %q is more than %v", name, value, *p.MaxValue)
		}
	case p.MaxLength > 0 && len(value) > p.MaxLength:
		return fmt.Errorf("parameter %s: %q is longer than %d", name, value, p.MaxLength)
	case p.AllowedPattern != "":
		// CloudFormation matches the whole value (its patterns here are anchored anyway).
		re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
		if err != nil {
			return fmt.Errorf("parameter %s: pattern %q: %v", name, p.AllowedPattern, err)
		}
		if !re.MatchString(value) {
			return fmt.Errorf("parameter %s: %q does not match %s", name, value, p.AllowedPattern)
		}
	}
	return nil
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
