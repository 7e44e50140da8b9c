package settings

// The declarations. Order is the README's.
var (
	Port       = &Setting{Env: "PORT", Kind: Int, Default: "8080", Min: "0", Max: "65535", Parts: Local, Description: "listen port on 127.0.0.1"}
	Token      = &Setting{Env: "PARLEY_TOKEN", Kind: String, Default: "dev-token", Parts: Local, Description: "the default channel's API token the local stack accepts"}
	AdminToken = &Setting{Env: "PARLEY_ADMIN_TOKEN", Kind: String, Parts: Local,
		Description: "the operator API's token (channels, tokens, endpoints); default: a fresh one per run, printed at start"}
	ResponseEndpointURL = &Setting{Env: "PARLEY_RESPONSE_ENDPOINT_URL", Kind: URL, Parts: Delivery | Local, Context: "responseEndpointUrl", Parameter: "ResponseEndpointUrl",
		Description: "where the default channel's bot messages are POSTed; locally default: the built-in inbox, `http://127.0.0.1:$PORT/_parley/inbox`"}
	Bot = &Setting{Env: "PARLEY_BOT", Kind: Enum, Default: "echo", Values: []string{"echo", "rules", "llm", "http"}, Parts: Delivery | Local, Context: "bot", Parameter: "Bot",
		Description: "the default channel's bot: `echo`, `rules`, `llm` or `http`"}
	SigningSecret = &Setting{Env: "PARLEY_SIGNING_SECRET", Kind: String, Parts: Local,
		Description: "the default channel's `whsec_…` secret(s), space-separated for rotation, each at least 24 random bytes; default: a fresh one per run, printed at start"}
	SigningSecretARN = &Setting{Env: "PARLEY_SIGNING_SECRET_ARN", Kind: String, Parts: Delivery,
		Description: "the Secrets Manager secret holding the default channel's signing secret (the stack generates it)"}

	BotTimeout = &Setting{Env: "PARLEY_BOT_TIMEOUT", Kind: Duration, Default: "30s", Min: "1ms", Max: "5m", Parts: Delivery | Local, Context: "botTimeout", Parameter: "BotTimeoutSeconds",
		Description: "how long the bot may take for one turn; the delivery function's timeout and the queue's visibility follow from it"}
	RetryMinDelay = &Setting{Env: "PARLEY_RETRY_MIN_DELAY", Kind: Duration, Default: "5s", Min: "1ms", Max: "12h", Parts: Delivery | Local, Context: "retryMinDelay", Parameter: "RetryMinDelay",
		Description: "the delay after the first failed attempt; each next one is 3× longer"}
	RetryMaxDelay = &Setting{Env: "PARLEY_RETRY_MAX_DELAY", Kind: Duration, Default: "12h", Min: "1ms", Max: "12h", Parts: Delivery | Local, Context: "retryMaxDelay", Parameter: "RetryMaxDelay",
		Description: "the cap on one delay, a receiver's `Retry-After` included (SQS allows at most 12h)"}
	MaxAttempts = &Setting{Env: "PARLEY_MAX_ATTEMPTS", Kind: Int, Default: "11", Min: "1", Max: "100", Parts: Delivery | Local, Context: "maxAttempts", Parameter: "MaxAttempts",
		Description: "attempts in all before the dead-letter queue (11: about 26 hours); all of them, at the maximum delay, and the hold limit must fit in the queue's 14 days"}
	HoldLimit = &Setting{Env: "PARLEY_HOLD_LIMIT", Kind: Duration, Default: "1h", Min: "0s", Max: "168h", Parts: Delivery | Local, Context: "holdLimit", Parameter: "HoldLimit",
		Description: "how long a failing message may hold its conversation back before it steps aside to the dead-letter queue; `0s`: strict order for ever"}
	DeliveryTimeout = &Setting{Env: "PARLEY_DELIVERY_TIMEOUT", Kind: Duration, Default: "10s", Min: "1ms", Max: "30s", Parts: Delivery | Local, Context: "deliveryTimeout", Parameter: "DeliveryTimeout",
		Description: "connect + response timeout of one POST"}
	DisableAfterFailures = &Setting{Env: "PARLEY_DISABLE_AFTER_FAILURES", Kind: Int, Default: "20", Min: "0", Max: "100000", Parts: Delivery | Local, Context: "disableAfterFailures", Parameter: "DisableAfterFailures",
		Description: "an endpoint is disabled after this many failed attempts in a row (a `410` disables at once); `0`: only on a `410`"}
	DisableAfter = &Setting{Env: "PARLEY_DISABLE_AFTER", Kind: Duration, Default: "24h", Min: "0s", Max: "336h", Parts: Delivery | Local, Context: "disableAfter", Parameter: "DisableAfterHours",
		Description: "an endpoint is disabled only when its failures in a row (PARLEY_DISABLE_AFTER_FAILURES) span at least this long"}
	EndpointRateLimit = &Setting{Env: "PARLEY_ENDPOINT_RATE_LIMIT", Kind: Float, Default: "0", Min: "0", Max: "10000", Parts: Delivery | Local, Context: "endpointRateLimit", Parameter: "EndpointRateLimit",
		Description: "at most this many POSTs a second to the default channel's endpoint, per function; `0`: no limit"}
	RecordTTL = &Setting{Env: "PARLEY_RECORD_TTL", Kind: Duration, Default: "360h", Min: "360h", Max: "8760h", Parts: Inbound | Local, Context: "recordTtl", Parameter: "RecordTtlHours",
		Description: "how long a messageId is remembered (and at least as long as its history): at least the queue's 14 days and a day"}
	HistoryTTL = &Setting{Env: "PARLEY_HISTORY_TTL", Kind: Duration, Default: "720h", Min: "360h", Max: "8760h", Parts: Inbound | Delivery | Local, Context: "historyTtl", Parameter: "HistoryTtlHours",
		Description: "how long conversation history and attempt logs are kept"}

	RulesFile = &Setting{Env: "PARLEY_RULES_FILE", Kind: String, Parts: Delivery | Local, Context: "rulesFile", Bot: "rules",
		Description: "rules bot: the intents file; default: the built-in example"}
	LLMProvider = &Setting{Env: "PARLEY_LLM_PROVIDER", Kind: String, Values: []string{"openai", "anthropic"}, Parts: Delivery | Local, Context: "llmProvider", Parameter: "LlmProvider", Bot: "llm",
		Description: "llm bot: `openai` (any compatible API) or `anthropic`; default `openai`"}
	LLMBaseURL = &Setting{Env: "PARLEY_LLM_BASE_URL", Kind: URL, Parts: Delivery | Local, Context: "llmBaseUrl", Parameter: "LlmBaseUrl", Bot: "llm",
		Description: "llm bot: the API's base URL; default `https://api.openai.com/v1`, `https://api.anthropic.com`"}
	LLMModel = &Setting{Env: "PARLEY_LLM_MODEL", Kind: String, Parts: Delivery | Local, Context: "llmModel", Parameter: "LlmModel", Bot: "llm",
		Description: "llm bot: the model (required)"}
	LLMAPIKey = &Setting{Env: "PARLEY_LLM_API_KEY", Kind: String, Parts: Delivery | Local, Bot: "llm",
		Description: "llm bot: the API key (required for a hosted provider; in AWS a Secrets Manager secret)"}
	LLMAPIKeySecretARN = &Setting{Env: "PARLEY_LLM_API_KEY_SECRET_ARN", Kind: String, Parts: Delivery, Bot: "llm",
		Description: "llm bot in AWS: the Secrets Manager secret holding the API key (the stack sets it from llmApiKeySecretName)"}
	LLMSystemPrompt = &Setting{Env: "PARLEY_LLM_SYSTEM_PROMPT", Kind: String, Parts: Delivery | Local, Context: "llmSystemPrompt", Parameter: "LlmSystemPrompt", Bot: "llm",
		Description: "llm bot: the system prompt"}
	LLMTemperature = &Setting{Env: "PARLEY_LLM_TEMPERATURE", Kind: Float, Min: "0", Max: "2", Parts: Delivery | Local, Context: "llmTemperature", Parameter: "LlmTemperature", Bot: "llm",
		Description: "llm bot: the temperature; default: the provider's"}
	LLMMaxTokens = &Setting{Env: "PARLEY_LLM_MAX_TOKENS", Kind: Int, Default: "512", Min: "1", Max: "32000", Parts: Delivery | Local, Context: "llmMaxTokens", Parameter: "LlmMaxTokens", Bot: "llm",
		Description: "llm bot: the longest answer, in tokens"}
	LLMHistory = &Setting{Env: "PARLEY_LLM_HISTORY", Kind: Int, Default: "10", Min: "0", Max: "100", Parts: Delivery | Local, Context: "llmHistory", Parameter: "LlmHistory", Bot: "llm",
		Description: "llm bot: how many earlier messages of the conversation it sends"}
	HTTPBotURL = &Setting{Env: "PARLEY_HTTP_BOT_URL", Kind: URL, Parts: Delivery | Local, Context: "httpBotUrl", Parameter: "HttpBotUrl", Bot: "http",
		Description: "http bot: the Rasa REST webhook URL (required)"}

	TableName = &Setting{Env: "PARLEY_TABLE_NAME", Kind: String, Parts: Inbound | Delivery | Local,
		Description: "the DynamoDB table; locally with `PARLEY_QUEUE_URL` and `PARLEY_DEAD_LETTER_QUEUE_URL`: run on DynamoDB and SQS (or DynamoDB Local and an SQS emulator with `AWS_ENDPOINT_URL_DYNAMODB`/`AWS_ENDPOINT_URL_SQS`) instead of the embedded parts"}
	QueueURL           = &Setting{Env: "PARLEY_QUEUE_URL", Kind: String, Parts: Inbound | Delivery | Local, Description: "the FIFO delivery queue"}
	DeadLetterQueueURL = &Setting{Env: "PARLEY_DEAD_LETTER_QUEUE_URL", Kind: String, Parts: Delivery | Local, Description: "its dead-letter queue"}
	DevRole            = &Setting{Env: "PARLEY_DEV_ROLE", Kind: Enum, Default: "all", Values: []string{"all", "inbound", "delivery"}, Parts: Local,
		Description: "`all`, or `inbound`/`delivery` to run the two halves as separate processes (DynamoDB and SQS only)"}

	// Deploy-only settings: the CDK context and the SAM parameters.
	Stage          = &Setting{Kind: String, Default: "dev", Parts: Deploy, Context: "stage", Parameter: "Stage", Description: "the stack is Parley-<stage>"}
	MaxConcurrency = &Setting{Kind: Int, Default: "10", Min: "2", Max: "1000", Parts: Deploy, Context: "maxConcurrency", Parameter: "MaxConcurrency",
		Description: "the delivery function's most concurrent batches (the event source mapping's maximum concurrency)"}
	LLMAPIKeySecretName = &Setting{Kind: String, Parts: Deploy, Context: "llmApiKeySecretName", Parameter: "LlmApiKeySecretName", Bot: "llm",
		Description: "llm bot: the existing Secrets Manager secret holding the API key (required)"}
	Tracing = &Setting{Kind: Enum, Default: "passthrough", Values: []string{"passthrough", "active"}, Parts: Deploy, Context: "tracing", Parameter: "Tracing",
		Description: "X-Ray tracing of both functions: `active`, or `passthrough` (off)"}
	RemovalPolicy = &Setting{Kind: Enum, Default: "retain", Values: []string{"retain", "destroy"}, Parts: Deploy, Context: "removalPolicy",
		Description: "whether the table and the log groups outlive the stack"}
	AlarmEmail = &Setting{Kind: String, Parts: Deploy, Context: "alarmEmail", Parameter: "AlarmEmail", Description: "an address the alarms are e-mailed to"}
)

// All lists every declaration.
var All = []*Setting{
	Port, Token, AdminToken, ResponseEndpointURL, Bot, SigningSecret, SigningSecretARN,
	BotTimeout, RetryMinDelay, RetryMaxDelay, MaxAttempts, HoldLimit, DeliveryTimeout,
	DisableAfterFailures, DisableAfter, EndpointRateLimit, RecordTTL, HistoryTTL,
	RulesFile, LLMProvider, LLMBaseURL, LLMModel, LLMAPIKey, LLMAPIKeySecretARN, LLMSystemPrompt,
	LLMTemperature, LLMMaxTokens, LLMHistory, HTTPBotURL,
	TableName, QueueURL, DeadLetterQueueURL, DevRole,
	Stage, MaxConcurrency, LLMAPIKeySecretName, Tracing, RemovalPolicy, AlarmEmail,
}
