package main

import (
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Sizes of the two functions; the delivery function's timeout follows the bot timeout
// (Config.Timing). The SAM template (../template.yaml) repeats them; the parity test
// keeps the two in step.
const (
	inboundMemoryMB = 256
	// inboundTimeoutSeconds: API Gateway gives up on its integration after 30 s, so 29.
	// An erasure (DELETE /v1/conversations/{id}, DELETE /v1/users/{id}) takes up to
	// inbound.EraseTimeout, 20 s, after the token lookup; every other request makes a few
	// calls, each bounded at 3 s in code (inbound.DefaultCallTimeout). timing_test.go
	// checks both against the root module's constants.
	inboundTimeoutSeconds = 29
	deliveryMemoryMB      = 256
	esmBatchSize          = 10 // the FIFO maximum
	signingSecretLength   = 44 // alphanumeric, so valid base64 for a 33-byte key
	// channelKeySecrets is the naming convention for the Secrets Manager secrets that
	// hold channels' llm API keys (parley channel create --llm-api-key-secret): the
	// operator creates them, the delivery function may read any secret named so.
	channelKeySecrets = "parley/*"
)

// Actions each function may perform, and nothing more. Listed here so the tests can
// compare them with the synthesized policies and with template.yaml.
var (
	// The token lookup and the replay check (GetItem); the message record, a bot
	// message's record and an erasure's tombstones (PutItem); the history, the
	// conversation's user for a bot message and the conversation an erasure reads
	// (Query); the user erasure's search for the user's conversations (Scan); the
	// erasure's deletes (BatchWriteItem).
	inboundTableActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchWriteItem"}
	inboundQueueActions = []string{"sqs:SendMessage"}
	// The event source grants these on the delivery queue; IAM authorizes the function's
	// own DeleteMessageBatch and ChangeMessageVisibilityBatch calls under DeleteMessage
	// and ChangeMessageVisibility (SQS has no separate batch actions).
	deliveryQueueActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
	deliveryDLQActions   = []string{"sqs:SendMessage"}
	// The default channel's signing secret; the llm API keys of the other channels
	// (channelKeySecrets); with bot=llm, the default channel's key.
	deliverySecretActions = []string{"secretsmanager:GetSecretValue"}
	// A channel's settings and the exchange when it exists (GetItem), the record and
	// exchange of a job that may have run before (BatchGetItem), the exchange (PutItem),
	// attempt counts and take-overs (UpdateItem), tombstones (DeleteItem), and the
	// conversation's recent history for an llm bot (Query): any channel may have one,
	// whatever the default channel's bot.
	deliveryTableActions = []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"}
)

// NewParleyStack defines the whole deployment: the webhook API and inbound function,
// the table, the FIFO delivery queue and its dead-letter queue, the delivery function
// (which runs the bots), the signing secret, the alarms and the dashboard. The
// configuration is the default channel's (the functions' environment); every other
// channel is data in the table, created with the CLI, and needs nothing here.
func NewParleyStack(scope constructs.Construct, cfg Config, repoRoot string) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(cfg.StackName()), &awscdk.StackProps{
		Description: jsii.String("Parley Messaging API (" + cfg.Stage + ")"),
	})
	awscdk.Tags_Of(stack).Add(jsii.String("parley:stage"), jsii.String(cfg.Stage), nil)

	removal := awscdk.RemovalPolicy_RETAIN
	if cfg.RemovalPolicy == "destroy" {
		removal = awscdk.RemovalPolicy_DESTROY
	}

	table := awsdynamodb.NewTable(stack, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
		SortKey:             &awsdynamodb.Attribute{Name: jsii.String("sk"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String("expiresAt"),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: removal,
	})

	// Both FIFO queues in high-throughput mode: deduplication and the throughput limit
	// per message group (a conversation), not per queue.
	retention := awscdk.Duration_Days(jsii.Number(14))
	deadLetters := awssqs.NewQueue(stack, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		Fifo:                      jsii.Bool(true),
		ContentBasedDeduplication: jsii.Bool(false),
		DeduplicationScope:        awssqs.DeduplicationScope_MESSAGE_GROUP,
		FifoThroughputLimit:       awssqs.FifoThroughputLimit_PER_MESSAGE_GROUP_ID,
		RetentionPeriod:           retention,
	})
	queue := awssqs.NewQueue(stack, jsii.String("DeliveryQueue"), &awssqs.QueueProps{
		Fifo: jsii.Bool(true),
		// The code sets MessageDeduplicationId itself (the job's ref).
		ContentBasedDeduplication: jsii.Bool(false),
		DeduplicationScope:        awssqs.DeduplicationScope_MESSAGE_GROUP,
		FifoThroughputLimit:       awssqs.FifoThroughputLimit_PER_MESSAGE_GROUP_ID,
		RetentionPeriod:           retention,
		VisibilityTimeout:         awscdk.Duration_Seconds(jsii.Number(cfg.Timing.VisibilityTimeout.Seconds())),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue: deadLetters,
			// Backstop for crashes only: after its last attempt the delivery function
			// moves the message to the dead-letter queue itself, with the reason. Not
			// derived from maxAttempts: see maxReceiveCount.
			MaxReceiveCount: jsii.Number(maxReceiveCount),
		},
	})

	secret := awssecretsmanager.NewSecret(stack, jsii.String("SigningSecret"), &awssecretsmanager.SecretProps{
		Description: jsii.String("Parley webhook signing key; receivers use it as whsec_<value>"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			ExcludePunctuation: jsii.Bool(true),
			PasswordLength:     jsii.Number(signingSecretLength),
		},
	})

	// The inbound function accepts and hands off: no bot setting reaches it.
	inbound := newFunction(stack, cfg, "Inbound", removal, &awslambda.FunctionProps{
		Description: jsii.String("Parley inbound: the webhook API; queues user and bot messages, serves history and erasure"),
		Code:        functionCode(repoRoot, "./functions/inbound"),
		MemorySize:  jsii.Number(inboundMemoryMB),
		Timeout:     awscdk.Duration_Seconds(jsii.Number(inboundTimeoutSeconds)),
		Environment: &map[string]*string{
			"PARLEY_TABLE_NAME": table.TableName(),
			"PARLEY_QUEUE_URL":  queue.QueueUrl(),
			"PARLEY_RECORD_TTL": jsii.String(cfg.RecordTTL),
		},
	})
	allow(inbound, inboundTableActions, table.TableArn())
	allow(inbound, inboundQueueActions, queue.QueueArn())

	deliveryEnv := map[string]*string{
		"PARLEY_TABLE_NAME":            table.TableName(),
		"PARLEY_RESPONSE_ENDPOINT_URL": jsii.String(cfg.ResponseEndpointURL),
		"PARLEY_SIGNING_SECRET_ARN":    secret.SecretArn(),
		"PARLEY_QUEUE_URL":             queue.QueueUrl(),
		"PARLEY_DEAD_LETTER_QUEUE_URL": deadLetters.QueueUrl(),
		"PARLEY_RETRY_MIN_DELAY":       jsii.String(cfg.RetryMinDelay),
		"PARLEY_RETRY_MAX_DELAY":       jsii.String(cfg.RetryMaxDelay),
		"PARLEY_MAX_ATTEMPTS":          jsii.String(strconv.Itoa(cfg.MaxAttempts)),
		"PARLEY_DELIVERY_TIMEOUT":      jsii.String(cfg.DeliveryTimeout),
		"PARLEY_BOT":                   jsii.String(cfg.Bot),
		"PARLEY_BOT_TIMEOUT":           jsii.String(cfg.BotTimeout),
		"PARLEY_HISTORY_TTL":           jsii.String(cfg.HistoryTTL),
		// Ordering and endpoint health (every channel's), and the default channel's
		// rate limit.
		"PARLEY_HOLD_LIMIT":             jsii.String(cfg.HoldLimit),
		"PARLEY_DISABLE_AFTER_FAILURES": jsii.String(strconv.Itoa(cfg.DisableAfterFailures)),
		"PARLEY_DISABLE_AFTER":          jsii.String(cfg.DisableAfter),
		"PARLEY_ENDPOINT_RATE_LIMIT":    jsii.String(cfg.EndpointRateLimit),
	}
	setIf := func(name, value string) {
		if value != "" {
			deliveryEnv[name] = jsii.String(value)
		}
	}
	var deliveryFiles []assetFile
	var llmKey awssecretsmanager.ISecret
	switch cfg.Bot {
	case "rules":
		// Without a file the function answers from its built-in example.
		if cfg.RulesFile != "" {
			deliveryFiles = append(deliveryFiles, assetFile{name: rulesFileInAsset, source: cfg.RulesFile})
			deliveryEnv["PARLEY_RULES_FILE"] = jsii.String(rulesFileOnLambda)
		}
	case "http":
		deliveryEnv["PARLEY_HTTP_BOT_URL"] = jsii.String(cfg.HTTPBotURL)
	case "llm":
		// Created by the operator beforehand; the stack only reads it.
		llmKey = awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String("LlmApiKey"), jsii.String(cfg.LLM.APIKeySecretName))
		deliveryEnv["PARLEY_LLM_API_KEY_SECRET_ARN"] = llmKey.SecretArn() // partial: no random suffix
		setIf("PARLEY_LLM_PROVIDER", cfg.LLM.Provider)
		setIf("PARLEY_LLM_MODEL", cfg.LLM.Model)
		setIf("PARLEY_LLM_BASE_URL", cfg.LLM.BaseURL)
		setIf("PARLEY_LLM_SYSTEM_PROMPT", cfg.LLM.SystemPrompt)
		setIf("PARLEY_LLM_TEMPERATURE", cfg.LLM.Temperature)
		setIf("PARLEY_LLM_MAX_TOKENS", cfg.LLM.MaxTokens)
		setIf("PARLEY_LLM_HISTORY", cfg.LLM.History)
	}

	delivery := newFunction(stack, cfg, "Delivery", removal, &awslambda.FunctionProps{
		Description: jsii.String("Parley delivery: runs each channel's bot for each turn and POSTs its messages to the channel's Response Endpoint"),
		Code:        functionCode(repoRoot, "./functions/delivery", deliveryFiles...),
		MemorySize:  jsii.Number(deliveryMemoryMB),
		Timeout:     awscdk.Duration_Seconds(jsii.Number(cfg.Timing.FunctionTimeout.Seconds())),
		Environment: &deliveryEnv,
	})
	// The event source grants exactly deliveryQueueActions on the queue (the tests
	// check); an explicit statement would only duplicate them.
	delivery.AddEventSource(awslambdaeventsources.NewSqsEventSource(queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(esmBatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(float64(cfg.MaxConcurrency)),
	}))
	allow(delivery, deliveryDLQActions, deadLetters.QueueArn())
	allow(delivery, deliverySecretActions, secret.SecretArn())
	// Not the channels' own signing secrets: those are in the table, which is
	// encrypted at rest.
	allow(delivery, deliverySecretActions, stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
		ResourceName: jsii.String(channelKeySecrets), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
	}))
	allow(delivery, deliveryTableActions, table.TableArn())
	if llmKey != nil {
		// The secret's complete ARN ends in "-" and six random characters. Not grantRead:
		// it adds secretsmanager:DescribeSecret, which the function does not call.
		allow(delivery, deliverySecretActions, jsii.String(*llmKey.SecretArn()+"-??????"))
	}

	// The $default route sends every method and path to the function, which routes
	// every endpoint of docs/api.md itself (POST /, GET and POST
	// /v1/conversations/{id}/messages, DELETE /v1/conversations/{id}, DELETE
	// /v1/users/{id}, ...) and gives everything else the contract's JSON 404 or 405.
	api := awsapigatewayv2.NewHttpApi(stack, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(cfg.StackName()),
		Description:        jsii.String("Parley webhook API: user messages, bot messages, history, erasure"),
		DefaultIntegration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("Inbound"), inbound, nil),
		CreateDefaultStage: jsii.Bool(true),
	})

	functions := map[string]awslambda.Function{"Inbound": inbound, "Delivery": delivery}
	addAlarms(stack, cfg, queue, deadLetters, functions)
	addDashboard(stack, cfg, queue, deadLetters, functions)

	output(stack, "WebhookUrl", api.Url(), "POST user messages here")
	output(stack, "QueueUrl", queue.QueueUrl(), "delivery queue (FIFO)")
	output(stack, "DeadLetterQueueUrl", deadLetters.QueueUrl(), "messages that could not be delivered")
	output(stack, "TableName", table.TableName(), "channels, tokens, message records and conversation history")
	output(stack, "SigningSecretArn", secret.SecretArn(), "the default channel's webhook signing key")
	return stack
}

// newFunction adds the settings both functions share: Go on provided.al2023 for arm64,
// a JSON-logging log group with a retention, and X-Ray tracing when configured.
func newFunction(stack awscdk.Stack, cfg Config, name string, removal awscdk.RemovalPolicy, props *awslambda.FunctionProps) awslambda.Function {
	logs := awslogs.NewLogGroup(stack, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: removal,
	})
	props.Runtime = awslambda.Runtime_PROVIDED_AL2023()
	props.Architecture = awslambda.Architecture_ARM_64()
	props.Handler = jsii.String("bootstrap")
	props.LogGroup = logs
	props.LoggingFormat = awslambda.LoggingFormat_JSON
	if cfg.Tracing == "active" {
		// Also grants xray:PutTraceSegments and xray:PutTelemetryRecords on "*" (X-Ray
		// has no resource-level permissions). passthrough leaves TracingConfig out:
		// Lambda's default, PassThrough, and no X-Ray permission.
		props.Tracing = awslambda.Tracing_ACTIVE
	}
	return awslambda.NewFunction(stack, jsii.String(name+"Function"), props)
}

// allow grants actions on one resource through an explicit statement: the grant*
// helpers add actions the functions do not use (Scan, DescribeSecret, ...).
func allow(fn awslambda.Function, actions []string, resource *string) {
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(actions...),
		Resources: &[]*string{resource},
	}))
}

func output(stack awscdk.Stack, id string, value *string, description string) {
	awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{
		Value:       value,
		Description: jsii.String(description),
	})
}

// Parley's own metrics: the functions' log lines carry them in the Embedded Metric
// Format (shared/metrics), so CloudWatch Logs makes them without an API call. One
// dimension, Service=parley: their number and cost do not grow with channels.
const (
	metricsNamespace = "Parley"
	metricsDimension = "Service"
	metricsService   = "parley"
)

// Metric names, as the functions write them: the inbound function's outcomes, and the
// delivery function's turns (bot runs), deliveries and failures. Latencies are in ms.
var parleyMetrics = []string{"Accepted", "Replayed", "Pushed", "Turns", "BotLatency", "Delivered",
	"DeliveryLatency", "FailedAttempts", "DeadLettered", "EndpointDisabled"}

// parleyMetric is one of parleyMetrics with a statistic over a period.
func parleyMetric(name, statistic, label string, period awscdk.Duration) awscloudwatch.Metric {
	props := &awscloudwatch.MetricProps{
		Namespace:     jsii.String(metricsNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{metricsDimension: jsii.String(metricsService)},
		Statistic:     jsii.String(statistic),
		Period:        period,
	}
	if label != "" {
		props.Label = jsii.String(label)
	}
	return awscloudwatch.NewMetric(props)
}

// addAlarms watches what needs a person: undeliverable messages, a disabled endpoint,
// failing deliveries, a delivery backlog, and function errors and throttles. With
// alarmEmail set they notify through SNS.
func addAlarms(stack awscdk.Stack, cfg Config, queue, deadLetters awssqs.Queue, functions map[string]awslambda.Function) {
	var actions []awscloudwatch.IAlarmAction
	if cfg.AlarmEmail != "" {
		topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String(cfg.StackName() + " alarms"),
		})
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
		actions = append(actions, awscloudwatchactions.NewSnsAction(topic))
		output(stack, "AlarmTopicArn", topic.TopicArn(), "alarm notifications")
	}
	alarm := func(id, description string, metric awscloudwatch.Metric, threshold float64) {
		a := metric.CreateAlarm(stack, jsii.String(id), &awscloudwatch.CreateAlarmOptions{
			AlarmDescription:   jsii.String(description),
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		if len(actions) > 0 {
			a.AddAlarmAction(actions...)
			a.AddOkAction(actions...)
		}
	}
	minute := awscdk.Duration_Minutes(jsii.Number(1))
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))

	alarm("DeadLetterQueueNotEmpty",
		"Messages could not be delivered and are in the dead-letter queue (parley dlq list)",
		deadLetters.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period: minute, Statistic: jsii.String("Maximum"),
		}), 0)
	alarm("DeliveryQueueOldestMessage",
		"A turn has waited in the delivery queue for more than "+cfg.OldestMessageAge.String()+": is the bot or the Response Endpoint down, or disabled (parley endpoint status)?",
		queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{
			Period: fiveMinutes, Statistic: jsii.String("Maximum"),
		}), cfg.OldestMessageAge.Seconds())
	// From the functions' own metrics. An event fires its alarm for the period it
	// happened in; the state it reports (a disabled endpoint, a dead letter) lasts
	// until someone acts: parley endpoint status, parley dlq list.
	alarm("EndpointDisabled",
		"A Response Endpoint was disabled (410 Gone, or disableAfterFailures failed attempts over disableAfter): its messages wait, nothing is lost; parley endpoint status says why, parley endpoint enable resumes in order",
		parleyMetric("EndpointDisabled", "Sum", "", fiveMinutes), 0)
	alarm("DeadLettered",
		"Messages went to the dead-letter queue in the last 5 minutes: attempts used up, or a failing message stepped aside after holdLimit (parley dlq list, parley delivery show)",
		parleyMetric("DeadLettered", "Sum", "", fiveMinutes), 0)
	alarm("FailedAttemptsHigh",
		"More than "+strconv.Itoa(cfg.FailedAttemptsAlarm)+" delivery attempts failed in 5 minutes: is a Response Endpoint failing? (parley endpoint status)",
		parleyMetric("FailedAttempts", "Sum", "", fiveMinutes), float64(cfg.FailedAttemptsAlarm))
	for _, name := range []string{"Inbound", "Delivery"} {
		fn := functions[name]
		sum := &awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Sum")}
		alarm(name+"Errors", "The "+name+" function failed", fn.MetricErrors(sum), 0)
		alarm(name+"Throttles", "The "+name+" function was throttled", fn.MetricThrottles(sum), 0)
	}
}

// Dashboard layout: three rows of three graphs, each a third of CloudWatch's 24 columns.
const (
	widgetWidth  = 8
	widgetHeight = 6
)

// addDashboard puts what an operator looks at first on one CloudWatch dashboard,
// Parley-<stage>-<region> (dashboard names are per account, not per region): traffic,
// bot turns, deliveries and their failures, the queues, the functions. template.yaml
// has the same body; parity_test.go compares the two.
func addDashboard(stack awscdk.Stack, cfg Config, queue, deadLetters awssqs.Queue, functions map[string]awslambda.Function) {
	fiveMinutes := awscdk.Duration_Minutes(jsii.Number(5))
	count := func(name, label string) awscloudwatch.IMetric {
		return parleyMetric(name, "Sum", label, fiveMinutes)
	}
	latency := func(name, label string) []awscloudwatch.IMetric {
		return []awscloudwatch.IMetric{
			parleyMetric(name, "p50", label+" p50", fiveMinutes),
			parleyMetric(name, "p99", label+" p99", fiveMinutes),
		}
	}
	graph := func(title string, left, right []awscloudwatch.IMetric, leftLabel, rightLabel string, annotations ...*awscloudwatch.HorizontalAnnotation) awscloudwatch.IWidget {
		props := &awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Width: jsii.Number(widgetWidth), Height: jsii.Number(widgetHeight),
			Left:      &left,
			LeftYAxis: &awscloudwatch.YAxisProps{Min: jsii.Number(0), Label: jsii.String(leftLabel), ShowUnits: jsii.Bool(false)},
		}
		if len(right) > 0 {
			props.Right = &right
			props.RightYAxis = &awscloudwatch.YAxisProps{Min: jsii.Number(0), Label: jsii.String(rightLabel), ShowUnits: jsii.Bool(false)}
		}
		if len(annotations) > 0 {
			props.LeftAnnotations = &annotations
		}
		return awscloudwatch.NewGraphWidget(props)
	}
	fnMetrics := func(metric func(awslambda.Function, *awscloudwatch.MetricOptions) awscloudwatch.Metric, statistic, suffix string) []awscloudwatch.IMetric {
		var out []awscloudwatch.IMetric
		for _, name := range []string{"Inbound", "Delivery"} {
			out = append(out, metric(functions[name], &awscloudwatch.MetricOptions{
				Period: fiveMinutes, Statistic: jsii.String(statistic), Label: jsii.String(strings.ToLower(name) + " " + suffix),
			}))
		}
		return out
	}
	maxOf := func(label string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Maximum"), Label: jsii.String(label)}
	}

	awscloudwatch.NewDashboard(stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(cfg.StackName() + "-" + *awscdk.Aws_REGION()),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Inbound: accepted, replayed, pushed", []awscloudwatch.IMetric{
					count("Accepted", "accepted"), count("Replayed", "replayed"), count("Pushed", "pushed"),
				}, nil, "messages / 5 min", ""),
				graph("Bot: turns and latency", []awscloudwatch.IMetric{count("Turns", "turns")},
					latency("BotLatency", "bot latency"), "turns / 5 min", "ms"),
				graph("Delivery: delivered and latency", []awscloudwatch.IMetric{count("Delivered", "delivered")},
					latency("DeliveryLatency", "delivery latency"), "messages / 5 min", "ms"),
			},
			{
				graph("Delivery failures", []awscloudwatch.IMetric{
					count("FailedAttempts", "failed attempts"), count("DeadLettered", "dead-lettered"), count("EndpointDisabled", "endpoints disabled"),
				}, nil, "per 5 min", ""),
				graph("Queues: messages waiting", []awscloudwatch.IMetric{
					queue.MetricApproximateNumberOfMessagesVisible(maxOf("delivery queue")),
					deadLetters.MetricApproximateNumberOfMessagesVisible(maxOf("dead-letter queue")),
				}, nil, "messages", ""),
				graph("Delivery queue: oldest message", []awscloudwatch.IMetric{
					queue.MetricApproximateAgeOfOldestMessage(maxOf("oldest message age")),
				}, nil, "seconds", "", &awscloudwatch.HorizontalAnnotation{
					Value: jsii.Number(cfg.OldestMessageAge.Seconds()), Label: jsii.String("alarm"),
				}),
			},
			{
				graph("Functions: errors and throttles", append(
					fnMetrics(awslambda.Function.MetricErrors, "Sum", "errors"),
					fnMetrics(awslambda.Function.MetricThrottles, "Sum", "throttles")...,
				), nil, "per 5 min", ""),
				graph("Functions: duration", append(
					fnMetrics(awslambda.Function.MetricDuration, "p50", "p50"),
					fnMetrics(awslambda.Function.MetricDuration, "p99", "p99")...,
				), nil, "ms", ""),
				graph("Functions: invocations", fnMetrics(awslambda.Function.MetricInvocations, "Sum", "invocations"), nil, "per 5 min", ""),
			},
		},
	})
}
