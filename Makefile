# Parley. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GOARCH_LAMBDA ?= arm64
FUNCTIONS     := inbound delivery
BUILD_FLAGS   := -tags lambda.norpc -trimpath -ldflags "-s -w"
EMULATORS     := shared/testkit/emulator/npm
FUZZTIME      ?= 30s

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: help run test test-go emulators build size fuzz fuzz-seeds lint clean \
	build-InboundFunction build-DeliveryFunction sam-build invoke-inbound invoke-delivery start-api

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}' | \
		sed -e 's/$$(GOARCH_LAMBDA)/$(GOARCH_LAMBDA)/g' -e 's/$$(STAGE)/$(STAGE)/g' -e 's/$$(FUZZTIME)/$(FUZZTIME)/g' -e 's/$$(RELIABILITY)/$(RELIABILITY)/g'

run: ## run the local stack on 127.0.0.1:8080 (Go only; see README for the variables)
	go run ./cmd/parley dev

test: emulators ## every test: the module with -race against the real emulators, then infra/
	go test -race -count=1 ./...
	$(MAKE) test-infra

emulators: $(EMULATORS)/node_modules/.package-lock.json ## install DynamoDB Local and local-aws-sqs from the lockfile

$(EMULATORS)/node_modules/.package-lock.json: $(EMULATORS)/package-lock.json
	@command -v java >/dev/null || { echo "java (17+) is needed for DynamoDB Local" >&2; exit 1; }
	@command -v node >/dev/null || { echo "node is needed for local-aws-sqs" >&2; exit 1; }
	npm ci --prefix $(EMULATORS) --no-audit --no-fund --loglevel=error

build: ## build both Lambda bootstraps for linux/$(GOARCH_LAMBDA) into .build/<function>/
	@for f in $(FUNCTIONS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_LAMBDA) go build $(BUILD_FLAGS) -o .build/$$f/bootstrap ./functions/$$f || exit 1; \
	done

size: build ## print the bootstrap sizes
	@ls -l .build/*/bootstrap | awk '{printf "%-28s %6.2f MB\n", $$9, $$5/1e6}'

# SAM's makefile build method calls build-<LogicalId> with ARTIFACTS_DIR set.
build-InboundFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build $(BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/inbound

build-DeliveryFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build $(BUILD_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/delivery

# --build-in-source: the makefile method then builds here instead of copying the whole
# repository (node_modules, cdk.out) to a scratch folder first.
# The SAM targets need the SAM CLI (and Docker to invoke): say how to get it rather
# than fail with "sam: command not found".
NEED_SAM = @command -v sam >/dev/null || { echo "the SAM CLI is not installed: see https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html (pip install aws-sam-cli, or brew install aws-sam-cli); Docker runs the functions for sam local" >&2; exit 1; }

sam-build: ## sam build (needs the SAM CLI)
	$(NEED_SAM)
	sam build --build-in-source

# With `make local-aws` running (DynamoDB Local, local-aws-sqs and an inbox on this
# machine), the functions in SAM's containers reach them through host.docker.internal.
invoke-inbound: sam-build ## sam local invoke the inbound function with events/inbound-text.json (SAM CLI + Docker; make local-aws first)
	$(SAM_LOCAL_ENV) sam local invoke InboundFunction --event events/inbound-text.json --env-vars events/env.json $(SAM_LOCAL_FLAGS)

invoke-delivery: sam-build ## sam local invoke the delivery function with events/delivery-batch.json (SAM CLI + Docker; make local-aws first)
	$(SAM_LOCAL_ENV) sam local invoke DeliveryFunction --event events/delivery-batch.json --env-vars events/env.json $(SAM_LOCAL_FLAGS)

start-api: sam-build ## sam local start-api on port 3000 (SAM CLI + Docker; make local-aws first)
	$(SAM_LOCAL_ENV) sam local start-api --env-vars events/env.json $(SAM_LOCAL_FLAGS)

fuzz-seeds: ## run the fuzz targets' committed seeds only
	go test -run '^Fuzz' ./...

FUZZ_TARGETS := FuzzDecodeInbound:./shared/message FuzzDecodeJob:./shared/message FuzzHandle:./shared/inbound \
	FuzzParseSecrets:./shared/webhook FuzzVerify:./shared/webhook

fuzz: ## fuzz each target for FUZZTIME (default 30s)
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; \
	done

STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.8.2
LINT_TAGS   := bench,reliability

lint: ## gofmt, go vet and staticcheck on both modules (the app and infra/)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt-formatted:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet -tags $(LINT_TAGS) ./...
	$(STATICCHECK) -tags $(LINT_TAGS) ./...
	cd infra && $(CDK_ENV) go vet ./... && $(CDK_ENV) $(STATICCHECK) ./...

clean: ## remove build output
	rm -rf .build infra/cdk.out

-include infra/rules.mk
-include bench/rules.mk
