# CDK targets for the root Makefile, which includes this file; also usable alone as
# `make -f infra/rules.mk <target>`. Paths are relative to the repository root.
#
#   make synth                                      template into infra/cdk.out
#   make deploy RESPONSE_ENDPOINT_URL=https://…     deploy the stack Parley-$(STAGE)
#   make destroy                                    delete it (the table and logs are kept)
#   make test-infra                                 the infra/ tests, CLI included
#
# Optional: STAGE, BOT, MAX_ATTEMPTS, RETRY_MIN_DELAY, RETRY_MAX_DELAY, DELIVERY_TIMEOUT,
# RECORD_TTL, ALARM_EMAIL, REMOVAL_POLICY (retain|destroy), CDK_FLAGS (extra CLI flags).

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

CDK_CONTEXT = $(strip -c stage=$(STAGE) \
	$(if $(BOT),-c bot=$(BOT)) \
	$(if $(MAX_ATTEMPTS),-c maxAttempts=$(MAX_ATTEMPTS)) \
	$(if $(RETRY_MIN_DELAY),-c retryMinDelay=$(RETRY_MIN_DELAY)) \
	$(if $(RETRY_MAX_DELAY),-c retryMaxDelay=$(RETRY_MAX_DELAY)) \
	$(if $(DELIVERY_TIMEOUT),-c deliveryTimeout=$(DELIVERY_TIMEOUT)) \
	$(if $(RECORD_TTL),-c recordTtl=$(RECORD_TTL)) \
	$(if $(ALARM_EMAIL),-c alarmEmail=$(ALARM_EMAIL)) \
	$(if $(REMOVAL_POLICY),-c removalPolicy=$(REMOVAL_POLICY)))

CDK = cd $(INFRA_DIR) && $(CDK_ENV) npx --no-install cdk

.PHONY: cdk-cli synth cdk-diff cdk-bootstrap deploy destroy test-infra

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
	@test -n "$(RESPONSE_ENDPOINT_URL)" || { echo "deploy needs RESPONSE_ENDPOINT_URL=https://… (where bot messages are POSTed)" >&2; exit 1; }
	$(CDK) deploy $(CDK_CONTEXT) -c responseEndpointUrl='$(RESPONSE_ENDPOINT_URL)' $(CDK_FLAGS)

destroy: $(CDK_STAMP) ## delete Parley-$(STAGE) (the table and log groups stay unless REMOVAL_POLICY=destroy was deployed)
	$(CDK) destroy $(CDK_CONTEXT) -c responseEndpointUrl='$(CDK_SYNTH_URL)' $(CDK_FLAGS)

test-infra: $(CDK_STAMP) ## the infra/ tests: stack assertions, cdk synth through the pinned CLI, SAM parity
	cd $(INFRA_DIR) && $(CDK_ENV) go test -count=1 ./...
