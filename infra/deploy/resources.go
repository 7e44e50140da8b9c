package deploy

import (
	"fmt"
	"time"

	"github.com/parley-chat/parley/shared/delivery"
	"github.com/parley-chat/parley/shared/settings"
)

// Ref names a resource, or an attribute of one, that an environment variable, a
// permission, an alarm, the dashboard or an output refers to. Each template writes it
// its own way.
type Ref int

// The references.
const (
	TableName Ref = iota + 1
	TableArn
	QueueURL // the delivery queue
	QueueArn
	QueueName
	DeadLetterQueueURL
	DeadLetterQueueArn
	DeadLetterQueueName
	SigningSecretArn
	// LLMKeyArn is the default channel's llm API key, from llmApiKeySecretName: a
	// partial ARN, without the random suffix; LLMKeyArns are the complete ones it may
	// stand for (the name, "-" and six characters).
	LLMKeyArn
	LLMKeyArns
	ChannelKeysArn // the channels' llm keys: the secrets named ChannelKeySecrets
	InboundFunctionName
	DeliveryFunctionName
	WebhookURL // the HTTP API's
	AlarmTopicArn
	Region   // the stack's
	Anything // "*"
)

// The resources' fixed properties.
const (
	// Runtime and Architecture of both functions: Go's bootstrap on arm64.
	Runtime      = "provided.al2023"
	Architecture = "arm64"
	Handler      = "bootstrap"
	// BatchSize is the delivery queue's event source's: the FIFO maximum.
	BatchSize = 10
	// SigningSecretLength: alphanumeric, so valid base64 for a 33-byte key.
	SigningSecretLength      = 44
	SigningSecretDescription = "Parley webhook signing key; receivers use it as whsec_<value>"
	LogRetentionDays         = 30
	// ChannelKeySecrets is the naming convention for the Secrets Manager secrets that
	// hold channels' llm API keys (parley channel create --llm-api-key-secret): the
	// operator creates them, the delivery function may read any secret named so.
	ChannelKeySecrets = "parley/*"
	// The table: one partition key and one sort key, both strings; items expire by the
	// TTL attribute (Unix seconds), shared/dynamo's layout.
	PartitionKey = "pk"
	SortKey      = "sk"
	TTLAttribute = "expiresAt"
)

// Both queues keep a message the functions' Retention (SQS's maximum, 14 days); the
// delivery queue's redrive budget is delivery.MaxReceives, SQS's maximum, whatever the
// attempts are: the delivery function counts attempts itself and dead-letters a
// message, with the reason, after its last one. The redrive policy is only the backstop
// for a message that crashes the function every time; SQS's receive count is no
// attempt count, as every message held back behind a failing one of its conversation is
// received again with it.
const (
	Retention   = delivery.Retention
	MaxReceives = delivery.MaxReceives
)

// Function is one of the two Lambda functions.
type Function struct {
	// ID is the CDK construct id and the SAM logical id, which `sam build` builds with
	// the root Makefile's build-<ID> target and events/env.json keys by.
	ID          string
	Part        settings.Part // the settings it reads
	Package     string        // its main package, from the repository root
	Description string
	MemoryMB    int
	// Timeout is the inbound function's; the delivery function's follows the bot
	// timeout (Config.Timing).
	Timeout    time.Duration
	Statements []Statement
	Logs       string // its log group's id
}

// Statement is one permission of a function's role.
type Statement struct {
	Why      string // why the function needs it, for the SAM template
	Actions  []string
	Resource Ref
	Bot      string // only with this bot as the default channel's
	// Tracing: only with tracing=active. In the CDK stack the function's active
	// tracing grants it.
	Tracing bool
	// EventSource: in the CDK stack the SQS event source grants it.
	EventSource bool
}

// xray is what active tracing needs; X-Ray has no resource-level permissions.
var xray = Statement{Why: "With Tracing=active: X-Ray has no resource-level permissions.",
	Actions: []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, Resource: Anything, Tracing: true}

// Inbound accepts and hands off: no bot setting reaches it.
var Inbound = Function{
	ID: "InboundFunction", Part: settings.Inbound, Package: "./functions/inbound", Logs: "InboundLogs",
	Description: "Parley inbound: the webhook API; queues user and bot messages, serves history and erasure",
	MemoryMB:    256,
	// API Gateway gives up on its integration after 30 s, so 29. An erasure (DELETE
	// /v1/conversations/{id}, DELETE /v1/users/{id}) takes up to inbound.EraseTimeout
	// after the token lookup; every other request makes a few calls, each bounded in
	// code (inbound.DefaultCallTimeout). A test checks both against this.
	Timeout: 29 * time.Second,
	Statements: []Statement{
		{Why: "The token lookup and the replay check (GetItem); the message record, a bot message's record and an erasure's tombstones (PutItem); the history, the conversation's user for a bot message and the conversation an erasure reads (Query); the user erasure's search for the user's conversations (Scan) and its deletes (BatchWriteItem, which IAM cannot limit to deletes).",
			Actions: []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchWriteItem"}, Resource: TableArn},
		{Actions: []string{"sqs:SendMessage"}, Resource: QueueArn},
		xray,
	},
}

// Delivery runs each channel's bot for each turn and POSTs its messages.
var Delivery = Function{
	ID: "DeliveryFunction", Part: settings.Delivery, Package: "./functions/delivery", Logs: "DeliveryLogs",
	Description: "Parley delivery: runs each channel's bot for each turn and POSTs its messages to the channel's Response Endpoint",
	MemoryMB:    256,
	Statements: []Statement{
		{Why: "DeleteMessage and ChangeMessageVisibility also authorize the function's DeleteMessageBatch and ChangeMessageVisibilityBatch calls (SQS has no separate batch actions).",
			Actions:  []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
			Resource: QueueArn, EventSource: true},
		{Actions: []string{"sqs:SendMessage"}, Resource: DeadLetterQueueArn},
		{Why: "The default channel's signing secret (not the other channels': those are in the table, which is encrypted at rest).",
			Actions: []string{"secretsmanager:GetSecretValue"}, Resource: SigningSecretArn},
		{Why: "The llm API keys of the channels created with the CLI: by convention, secrets named parley/... (infra/README.md, Channels).",
			Actions: []string{"secretsmanager:GetSecretValue"}, Resource: ChannelKeysArn},
		{Why: "A channel's settings and the exchange when it exists (GetItem), the record and exchange of a job that may have run before (BatchGetItem), the exchange (PutItem), attempt counts and take-overs (UpdateItem), tombstones (DeleteItem), and the conversation's recent history for an llm bot (Query): any channel may have one, whatever the default channel's bot.",
			Actions:  []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"},
			Resource: TableArn},
		{Why: "With Bot=llm: the default channel's API key, by its complete ARNs (GetSecretValue alone: no DescribeSecret).",
			Actions: []string{"secretsmanager:GetSecretValue"}, Resource: LLMKeyArns, Bot: "llm"},
		xray,
	},
}

// Functions are both, in the order the templates list them.
var Functions = []*Function{&Inbound, &Delivery}

// EnvVar is one variable of a function's environment.
type EnvVar struct {
	Setting *settings.Setting // its declaration: the variable is Setting.Env
	// Resource gives the value when it is not a setting's: the table's name, a queue's
	// URL, a secret's ARN. 0: the deploy setting's value (Config.Value).
	Resource Ref
}

// Optional says whether the variable is set only when its setting is given.
func (e EnvVar) Optional() bool { return e.Resource == 0 && optional(e.Setting) }

// fromResources are the variables whose values are resources of the stack.
var fromResources = map[*settings.Setting]Ref{
	settings.TableName:          TableName,
	settings.QueueURL:           QueueURL,
	settings.DeadLetterQueueURL: DeadLetterQueueURL,
	settings.SigningSecretARN:   SigningSecretArn,
	settings.LLMAPIKeySecretARN: LLMKeyArn,
}

// notDeployed are the variables a function reads that a deployment leaves unset, and why.
var notDeployed = map[*settings.Setting]string{
	settings.LLMAPIKey: "in AWS the key is in Secrets Manager: PARLEY_LLM_API_KEY_SECRET_ARN",
}

// Environment is f's environment: every setting shared/settings declares for f's part,
// from its deploy setting or from a resource. A declared setting the deployment can
// give no value is a mistake in the declarations, and panics.
func (f *Function) Environment() []EnvVar {
	// The resources first, then the settings, each in shared/settings' order.
	var resources, values []EnvVar
	for _, s := range settings.All {
		if s.Env == "" || !s.Reads(f.Part) {
			continue
		}
		if _, ok := notDeployed[s]; ok {
			continue
		}
		if r, ok := fromResources[s]; ok {
			resources = append(resources, EnvVar{Setting: s, Resource: r})
			continue
		}
		if s.Context == "" {
			panic(fmt.Sprintf("deploy: %s reads %s, which is no deploy setting and no resource", f.ID, s.Env))
		}
		values = append(values, EnvVar{Setting: s})
	}
	return append(resources, values...)
}

// LocalEndpoints are variables the SAM template alone declares, empty: `sam local`
// passes a function only the variables its template declares (their values from the
// shell or --env-vars), and these point the functions' SDK clients at the emulators
// of `make local-aws`. Empty, as deployed, they are unset to the functions
// (shared/awsenv), and the CDK stack has no use for them.
var LocalEndpoints = []string{"AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"}

// Metric is a CloudWatch metric with a statistic over 5 minutes (or an alarm's period).
type Metric struct {
	Namespace string
	Name      string
	Dimension string
	Of        Ref // the dimension's value; 0: Service (Parley's own metrics)
	Statistic string
	Label     string // on the dashboard
	Right     bool   // on the dashboard's right axis
}

// Parley's own metrics: the functions' log lines carry them in the Embedded Metric
// Format (shared/metrics), so CloudWatch Logs makes them without an API call. One
// dimension, Service=parley: their number and cost do not grow with channels.
const (
	MetricsNamespace = "Parley"
	MetricsDimension = "Service"
	MetricsService   = "parley"
)

// ParleyMetrics are the metric names, as the functions write them: the inbound
// function's outcomes, the delivery function's turns (bot runs), deliveries and
// failures. Latencies are in ms.
var ParleyMetrics = []string{"Accepted", "Replayed", "Pushed", "Turns", "BotLatency", "Delivered",
	"DeliveryLatency", "FailedAttempts", "DeadLettered", "EndpointDisabled"}

func parley(name, statistic, label string) Metric {
	return Metric{Namespace: MetricsNamespace, Name: name, Dimension: MetricsDimension, Statistic: statistic, Label: label}
}

func sqsMetric(queue Ref, name, statistic, label string) Metric {
	return Metric{Namespace: "AWS/SQS", Name: name, Dimension: "QueueName", Of: queue, Statistic: statistic, Label: label}
}

func lambdaMetric(fn Ref, name, statistic, label string) Metric {
	return Metric{Namespace: "AWS/Lambda", Name: name, Dimension: "FunctionName", Of: fn, Statistic: statistic, Label: label}
}

// Alarm fires when its metric is above the threshold for one period; missing data is
// fine.
type Alarm struct {
	ID string
	// Description may tell settings' values: value writes one as the template can (the
	// CDK stack: the value; SAM: a substitution of the parameter).
	Description func(value func(*settings.Setting) string) string
	Metric      Metric
	Period      time.Duration
	Threshold   float64
	// ThresholdFrom, when set, gives the threshold instead: the setting's value in its
	// SAM parameter's unit (Config.Number).
	ThresholdFrom *settings.Setting
}

// Alarms watch what needs a person: undeliverable messages, a disabled endpoint,
// failing deliveries, a delivery backlog, and function errors and throttles. An event
// of Parley's own metrics fires its alarm for the period it happened in; the state it
// reports (a disabled endpoint, a dead letter) lasts until someone acts.
var Alarms = func() []Alarm {
	fixed := func(text string) func(func(*settings.Setting) string) string {
		return func(func(*settings.Setting) string) string { return text }
	}
	alarms := []Alarm{
		{ID: "DeadLetterQueueNotEmpty", Description: fixed("Messages could not be delivered and are in the dead-letter queue (parley dlq list)"),
			Metric: sqsMetric(DeadLetterQueueName, "ApproximateNumberOfMessagesVisible", "Maximum", ""), Period: time.Minute},
		{ID: "DeliveryQueueOldestMessage", Description: func(value func(*settings.Setting) string) string {
			return "A turn has waited in the delivery queue for more than " + value(OldestMessageAgeAlarm) +
				": is the bot or the Response Endpoint down, or disabled (parley endpoint status)?"
		}, Metric: sqsMetric(QueueName, "ApproximateAgeOfOldestMessage", "Maximum", ""), Period: 5 * time.Minute, ThresholdFrom: OldestMessageAgeAlarm},
		{ID: "EndpointDisabled", Description: func(value func(*settings.Setting) string) string {
			return "A Response Endpoint was disabled (410 Gone, or " + value(settings.DisableAfterFailures) + " failed attempts in a row over " +
				value(settings.DisableAfter) + "): its messages wait, nothing is lost; parley endpoint status says why, parley endpoint enable resumes in order"
		}, Metric: parley("EndpointDisabled", "Sum", ""), Period: 5 * time.Minute},
		{ID: "DeadLettered", Description: func(value func(*settings.Setting) string) string {
			return "Messages went to the dead-letter queue in the last 5 minutes: attempts used up, or a failing message stepped aside after the hold limit (" +
				value(settings.HoldLimit) + ") (parley dlq list, parley delivery show)"
		}, Metric: parley("DeadLettered", "Sum", ""), Period: 5 * time.Minute},
		{ID: "FailedAttemptsHigh", Description: func(value func(*settings.Setting) string) string {
			return "More than " + value(FailedAttemptsAlarm) + " delivery attempts failed in 5 minutes: is a Response Endpoint failing? (parley endpoint status)"
		}, Metric: parley("FailedAttempts", "Sum", ""), Period: 5 * time.Minute, ThresholdFrom: FailedAttemptsAlarm},
	}
	for _, f := range []struct {
		title string
		ref   Ref
	}{{"Inbound", InboundFunctionName}, {"Delivery", DeliveryFunctionName}} {
		alarms = append(alarms,
			Alarm{ID: f.title + "Errors", Description: fixed("The " + f.title + " function failed"),
				Metric: lambdaMetric(f.ref, "Errors", "Sum", ""), Period: 5 * time.Minute},
			Alarm{ID: f.title + "Throttles", Description: fixed("The " + f.title + " function was throttled"),
				Metric: lambdaMetric(f.ref, "Throttles", "Sum", ""), Period: 5 * time.Minute})
	}
	return alarms
}()

// Output is one of the stack's outputs.
type Output struct {
	ID, Description string
	Value           Ref
}

// Outputs are what an operator needs from the stack (and AlarmTopicArn with alarmEmail).
var Outputs = []Output{
	{"WebhookUrl", "POST user messages here", WebhookURL},
	{"QueueUrl", "delivery queue (FIFO)", QueueURL},
	{"DeadLetterQueueUrl", "messages that could not be delivered", DeadLetterQueueURL},
	{"TableName", "channels, tokens, message records and conversation history", TableName},
	{"SigningSecretArn", "the default channel's webhook signing key", SigningSecretArn},
}

// AlarmTopicOutput is the output the alarm topic adds, with alarmEmail only.
var AlarmTopicOutput = Output{"AlarmTopicArn", "alarm notifications", AlarmTopicArn}
