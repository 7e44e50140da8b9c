package main

import (
	"fmt"
	"strconv"
	"time"

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

	"github.com/parley-chat/parley/infra/deploy"
	"github.com/parley-chat/parley/shared/settings"
)

// resources are the stack's resources that others refer to (deploy.Ref).
type resources struct {
	stack              awscdk.Stack
	table              awsdynamodb.Table
	queue, deadLetters awssqs.Queue
	secret             awssecretsmanager.Secret
	llmKey             awssecretsmanager.ISecret // bot=llm only
	inbound, delivery  awslambda.Function
	api                awsapigatewayv2.HttpApi
	topic              awssns.Topic // alarmEmail only
}

// NewParleyStack builds the deployment of package deploy with CDK constructs: the
// webhook API and inbound function, the table, the FIFO delivery queue and its
// dead-letter queue, the delivery function (which runs the bots), the signing secret,
// the alarms and the dashboard. The configuration is the default channel's (the
// functions' environment); every other channel is data in the table, created with the
// CLI, and needs nothing here.
func NewParleyStack(scope constructs.Construct, cfg deploy.Config, repoRoot string) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(cfg.StackName()), &awscdk.StackProps{
		Description: jsii.String("Parley Messaging API (" + cfg.Stage + ")"),
	})
	awscdk.Tags_Of(stack).Add(jsii.String("parley:stage"), jsii.String(cfg.Stage), nil)
	r := &resources{stack: stack}

	removal := awscdk.RemovalPolicy_RETAIN
	if cfg.Value(settings.RemovalPolicy) == "destroy" {
		removal = awscdk.RemovalPolicy_DESTROY
	}

	r.table = awsdynamodb.NewTable(stack, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(deploy.PartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:             &awsdynamodb.Attribute{Name: jsii.String(deploy.SortKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(deploy.TTLAttribute),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: removal,
	})

	// Both FIFO queues in high-throughput mode: deduplication and the throughput limit
	// per message group (a conversation), not per queue.
	retention := awscdk.Duration_Seconds(jsii.Number(deploy.Retention.Seconds()))
	r.deadLetters = awssqs.NewQueue(stack, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		Fifo:                      jsii.Bool(true),
		ContentBasedDeduplication: jsii.Bool(false),
		DeduplicationScope:        awssqs.DeduplicationScope_MESSAGE_GROUP,
		FifoThroughputLimit:       awssqs.FifoThroughputLimit_PER_MESSAGE_GROUP_ID,
		RetentionPeriod:           retention,
	})
	r.queue = awssqs.NewQueue(stack, jsii.String("DeliveryQueue"), &awssqs.QueueProps{
		Fifo: jsii.Bool(true),
		// The code sets MessageDeduplicationId itself (the job's ref).
		ContentBasedDeduplication: jsii.Bool(false),
		DeduplicationScope:        awssqs.DeduplicationScope_MESSAGE_GROUP,
		FifoThroughputLimit:       awssqs.FifoThroughputLimit_PER_MESSAGE_GROUP_ID,
		RetentionPeriod:           retention,
		VisibilityTimeout:         awscdk.Duration_Seconds(jsii.Number(cfg.Timing.VisibilityTimeout.Seconds())),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           r.deadLetters,
			MaxReceiveCount: jsii.Number(deploy.MaxReceives), // the backstop for crashes only
		},
	})

	r.secret = awssecretsmanager.NewSecret(stack, jsii.String("SigningSecret"), &awssecretsmanager.SecretProps{
		Description: jsii.String(deploy.SigningSecretDescription),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			ExcludePunctuation: jsii.Bool(true),
			PasswordLength:     jsii.Number(deploy.SigningSecretLength),
		},
	})
	if cfg.Bot == "llm" {
		// Created by the operator beforehand; the stack only reads it.
		r.llmKey = awssecretsmanager.Secret_FromSecretNameV2(stack, jsii.String("LlmApiKey"), jsii.String(cfg.Value(settings.LLMAPIKeySecretName)))
	}

	r.inbound = newFunction(r, cfg, &deploy.Inbound, removal, functionCode(repoRoot, deploy.Inbound.Package),
		awscdk.Duration_Seconds(jsii.Number(deploy.Inbound.Timeout.Seconds())))
	var deliveryFiles []assetFile
	if cfg.RulesFile != "" {
		deliveryFiles = append(deliveryFiles, assetFile{name: deploy.RulesFileInPackage, source: cfg.RulesFile})
	}
	r.delivery = newFunction(r, cfg, &deploy.Delivery, removal, functionCode(repoRoot, deploy.Delivery.Package, deliveryFiles...),
		awscdk.Duration_Seconds(jsii.Number(cfg.Timing.FunctionTimeout.Seconds())))
	r.delivery.AddEventSource(awslambdaeventsources.NewSqsEventSource(r.queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(deploy.BatchSize),
		ReportBatchItemFailures: jsii.Bool(true),
		MaxConcurrency:          jsii.Number(float64(cfg.Int(settings.MaxConcurrency))),
	}))
	for fn, f := range map[*deploy.Function]awslambda.Function{&deploy.Inbound: r.inbound, &deploy.Delivery: r.delivery} {
		for _, st := range fn.Statements {
			// The event source grants the queue's statement; active tracing X-Ray's.
			if st.EventSource || st.Tracing || st.Bot != "" && st.Bot != cfg.Bot {
				continue
			}
			// An explicit statement: the grant* helpers add actions the functions do
			// not use (Scan, DescribeSecret, ...).
			f.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Actions:   jsii.Strings(st.Actions...),
				Resources: &[]*string{r.ref(st.Resource)},
			}))
		}
	}

	// The $default route sends every method and path to the function, which routes
	// every endpoint of docs/api.md itself and gives everything else the contract's JSON
	// 404 or 405.
	r.api = awsapigatewayv2.NewHttpApi(stack, jsii.String("HttpApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String(cfg.StackName()),
		Description:        jsii.String("Parley webhook API: user messages, bot messages, history, erasure"),
		DefaultIntegration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("Inbound"), r.inbound, nil),
		CreateDefaultStage: jsii.Bool(true),
	})

	addAlarms(r, cfg)
	addDashboard(r, cfg)
	for _, o := range deploy.Outputs {
		output(r, o)
	}
	if r.topic != nil {
		output(r, deploy.AlarmTopicOutput)
	}
	return stack
}

// ref is a reference as the CDK writes it.
func (r *resources) ref(ref deploy.Ref) *string {
	switch ref {
	case deploy.TableName:
		return r.table.TableName()
	case deploy.TableArn:
		return r.table.TableArn()
	case deploy.QueueURL:
		return r.queue.QueueUrl()
	case deploy.QueueArn:
		return r.queue.QueueArn()
	case deploy.QueueName:
		return r.queue.QueueName()
	case deploy.DeadLetterQueueURL:
		return r.deadLetters.QueueUrl()
	case deploy.DeadLetterQueueArn:
		return r.deadLetters.QueueArn()
	case deploy.DeadLetterQueueName:
		return r.deadLetters.QueueName()
	case deploy.SigningSecretArn:
		return r.secret.SecretArn()
	case deploy.LLMKeyArn:
		return r.llmKey.SecretArn() // partial: no random suffix
	case deploy.LLMKeyArns:
		return jsii.String(*r.llmKey.SecretArn() + "-??????")
	case deploy.ChannelKeysArn:
		return r.stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
			ResourceName: jsii.String(deploy.ChannelKeySecrets), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
		})
	case deploy.InboundFunctionName:
		return r.inbound.FunctionName()
	case deploy.DeliveryFunctionName:
		return r.delivery.FunctionName()
	case deploy.WebhookURL:
		return r.api.Url()
	case deploy.AlarmTopicArn:
		return r.topic.TopicArn()
	case deploy.Region:
		return awscdk.Aws_REGION()
	case deploy.Anything:
		return jsii.String("*")
	}
	panic("no CDK reference for " + strconv.Itoa(int(ref)))
}

// newFunction adds one of deploy.Functions: Go on provided.al2023 for arm64, a
// JSON-logging log group with a retention, its environment, and X-Ray tracing when
// configured.
func newFunction(r *resources, cfg deploy.Config, fn *deploy.Function, removal awscdk.RemovalPolicy, code awslambda.Code, timeout awscdk.Duration) awslambda.Function {
	logs := awslogs.NewLogGroup(r.stack, jsii.String(fn.Logs), &awslogs.LogGroupProps{
		Retention:     logRetention,
		RemovalPolicy: removal,
	})
	env := map[string]*string{}
	for _, e := range fn.Environment() {
		switch {
		case e.Setting.Bot != "" && e.Setting.Bot != cfg.Bot:
		case e.Resource != 0:
			env[e.Setting.Env] = r.ref(e.Resource)
		case cfg.Value(e.Setting) != "":
			env[e.Setting.Env] = jsii.String(cfg.Value(e.Setting))
		}
	}
	props := &awslambda.FunctionProps{
		Description:   jsii.String(fn.Description),
		Code:          code,
		MemorySize:    jsii.Number(fn.MemoryMB),
		Timeout:       timeout,
		Environment:   &env,
		Runtime:       runtime,
		Architecture:  architecture,
		Handler:       jsii.String(deploy.Handler),
		LogGroup:      logs,
		LoggingFormat: awslambda.LoggingFormat_JSON,
	}
	if cfg.Value(settings.Tracing) == "active" {
		// Also grants xray:PutTraceSegments and xray:PutTelemetryRecords on "*".
		// passthrough leaves TracingConfig out: Lambda's default, PassThrough, and no
		// X-Ray permission.
		props.Tracing = awslambda.Tracing_ACTIVE
	}
	return awslambda.NewFunction(r.stack, jsii.String(fn.ID), props)
}

// The CDK's names for deploy's runtime, architecture and log retention.
var (
	runtime      = awslambda.Runtime_PROVIDED_AL2023()
	architecture = awslambda.Architecture_ARM_64()
	logRetention = map[int]awslogs.RetentionDays{30: awslogs.RetentionDays_ONE_MONTH}[deploy.LogRetentionDays]
)

func init() {
	if *runtime.Name() != deploy.Runtime || *architecture.Name() != deploy.Architecture || logRetention == "" {
		panic(fmt.Sprintf("stack.go names runtime %s, architecture %s, log retention %q; package deploy has %s, %s, %d days",
			*runtime.Name(), *architecture.Name(), logRetention, deploy.Runtime, deploy.Architecture, deploy.LogRetentionDays))
	}
}

func output(r *resources, o deploy.Output) {
	awscdk.NewCfnOutput(r.stack, jsii.String(o.ID), &awscdk.CfnOutputProps{
		Value:       r.ref(o.Value),
		Description: jsii.String(o.Description),
	})
}

// addAlarms adds deploy.Alarms; with alarmEmail they notify through SNS, on alarm and
// on recovery.
func addAlarms(r *resources, cfg deploy.Config) {
	var actions []awscloudwatch.IAlarmAction
	if email := cfg.Value(settings.AlarmEmail); email != "" {
		r.topic = awssns.NewTopic(r.stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String(cfg.StackName() + " alarms"),
		})
		r.topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(email), nil))
		actions = append(actions, awscloudwatchactions.NewSnsAction(r.topic))
	}
	for _, a := range deploy.Alarms {
		threshold := a.Threshold
		if a.ThresholdFrom != nil {
			threshold = cfg.Number(a.ThresholdFrom)
		}
		alarm := metric(r, a.Metric, a.Period).CreateAlarm(r.stack, jsii.String(a.ID), &awscloudwatch.CreateAlarmOptions{
			AlarmDescription:   jsii.String(a.Description(cfg.Value)),
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		if len(actions) > 0 {
			alarm.AddAlarmAction(actions...)
			alarm.AddOkAction(actions...)
		}
	}
}

func metric(r *resources, m deploy.Metric, period time.Duration) awscloudwatch.Metric {
	value := jsii.String(deploy.MetricsService)
	if m.Of != 0 {
		value = r.ref(m.Of)
	}
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(m.Namespace),
		MetricName:    jsii.String(m.Name),
		DimensionsMap: &map[string]*string{m.Dimension: value},
		Statistic:     jsii.String(m.Statistic),
		Period:        awscdk.Duration_Seconds(jsii.Number(period.Seconds())),
	})
}

// addDashboard adds deploy.Dashboard, its body written by the package that writes the
// SAM template's. The L1 resource sits where the L2 Dashboard put its own (construct
// path Dashboard/Resource), so its logical id is the one deployed stacks have.
func addDashboard(r *resources, cfg deploy.Config) {
	body := deploy.DashboardBody(func(ref deploy.Ref) string { return *r.ref(ref) },
		func(s *settings.Setting) string { return strconv.FormatFloat(cfg.Number(s), 'f', -1, 64) })
	awscloudwatch.NewCfnDashboard(constructs.NewConstruct(r.stack, jsii.String("Dashboard")), jsii.String("Resource"), &awscloudwatch.CfnDashboardProps{
		DashboardName: jsii.String(cfg.StackName() + "-" + *awscdk.Aws_REGION()),
		DashboardBody: jsii.String(body),
	})
}
