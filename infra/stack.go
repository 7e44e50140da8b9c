package main

import (
	"strconv"

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
// (which runs the bots), the signing secret, and the alarms. The configuration is the
// default channel's (the functions' environment); every other channel is data in the
// table, created with the CLI, and needs nothing here.
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
	inbound := newFunction(stack, "Inbound", removal, &awslambda.FunctionProps{
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

	delivery := newFunction(stack, "Delivery", removal, &awslambda.FunctionProps{
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

	addAlarms(stack, cfg, queue, deadLetters, map[string]awslambda.Function{"Inbound": inbound, "Delivery": delivery})

	output(stack, "WebhookUrl", api.Url(), "POST user messages here")
	output(stack, "QueueUrl", queue.QueueUrl(), "delivery queue (FIFO)")
	output(stack, "DeadLetterQueueUrl", deadLetters.QueueUrl(), "messages that could not be delivered")
	output(stack, "TableName", table.TableName(), "channels, tokens, message records and conversation history")
	output(stack, "SigningSecretArn", secret.SecretArn(), "the default channel's webhook signing key")
	return stack
}

// newFunction adds the settings both functions share: Go on provided.al2023 for arm64,
// and a JSON-logging log group with a retention.
func newFunction(stack awscdk.Stack, name string, removal awscdk.RemovalPolicy, props *awslambda.FunctionProps) awslambda.Function {
	logs := awslogs.NewLogGroup(stack, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: removal,
	})
	props.Runtime = awslambda.Runtime_PROVIDED_AL2023()
	props.Architecture = awslambda.Architecture_ARM_64()
	props.Handler = jsii.String("bootstrap")
	props.LogGroup = logs
	props.LoggingFormat = awslambda.LoggingFormat_JSON
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

// addAlarms watches what needs a person: undeliverable messages, a delivery backlog,
// and function errors and throttles. With alarmEmail set they notify through SNS.
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
		"Messages could not be delivered and are in the dead-letter queue (parley dead-letters)",
		deadLetters.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period: minute, Statistic: jsii.String("Maximum"),
		}), 0)
	alarm("DeliveryQueueOldestMessage",
		"A turn has waited in the delivery queue for more than "+cfg.OldestMessageAge.String()+": is the bot or the Response Endpoint down?",
		queue.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{
			Period: fiveMinutes, Statistic: jsii.String("Maximum"),
		}), cfg.OldestMessageAge.Seconds())
	for _, name := range []string{"Inbound", "Delivery"} {
		fn := functions[name]
		sum := &awscloudwatch.MetricOptions{Period: fiveMinutes, Statistic: jsii.String("Sum")}
		alarm(name+"Errors", "The "+name+" function failed", fn.MetricErrors(sum), 0)
		alarm(name+"Throttles", "The "+name+" function was throttled", fn.MetricThrottles(sum), 0)
	}
}
