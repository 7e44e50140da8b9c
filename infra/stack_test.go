package main

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/parley-chat/parley/infra/deploy"
	"github.com/parley-chat/parley/shared/settings"
)

// cdkSystem reads a synthesized template the way the parity test does.
func cdkSystem(t *testing.T, s *synthesized) *system {
	t.Helper()
	data, err := json.Marshal(s.json)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := processTemplate(data, false, nil)
	if err != nil {
		t.Fatalf("process CDK template: %v", err)
	}
	sys, err := loadSystem(raw)
	if err != nil {
		t.Fatalf("read CDK template: %v", err)
	}
	return sys
}

func TestResourceList(t *testing.T) {
	s := defaultSynth(t)
	got := map[string]int{}
	for _, r := range s.json["Resources"].(map[string]any) {
		got[r.(map[string]any)["Type"].(string)]++
	}
	want := map[string]int{
		"AWS::ApiGatewayV2::Api":          1,
		"AWS::ApiGatewayV2::Integration":  1,
		"AWS::ApiGatewayV2::Route":        1,
		"AWS::ApiGatewayV2::Stage":        1,
		"AWS::CloudWatch::Alarm":          9,
		"AWS::CloudWatch::Dashboard":      1,
		"AWS::DynamoDB::Table":            1,
		"AWS::IAM::Policy":                2,
		"AWS::IAM::Role":                  2,
		"AWS::Lambda::EventSourceMapping": 1,
		"AWS::Lambda::Function":           2,
		"AWS::Lambda::Permission":         1,
		"AWS::Logs::LogGroup":             2,
		"AWS::SQS::Queue":                 2,
		"AWS::SecretsManager::Secret":     1,
	}
	for _, d := range diff("Resources", got, want) {
		t.Error(d)
	}
	for typ, n := range want {
		check(t, "count of "+typ, func() { s.template.ResourceCountIs(jsii.String(typ), jsii.Number(float64(n))) })
	}
	if s.stack.StackName() == nil || *s.stack.StackName() != "Parley-dev" {
		t.Errorf("stack name: got %v, want Parley-dev", *s.stack.StackName())
	}
}

func TestFunctions(t *testing.T) {
	s := defaultSynth(t)
	queue, dlq := s.id(t, "DeliveryQueue"), s.id(t, "DeadLetterQueue")
	tests := []struct {
		name    string
		memory  int
		timeout int
		env     map[string]any
		logs    string
	}{
		// API Gateway's 30 s, less a second: an erasure takes up to 20 s.
		{"InboundFunction", 256, 29, map[string]any{
			"PARLEY_TABLE_NAME":  ref(s.id(t, "Table")),
			"PARLEY_QUEUE_URL":   ref(queue),
			"PARLEY_RECORD_TTL":  "360h",
			"PARLEY_HISTORY_TTL": "720h", // a record lives at least as long as its history
		}, "InboundLogs"},
		// 30 s of bot, two POSTs of at most 30 s, 20 s to settle.
		{"DeliveryFunction", 256, 110, map[string]any{
			"PARLEY_TABLE_NAME":             ref(s.id(t, "Table")),
			"PARLEY_RESPONSE_ENDPOINT_URL":  testEndpoint,
			"PARLEY_SIGNING_SECRET_ARN":     ref(s.id(t, "SigningSecret")),
			"PARLEY_QUEUE_URL":              ref(queue),
			"PARLEY_DEAD_LETTER_QUEUE_URL":  ref(dlq),
			"PARLEY_RETRY_MIN_DELAY":        "5s",
			"PARLEY_RETRY_MAX_DELAY":        "12h",
			"PARLEY_MAX_ATTEMPTS":           "11",
			"PARLEY_DELIVERY_TIMEOUT":       "10s",
			"PARLEY_BOT":                    "echo",
			"PARLEY_BOT_TIMEOUT":            "30s",
			"PARLEY_HISTORY_TTL":            "720h",
			"PARLEY_HOLD_LIMIT":             "1h",
			"PARLEY_DISABLE_AFTER_FAILURES": "20",
			"PARLEY_DISABLE_AFTER":          "24h",
			"PARLEY_ENDPOINT_RATE_LIMIT":    "0",
		}, "DeliveryLogs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := s.id(t, tt.name)
			fn := s.resources("AWS::Lambda::Function")[id]
			if fn == nil {
				t.Fatalf("%s is not a Lambda function", tt.name)
			}
			check(t, tt.name, func() {
				s.template.HasResource(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Metadata": map[string]any{"aws:cdk:path": "Parley-dev/" + tt.name + "/Resource"},
					"Properties": map[string]any{
						"Runtime":       "provided.al2023",
						"Architectures": []any{"arm64"},
						"Handler":       "bootstrap",
						"MemorySize":    tt.memory,
						"Timeout":       tt.timeout,
						"Environment":   map[string]any{"Variables": assertions.Match_ObjectEquals(&tt.env)},
						"LoggingConfig": map[string]any{"LogFormat": "JSON", "LogGroup": ref(s.id(t, tt.logs))},
						"Role":          getAtt(s.id(t, tt.name+"/ServiceRole"), "Arn"),
						// Tracing off by default: Lambda's PassThrough.
						"TracingConfig": assertions.Match_Absent(),
					},
				})
			})
			check(t, tt.logs, func() {
				s.template.HasResource(jsii.String("AWS::Logs::LogGroup"), map[string]any{
					"Metadata":       map[string]any{"aws:cdk:path": "Parley-dev/" + tt.logs + "/Resource"},
					"Properties":     map[string]any{"RetentionInDays": 30},
					"DeletionPolicy": "Retain",
				})
			})
		})
	}
}

// TestBundledBinaries checks what the local bundling produced: a static, stripped
// linux/arm64 executable named bootstrap, built with the flags the functions need.
func TestBundledBinaries(t *testing.T) {
	s := defaultSynth(t)
	for _, name := range []string{"InboundFunction", "DeliveryFunction"} {
		t.Run(name, func(t *testing.T) {
			fn := s.resources("AWS::Lambda::Function")[s.id(t, name)]
			md := fn["Metadata"].(map[string]any)
			if md["aws:asset:is-bundled"] != true {
				t.Errorf("asset is-bundled: got %v, want true", md["aws:asset:is-bundled"])
			}
			dir := filepath.Join(s.outdir, md["aws:asset:path"].(string))
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, e := range entries {
				files = append(files, e.Name())
			}
			if !slices.Equal(files, []string{"bootstrap"}) {
				t.Errorf("asset %s holds %v, want just bootstrap", dir, files)
			}
			bin := filepath.Join(dir, "bootstrap")
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 {
				t.Errorf("machine: got %v, want EM_AARCH64", f.Machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("bootstrap has an ELF interpreter: not a static binary")
				}
			}
			// -trimpath keeps -ldflags out of the build info: check its effect instead.
			if f.Section(".symtab") != nil {
				t.Error("bootstrap has a symbol table: not linked with -s")
			}
			if f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
				t.Error("bootstrap has DWARF: not linked with -w")
			}
			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			pkg := "github.com/parley-chat/parley/functions/" + strings.ToLower(strings.TrimSuffix(name, "Function"))
			if info.Path != pkg {
				t.Errorf("main package: got %s, want %s", info.Path, pkg)
			}
			settings := map[string]string{}
			for _, kv := range info.Settings {
				settings[kv.Key] = kv.Value
			}
			for k, want := range map[string]string{
				"-tags": "lambda.norpc", "-trimpath": "true",
				"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "arm64",
			} {
				if settings[k] != want {
					t.Errorf("build setting %s: got %q, want %q", k, settings[k], want)
				}
			}
		})
	}
}

// The permissions of every bot but llm, sorted as system reads them. Written out, not
// taken from stack.go: a change there must change these too.
var (
	inboundPermissions = map[string][]string{
		// Erasure: Query, Scan, BatchWriteItem, PutItem (tombstones).
		"getatt:Table.Arn":         {"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"},
		"getatt:DeliveryQueue.Arn": {"sqs:SendMessage"},
	}
	deliveryPermissions = map[string][]string{
		"getatt:DeliveryQueue.Arn":   {"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"},
		"getatt:DeadLetterQueue.Arn": {"sqs:SendMessage"},
		"ref:SigningSecret":          {"secretsmanager:GetSecretValue"},
		channelKeysARN:               {"secretsmanager:GetSecretValue"},
		// Query whatever the default channel's bot: another channel's may be llm.
		"getatt:Table.Arn": {"dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
	}
)

// channelKeysARN is the channels' llm key secrets, parley/*, as the synthesized
// template writes the ARN (channelKeysARNJoin) and as the tests' reading of intrinsic
// functions resolves it (system_test.go).
var (
	channelKeysARN     = "arn:aws:secretsmanager:us-east-1:123456789012:secret:parley/*"
	channelKeysARNJoin = map[string]any{"Fn::Join": []any{"", []any{
		"arn:", ref("AWS::Partition"), ":secretsmanager:", ref("AWS::Region"), ":", ref("AWS::AccountId"), ":secret:parley/*",
	}}}
)

// TestPermissions checks each function's IAM actions and resources exactly: no more
// than listed here, on no other resource.
func TestPermissions(t *testing.T) {
	s := defaultSynth(t)
	sys := cdkSystem(t, s)
	want := map[string]map[string][]string{
		"InboundFunction":  inboundPermissions,
		"DeliveryFunction": deliveryPermissions,
	}
	for name, perms := range want {
		f := sys.Functions[name]
		if f == nil {
			t.Fatalf("no function %s", name)
		}
		for _, d := range diff(name+".Permissions", f.Permissions, perms) {
			t.Error(d)
		}
		if !slices.Equal(f.ManagedPolicies, []string{"AWSLambdaBasicExecutionRole"}) {
			t.Errorf("%s managed policies: got %v, want [AWSLambdaBasicExecutionRole]", name, f.ManagedPolicies)
		}
	}
	// The same, through the assertions library: one policy per role, statements exact
	// (merged and sorted: the @aws-cdk/aws-iam:minimizePolicies flag).
	check(t, "inbound policy", func() {
		s.template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
			"Roles": []any{ref(s.id(t, "InboundFunction/ServiceRole"))},
			"PolicyDocument": map[string]any{"Statement": []any{
				map[string]any{"Effect": "Allow", "Action": []any{"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"}, "Resource": getAtt(s.id(t, "Table"), "Arn")},
				map[string]any{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": getAtt(s.id(t, "DeliveryQueue"), "Arn")},
			}},
		})
	})
	check(t, "delivery policy", func() {
		s.template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
			"Roles": []any{ref(s.id(t, "DeliveryFunction/ServiceRole"))},
			"PolicyDocument": map[string]any{"Statement": []any{
				map[string]any{"Effect": "Allow", "Action": []any{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}, "Resource": getAtt(s.id(t, "DeliveryQueue"), "Arn")},
				map[string]any{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": getAtt(s.id(t, "DeadLetterQueue"), "Arn")},
				map[string]any{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": []any{channelKeysARNJoin, ref(s.id(t, "SigningSecret"))}},
				map[string]any{"Effect": "Allow", "Action": []any{"dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}, "Resource": getAtt(s.id(t, "Table"), "Arn")},
			}},
		})
	})
	// The event source grants exactly the delivery queue's statement of package deploy.
	for _, st := range deploy.Delivery.Statements {
		if st.EventSource {
			want := slices.Sorted(slices.Values(st.Actions))
			if got := sys.Functions["DeliveryFunction"].Permissions["getatt:DeliveryQueue.Arn"]; !slices.Equal(got, want) {
				t.Errorf("the event source grants %v on the queue, package deploy lists %v", got, want)
			}
		}
	}
	for _, role := range s.resources("AWS::IAM::Role") {
		if _, ok := role["Properties"].(map[string]any)["Policies"]; ok {
			t.Errorf("role %v has inline policies", role["Metadata"])
		}
	}
}

func TestTable(t *testing.T) {
	s := defaultSynth(t)
	check(t, "table", func() {
		s.template.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{
			"Properties": map[string]any{
				"KeySchema": []any{
					map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
					map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
				},
				"AttributeDefinitions": []any{
					map[string]any{"AttributeName": "pk", "AttributeType": "S"},
					map[string]any{"AttributeName": "sk", "AttributeType": "S"},
				},
				"BillingMode":                      "PAY_PER_REQUEST",
				"TimeToLiveSpecification":          map[string]any{"AttributeName": "expiresAt", "Enabled": true},
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
				"GlobalSecondaryIndexes":           assertions.Match_Absent(),
				"ProvisionedThroughput":            assertions.Match_Absent(),
			},
			"DeletionPolicy":      "Retain",
			"UpdateReplacePolicy": "Retain",
		})
	})
}

func TestQueues(t *testing.T) {
	s := defaultSynth(t)
	check(t, "delivery queue", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
			"FifoQueue":                 true,
			"ContentBasedDeduplication": false,
			"DeduplicationScope":        "messageGroup",
			"FifoThroughputLimit":       "perMessageGroupId",
			"MessageRetentionPeriod":    14 * 24 * 3600,
			"VisibilityTimeout":         660, // 6 x 110 s
			"RedrivePolicy": assertions.Match_ObjectEquals(&map[string]any{
				"deadLetterTargetArn": getAtt(s.id(t, "DeadLetterQueue"), "Arn"),
				"maxReceiveCount":     1000, // SQS's maximum, as delivery.MaxReceives
			}),
		})
	})
	check(t, "dead-letter queue", func() {
		s.template.HasResource(jsii.String("AWS::SQS::Queue"), map[string]any{
			"Metadata": map[string]any{"aws:cdk:path": "Parley-dev/DeadLetterQueue/Resource"},
			"Properties": assertions.Match_ObjectEquals(&map[string]any{
				"FifoQueue":                 true,
				"ContentBasedDeduplication": false,
				"DeduplicationScope":        "messageGroup",
				"FifoThroughputLimit":       "perMessageGroupId",
				"MessageRetentionPeriod":    14 * 24 * 3600,
				"Tags":                      []any{map[string]any{"Key": "parley:stage", "Value": "dev"}},
			}),
		})
	})
	// Lambda's rule for SQS sources, from the numbers themselves; the redrive budget is
	// not derived from maxAttempts (see deploy.MaxReceives).
	sys := cdkSystem(t, s)
	q := sys.Queues["DeliveryQueue"]
	if fn := sys.Functions["DeliveryFunction"]; q.VisibilityTimeout < 6*fn.Timeout {
		t.Errorf("visibility timeout %d s is less than 6 x the delivery timeout %d s", q.VisibilityTimeout, fn.Timeout)
	}
	if q.MaxReceiveCount != 1000 {
		t.Errorf("maxReceiveCount: got %d, want 1000 (SQS's maximum, as delivery.MaxReceives)", q.MaxReceiveCount)
	}
}

func TestEventSource(t *testing.T) {
	s := defaultSynth(t)
	check(t, "event source mapping", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), assertions.Match_ObjectEquals(&map[string]any{
			"EventSourceArn":        getAtt(s.id(t, "DeliveryQueue"), "Arn"),
			"FunctionName":          ref(s.id(t, "DeliveryFunction")),
			"BatchSize":             10,
			"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
			"ScalingConfig":         map[string]any{"MaximumConcurrency": 10},
			"Tags":                  []any{map[string]any{"Key": "parley:stage", "Value": "dev"}},
		}))
	})
}

func TestSecret(t *testing.T) {
	s := defaultSynth(t)
	check(t, "signing secret", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SecretsManager::Secret"), map[string]any{
			"GenerateSecretString": assertions.Match_ObjectEquals(&map[string]any{
				"ExcludePunctuation": true,
				"PasswordLength":     44,
			}),
		})
	})
}

func TestHTTPAPI(t *testing.T) {
	s := defaultSynth(t)
	api := s.id(t, "HttpApi")
	integration := s.id(t, "HttpApi/DefaultRoute/Inbound")
	check(t, "api", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), map[string]any{"ProtocolType": "HTTP", "Name": "Parley-dev"})
	})
	check(t, "integration", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Integration"), map[string]any{
			"ApiId":                ref(api),
			"IntegrationType":      "AWS_PROXY",
			"IntegrationUri":       getAtt(s.id(t, "InboundFunction"), "Arn"),
			"PayloadFormatVersion": "2.0",
		})
	})
	check(t, "route", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), map[string]any{
			"ApiId":    ref(api),
			"RouteKey": "$default",
			"Target":   map[string]any{"Fn::Join": []any{"", []any{"integrations/", ref(integration)}}},
		})
	})
	check(t, "stage", func() {
		s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]any{
			"ApiId": ref(api), "StageName": "$default", "AutoDeploy": true,
		})
	})
	// Every stage, method and path may invoke the function: the erasure (DELETE) and
	// bot message routes reach it as POST / does.
	check(t, "permission", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), map[string]any{
			"Action":       "lambda:InvokeFunction",
			"FunctionName": getAtt(s.id(t, "InboundFunction"), "Arn"),
			"Principal":    "apigateway.amazonaws.com",
			"SourceArn": map[string]any{"Fn::Join": []any{"", []any{
				"arn:", ref("AWS::Partition"), ":execute-api:", ref("AWS::Region"), ":", ref("AWS::AccountId"), ":", ref(api), "/*/*",
			}}},
		})
	})
}

func TestOutputs(t *testing.T) {
	s := defaultSynth(t)
	want := map[string]any{
		"WebhookUrl": map[string]any{"Fn::Join": []any{"", []any{
			"https://", ref(s.id(t, "HttpApi")), ".execute-api.", ref("AWS::Region"), ".", ref("AWS::URLSuffix"), "/",
		}}},
		"QueueUrl":           ref(s.id(t, "DeliveryQueue")),
		"DeadLetterQueueUrl": ref(s.id(t, "DeadLetterQueue")),
		"TableName":          ref(s.id(t, "Table")),
		"SigningSecretArn":   ref(s.id(t, "SigningSecret")),
	}
	for name, value := range want {
		check(t, "output "+name, func() { s.template.HasOutput(jsii.String(name), map[string]any{"Value": value}) })
	}
	var got []string
	for name := range s.json["Outputs"].(map[string]any) {
		got = append(got, name)
	}
	sort.Strings(got)
	if want := []string{"DeadLetterQueueUrl", "QueueUrl", "SigningSecretArn", "TableName", "WebhookUrl"}; !slices.Equal(got, want) {
		t.Errorf("outputs: got %v, want %v", got, want)
	}
}

func TestAlarms(t *testing.T) {
	s := defaultSynth(t)
	sys := cdkSystem(t, s)
	sqsAlarm := func(queue, metric string, period int, threshold float64) alarm {
		return alarm{Namespace: "AWS/SQS", Metric: metric, Statistic: "Maximum", Dimension: "QueueName=getatt:" + queue + ".QueueName",
			Comparison: "GreaterThanThreshold", TreatMissingData: "notBreaching", Period: period, EvaluationPeriods: 1, Threshold: threshold}
	}
	fnAlarm := func(fn, metric string) alarm {
		return alarm{Namespace: "AWS/Lambda", Metric: metric, Statistic: "Sum", Dimension: "FunctionName=ref:" + fn,
			Comparison: "GreaterThanThreshold", TreatMissingData: "notBreaching", Period: 300, EvaluationPeriods: 1, Threshold: 0}
	}
	parleyAlarm := func(metric string, threshold float64) alarm {
		return alarm{Namespace: "Parley", Metric: metric, Statistic: "Sum", Dimension: "Service=parley",
			Comparison: "GreaterThanThreshold", TreatMissingData: "notBreaching", Period: 300, EvaluationPeriods: 1, Threshold: threshold}
	}
	want := map[string]alarm{
		"EndpointDisabled":           parleyAlarm("EndpointDisabled", 0),
		"DeadLettered":               parleyAlarm("DeadLettered", 0),
		"FailedAttemptsHigh":         parleyAlarm("FailedAttempts", 100),
		"DeadLetterQueueNotEmpty":    sqsAlarm("DeadLetterQueue", "ApproximateNumberOfMessagesVisible", 60, 0),
		"DeliveryQueueOldestMessage": sqsAlarm("DeliveryQueue", "ApproximateAgeOfOldestMessage", 300, 3600),
		"InboundErrors":              fnAlarm("InboundFunction", "Errors"),
		"InboundThrottles":           fnAlarm("InboundFunction", "Throttles"),
		"DeliveryErrors":             fnAlarm("DeliveryFunction", "Errors"),
		"DeliveryThrottles":          fnAlarm("DeliveryFunction", "Throttles"),
	}
	for _, d := range diff("Alarms", sys.Alarms, want) {
		t.Error(d)
	}
	// Without alarmEmail there is no topic and no action.
	check(t, "no SNS topic", func() { s.template.ResourceCountIs(jsii.String("AWS::SNS::Topic"), jsii.Number(0)) })
	check(t, "no alarm actions", func() {
		s.template.AllResourcesProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"AlarmActions": assertions.Match_Absent(), "OKActions": assertions.Match_Absent(),
		})
	})
}

func TestAlarmEmail(t *testing.T) {
	s := synth(t, given{settings.AlarmEmail: "ops@example.com"}, false)
	topic := s.id(t, "AlarmTopic")
	check(t, "subscription", func() {
		s.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
			"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": ref(topic),
		})
	})
	check(t, "alarm actions", func() {
		s.template.AllResourcesProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
			"AlarmActions": []any{ref(topic)}, "OKActions": []any{ref(topic)},
		})
	})
	check(t, "nine alarms", func() { s.template.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(9)) })
	check(t, "topic output", func() { s.template.HasOutput(jsii.String("AlarmTopicArn"), map[string]any{"Value": ref(topic)}) })
}

func TestSettingsFromContext(t *testing.T) {
	s := synth(t, given{
		settings.Stage: "prod", settings.Bot: "rules", settings.RecordTTL: "400h", settings.RetryMinDelay: "1s", settings.RetryMaxDelay: "1h",
		settings.MaxAttempts: "5", settings.DeliveryTimeout: "30s", settings.RemovalPolicy: "destroy", deploy.OldestMessageAgeAlarm: "30m",
		settings.HistoryTTL: "2160h", settings.BotTimeout: "2m", settings.MaxConcurrency: float64(250),
		settings.HoldLimit: "0", settings.DisableAfterFailures: "3", settings.DisableAfter: "90m", settings.EndpointRateLimit: "0.25", deploy.FailedAttemptsAlarm: "7",
	}, false)
	if got := *s.stack.StackName(); got != "Parley-prod" {
		t.Errorf("stack name: got %s, want Parley-prod", got)
	}
	sys := cdkSystem(t, s)
	env := sys.Functions["DeliveryFunction"].Environment
	for k, want := range map[string]string{
		"PARLEY_RETRY_MIN_DELAY": "1s", "PARLEY_RETRY_MAX_DELAY": "1h", "PARLEY_MAX_ATTEMPTS": "5", "PARLEY_DELIVERY_TIMEOUT": "30s",
		"PARLEY_BOT": "rules", "PARLEY_HISTORY_TTL": "2160h", "PARLEY_BOT_TIMEOUT": "2m",
		"PARLEY_HOLD_LIMIT": "0", "PARLEY_DISABLE_AFTER_FAILURES": "3", "PARLEY_DISABLE_AFTER": "90m", "PARLEY_ENDPOINT_RATE_LIMIT": "0.25",
	} {
		if env[k] != want {
			t.Errorf("delivery %s: got %q, want %q", k, env[k], want)
		}
	}
	if env := sys.Functions["InboundFunction"].Environment; env["PARLEY_RECORD_TTL"] != "400h" || env["PARLEY_HISTORY_TTL"] != "2160h" {
		t.Errorf("inbound PARLEY_RECORD_TTL, PARLEY_HISTORY_TTL: got %q, %q, want 400h, 2160h", env["PARLEY_RECORD_TTL"], env["PARLEY_HISTORY_TTL"])
	}
	// The timing follows the bot timeout: 120 s + 2 x 30 s + 20 s, and six times that.
	if got := sys.Functions["DeliveryFunction"].Timeout; got != 200 {
		t.Errorf("delivery function timeout with botTimeout 2m: got %d s, want 200", got)
	}
	if got := sys.Queues["DeliveryQueue"].VisibilityTimeout; got != 1200 {
		t.Errorf("visibility timeout with botTimeout 2m: got %d s, want 1200", got)
	}
	if got := sys.Functions["DeliveryFunction"].Queues[0].MaximumConcurrency; got != 250 {
		t.Errorf("maximum concurrency: got %d, want 250", got)
	}
	if got := sys.Functions["InboundFunction"].Timeout; got != 29 {
		t.Errorf("inbound timeout with botTimeout 2m: got %d s, want 29 (the bot does not run there)", got)
	}
	// maxAttempts does not change the redrive budget.
	if got := sys.Queues["DeliveryQueue"].MaxReceiveCount; got != 1000 {
		t.Errorf("maxReceiveCount with maxAttempts 5: got %d, want 1000", got)
	}
	if got := sys.Alarms["DeliveryQueueOldestMessage"].Threshold; got != 1800 {
		t.Errorf("oldest message alarm threshold: got %v, want 1800", got)
	}
	if got := sys.Alarms["FailedAttemptsHigh"].Threshold; got != 7 {
		t.Errorf("failed attempts alarm threshold: got %v, want 7", got)
	}
	// The dashboard marks the oldest message alarm's threshold.
	widget, _ := dashboardWidgets(sys.Dashboards["Dashboard"])[5].(map[string]any)
	if got := fmt.Sprint(widget["properties"].(map[string]any)["annotations"]); got != "map[horizontal:[map[label:alarm value:1800 yAxis:left]]]" {
		t.Errorf("oldest message widget annotations: got %s, want the alarm at 1800", got)
	}
	if got := sys.Tables["Table"].DeletionPolicy; got != "Delete" {
		t.Errorf("table deletion policy: got %s, want Delete", got)
	}
	check(t, "log groups destroyed with the stack", func() {
		s.template.AllResources(jsii.String("AWS::Logs::LogGroup"), map[string]any{"DeletionPolicy": "Delete"})
	})
	check(t, "stage tag", func() {
		s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Tags": []any{map[string]any{"Key": "parley:stage", "Value": "prod"}},
		})
	})
}

// TestBundlingFailure: a function that does not build fails the synth with the
// compiler's message, instead of falling back to Docker.
func TestBundlingFailure(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("Broken"), nil)
	var got any
	func() {
		defer func() { got = recover() }()
		awslambda.NewFunction(stack, jsii.String("Function"), &awslambda.FunctionProps{
			Runtime: awslambda.Runtime_PROVIDED_AL2023(),
			Handler: jsii.String("bootstrap"),
			Code:    functionCode(repoRoot(t), "./functions/missing", assetFile{name: "rules.json", source: filepath.Join(repoRoot(t), "infra", "testdata", "rules.json")}),
		})
	}()
	msg := fmt.Sprint(got)
	for _, want := range []string{"go build -tags lambda.norpc -trimpath", "./functions/missing", "directory not found"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	// The jsii runtime is still usable afterwards.
	s := synth(t, nil, false)
	check(t, "synth after a failed build", func() {
		s.template.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(2))
	})
}

// TestTracing: off by default (no TracingConfig: Lambda's PassThrough, and no X-Ray
// permission; TestFunctions and TestPermissions check it); with tracing=active, both
// functions are traced and may write traces, on "*" as X-Ray has no resource-level
// permissions, and nothing else changes.
func TestTracing(t *testing.T) {
	s := synth(t, given{settings.Tracing: "active"}, false)
	sys := cdkSystem(t, s)
	xray := []string{"xray:PutTelemetryRecords", "xray:PutTraceSegments"}
	for name, perms := range map[string]map[string][]string{"InboundFunction": inboundPermissions, "DeliveryFunction": deliveryPermissions} {
		f := sys.Functions[name]
		if f.Tracing != "Active" {
			t.Errorf("%s tracing: got %s, want Active", name, f.Tracing)
		}
		for _, d := range diff(name+".Permissions", f.Permissions, with2(perms, map[string][]string{"*": xray})) {
			t.Error(d)
		}
		check(t, name+" tracing config", func() {
			s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
				"Role": getAtt(s.id(t, name+"/ServiceRole"), "Arn"), "TracingConfig": map[string]any{"Mode": "Active"},
			})
		})
	}
	// passthrough, given, is the default.
	for _, d := range diff("tracing=passthrough", cdkSystem(t, synth(t, given{settings.Tracing: "passthrough"}, false)), cdkSystem(t, synth(t, nil, false))) {
		t.Error(d)
	}
	for _, f := range cdkSystem(t, defaultSynth(t)).Functions {
		if f.Tracing != "PassThrough" || f.Permissions["*"] != nil {
			t.Errorf("default: tracing %s, permissions on *: %v; want PassThrough and none", f.Tracing, f.Permissions["*"])
		}
	}
}

// TestDashboard: one dashboard, Parley-<stage>-<region>, three rows of three graphs:
// what each shows, from which metrics and resources, with which statistics.
func TestDashboard(t *testing.T) {
	s := defaultSynth(t)
	check(t, "dashboard name", func() {
		s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Dashboard"), map[string]any{
			"DashboardName": map[string]any{"Fn::Join": []any{"", []any{"Parley-dev-", ref("AWS::Region")}}},
		})
	})
	d := cdkSystem(t, s).Dashboards["Dashboard"]
	if d.Name != "Parley-dev-us-east-1" {
		t.Errorf("name: got %q", d.Name)
	}
	parley := func(name, stat string) string { return "Parley " + name + " Service=parley " + stat }
	sqs := func(queue, name string) string {
		return "AWS/SQS " + name + " QueueName=getatt:" + queue + ".QueueName Maximum"
	}
	lambda := func(name, stat string) []string {
		return []string{"AWS/Lambda " + name + " FunctionName=ref:InboundFunction " + stat, "AWS/Lambda " + name + " FunctionName=ref:DeliveryFunction " + stat}
	}
	want := []struct {
		title   string
		x, y    float64
		metrics []string
	}{
		{"Inbound: accepted, replayed, pushed", 0, 0, []string{parley("Accepted", "Sum"), parley("Replayed", "Sum"), parley("Pushed", "Sum")}},
		{"Bot: turns and latency", 8, 0, []string{parley("Turns", "Sum"), parley("BotLatency", "p50") + " right", parley("BotLatency", "p99") + " right"}},
		{"Delivery: delivered and latency", 16, 0, []string{parley("Delivered", "Sum"), parley("DeliveryLatency", "p50") + " right", parley("DeliveryLatency", "p99") + " right"}},
		{"Delivery failures", 0, 6, []string{parley("FailedAttempts", "Sum"), parley("DeadLettered", "Sum"), parley("EndpointDisabled", "Sum")}},
		{"Queues: messages waiting", 8, 6, []string{sqs("DeliveryQueue", "ApproximateNumberOfMessagesVisible"), sqs("DeadLetterQueue", "ApproximateNumberOfMessagesVisible")}},
		{"Delivery queue: oldest message", 16, 6, []string{sqs("DeliveryQueue", "ApproximateAgeOfOldestMessage")}},
		{"Functions: errors and throttles", 0, 12, append(lambda("Errors", "Sum"), lambda("Throttles", "Sum")...)},
		{"Functions: duration", 8, 12, append(lambda("Duration", "p50"), lambda("Duration", "p99")...)},
		{"Functions: invocations", 16, 12, lambda("Invocations", "Sum")},
	}
	widgets := dashboardWidgets(d)
	if len(widgets) != len(want) {
		t.Fatalf("widgets: got %d, want %d", len(widgets), len(want))
	}
	for i, w := range want {
		got, _ := widgets[i].(map[string]any)
		props, _ := got["properties"].(map[string]any)
		if props["title"] != w.title || got["x"] != w.x || got["y"] != w.y || got["width"] != float64(deploy.WidgetWidth) || got["height"] != float64(deploy.WidgetHeight) {
			t.Errorf("widget %d: got %q at (%v, %v) %vx%v, want %q at (%v, %v) %dx%d", i, props["title"], got["x"], got["y"], got["width"], got["height"],
				w.title, w.x, w.y, deploy.WidgetWidth, deploy.WidgetHeight)
		}
		if props["region"] != "us-east-1" || props["view"] != "timeSeries" {
			t.Errorf("widget %q: region %v, view %v; want the stack's region, timeSeries", w.title, props["region"], props["view"])
		}
		var metrics []string
		list, _ := props["metrics"].([]any)
		for _, m := range list {
			m, _ := m.([]any)
			if len(m) != 5 {
				t.Errorf("widget %q: metric %v, want namespace, name, one dimension, options", w.title, m)
				continue
			}
			opts, _ := m[4].(map[string]any)
			desc := fmt.Sprintf("%v %v %v=%v %v", m[0], m[1], m[2], m[3], opts["stat"])
			if opts["yAxis"] != nil {
				desc += fmt.Sprint(" ", opts["yAxis"])
			}
			if opts["label"] == nil || opts["period"] != nil {
				t.Errorf("widget %q: metric %v has no label, or a period other than the 5 minutes of every graph", w.title, m)
			}
			metrics = append(metrics, desc)
		}
		if !slices.Equal(metrics, w.metrics) {
			t.Errorf("widget %q metrics:\n got  %q\n want %q", w.title, metrics, w.metrics)
		}
	}
}
