# CDK and SAM targets for the root Makefile, which includes this file. Paths are relative
# to the repository root.
#
#   make synth                                      template into infra/cdk.out
#   make deploy RESPONSE_ENDPOINT_URL=https://…     deploy the stack Parley-$(STAGE)
#   make destroy                                    delete it (the table and logs are kept)
#   make template                                   write template.yaml (SAM) from infra/deploy
#   make local-aws                                  the emulators sam local runs against
#   make test-infra                                 the infra/ tests, CLI included
#
# Optional: STAGE, MAX_ATTEMPTS, RETRY_MIN_DELAY, RETRY_MAX_DELAY, HOLD_LIMIT,
# DISABLE_AFTER_FAILURES, DISABLE_AFTER, ENDPOINT_RATE_LIMIT, DELIVERY_TIMEOUT,
# MAX_CONCURRENCY, RECORD_TTL, HISTORY_TTL, TRACING (active|passthrough), ALARM_EMAIL,
# OLDEST_MESSAGE_AGE_ALARM, FAILED_ATTEMPTS_ALARM, REMOVAL_POLICY (retain|destroy),
# CDK_FLAGS (extra CLI flags); the default channel's bot, which runs in the delivery
# function (other channels are created with `parley channel create`, infra/README.md): BOT
# (echo|rules|llm|http), BOT_TIMEOUT (the delivery function's timeout and the queue's
# visibility follow it), RULES_FILE (bot=rules; relative to the repository root), HTTP_BOT_URL
# (bot=http), LLM_MODEL and LLM_API_KEY_SECRET_NAME (bot=llm, required), LLM_PROVIDER,
# LLM_BASE_URL, LLM_SYSTEM_PROMPT, LLM_TEMPERATURE, LLM_MAX_TOKENS, LLM_HISTORY. Each is the
# context key of infra/README.md (a test checks that every deploy setting has one here).

INFRA_DIR   := infra
CDK_STAMP   := $(INFRA_DIR)/node_modules/.installed
STAGE       ?= dev
# The delivery function needs the real URL; synth and destroy only need a valid one.
SYNTH_ENDPOINT_PLACEHOLDER := https://example.invalid/parley-synth-only
CDK_SYNTH_URL = $(or $(RESPONSE_ENDPOINT_URL),$(SYNTH_ENDPOINT_PLACEHOLDER))

# jsii (in the CDK app) warns at length about Node 20; the build machines have no newer.
CDK_ENV := JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 \
	JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1 \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
	CDK_DISABLE_CLI_TELEMETRY=true

# $(call cdk_context,key,value): "-c 'key=value'" when value is set, quoted for the shell
# (a system prompt has spaces, a URL may have & or ?).
cdk_context = $(if $(2),-c '$(1)=$(subst ','\'',$(2))')

CDK_CONTEXT = $(strip -c stage=$(STAGE) \
	$(call cdk_context,bot,$(BOT)) \
	$(call cdk_context,botTimeout,$(BOT_TIMEOUT)) \
	$(call cdk_context,rulesFile,$(RULES_FILE)) \
	$(call cdk_context,httpBotUrl,$(HTTP_BOT_URL)) \
	$(call cdk_context,llmProvider,$(LLM_PROVIDER)) \
	$(call cdk_context,llmBaseUrl,$(LLM_BASE_URL)) \
	$(call cdk_context,llmModel,$(LLM_MODEL)) \
	$(call cdk_context,llmSystemPrompt,$(LLM_SYSTEM_PROMPT)) \
	$(call cdk_context,llmTemperature,$(LLM_TEMPERATURE)) \
	$(call cdk_context,llmMaxTokens,$(LLM_MAX_TOKENS)) \
	$(call cdk_context,llmHistory,$(LLM_HISTORY)) \
	$(call cdk_context,llmApiKeySecretName,$(LLM_API_KEY_SECRET_NAME)) \
	$(call cdk_context,maxAttempts,$(MAX_ATTEMPTS)) \
	$(call cdk_context,retryMinDelay,$(RETRY_MIN_DELAY)) \
	$(call cdk_context,retryMaxDelay,$(RETRY_MAX_DELAY)) \
	$(call cdk_context,holdLimit,$(HOLD_LIMIT)) \
	$(call cdk_context,disableAfterFailures,$(DISABLE_AFTER_FAILURES)) \
	$(call cdk_context,disableAfter,$(DISABLE_AFTER)) \
	$(call cdk_context,endpointRateLimit,$(ENDPOINT_RATE_LIMIT)) \
	$(call cdk_context,tracing,$(TRACING)) \
	$(call cdk_context,deliveryTimeout,$(DELIVERY_TIMEOUT)) \
	$(call cdk_context,maxConcurrency,$(MAX_CONCURRENCY)) \
	$(call cdk_context,recordTtl,$(RECORD_TTL)) \
	$(call cdk_context,historyTtl,$(HISTORY_TTL)) \
	$(call cdk_context,alarmEmail,$(ALARM_EMAIL)) \
	$(call cdk_context,oldestMessageAgeAlarm,$(OLDEST_MESSAGE_AGE_ALARM)) \
	$(call cdk_context,failedAttemptsAlarm,$(FAILED_ATTEMPTS_ALARM)) \
	$(call cdk_context,removalPolicy,$(REMOVAL_POLICY)))

CDK = cd $(INFRA_DIR) && $(CDK_ENV) npx --no-install cdk

.PHONY: cdk-cli synth cdk-diff cdk-bootstrap deploy destroy template local-aws test-infra

# sam local against `make local-aws`: the functions' containers reach this machine as
# host.docker.internal (Docker Desktop names it; on Linux, --add-host maps it to the
# host), and take their SDK endpoints from the shell: template.yaml declares them empty,
# and sam local passes a declared variable's value from the shell. For the root
# Makefile's sam local targets: $(SAM_LOCAL_ENV) sam local invoke … $(SAM_LOCAL_FLAGS).
SAM_LOCAL_ENV   := AWS_ENDPOINT_URL_DYNAMODB=http://host.docker.internal:8000 AWS_ENDPOINT_URL_SQS=http://host.docker.internal:9324
SAM_LOCAL_FLAGS := --add-host host.docker.internal:host-gateway

cdk-cli: $(CDK_STAMP) ## install the CDK CLI pinned in infra/package-lock.json

$(CDK_STAMP): $(INFRA_DIR)/package.json $(INFRA_DIR)/package-lock.json
	@command -v node >/dev/null || { echo "node (20+) is needed for the CDK CLI" >&2; exit 1; }
	npm ci --prefix $(INFRA_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

synth: $(CDK_STAMP) ## synthesize the stack into infra/cdk.out (RESPONSE_ENDPOINT_URL optional here)
	$(CDK) synth --no-notices -q $(CDK_CONTEXT) -c responseEndpointUrl='$(CDK_SYNTH_URL)' $(CDK_FLAGS)
	@echo "template: $(INFRA_DIR)/cdk.out/Parley-$(STAGE).template.json"

cdk-diff: $(CDK_STAMP) ## compare the stack with what is deployed (AWS credentials)
	@test -n "$(RESPONSE_ENDPOINT_URL)" || { echo "cdk-diff needs RESPONSE_ENDPOINT_URL=https://…" >&2; exit 1; }
	$(CDK) diff $(CDK_CONTEXT) -c responseEndpointUrl='$(RESPONSE_ENDPOINT_URL)' $(CDK_FLAGS)

cdk-bootstrap: $(CDK_STAMP) ## once per account and region: cdk bootstrap (AWS credentials)
	$(CDK) bootstrap $(CDK_FLAGS)

deploy: $(CDK_STAMP) ## deploy Parley-$(STAGE); needs RESPONSE_ENDPOINT_URL=https://… and AWS credentials
	@test -n "$(RESPONSE_ENDPOINT_URL)" || { echo "deploy needs RESPONSE_ENDPOINT_URL=https://… (where the default channel's bot messages are POSTed)" >&2; exit 1; }
	$(CDK) deploy $(CDK_CONTEXT) -c responseEndpointUrl='$(RESPONSE_ENDPOINT_URL)' $(CDK_FLAGS)

destroy: $(CDK_STAMP) ## delete Parley-$(STAGE) (the table and log groups stay unless REMOVAL_POLICY=destroy was deployed)
	$(CDK) destroy $(CDK_CONTEXT) -c responseEndpointUrl='$(CDK_SYNTH_URL)' $(CDK_FLAGS)

template: ## write template.yaml (SAM) from infra/deploy, the definition the CDK stack is built from
	cd $(INFRA_DIR) && go run ./cmd/samtemplate

local-aws: emulators ## DynamoDB Local, local-aws-sqs and an inbox for sam local, with what events/env.json names (Ctrl-C stops)
	cd $(INFRA_DIR) && go run ./cmd/localaws

test-infra: $(CDK_STAMP) emulators ## the infra/ tests: settings, template.yaml generated, stack assertions, cdk synth through the pinned CLI, SAM parity
	cd $(INFRA_DIR) && $(CDK_ENV) go test -count=1 ./...
