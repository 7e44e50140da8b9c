# Measurement and reliability targets; the root Makefile includes this file.
#   make bench                          BENCHMARKS.md: handlers, end to end vs the floor, the POST with a slow bot, AWS calls, cost, bootstraps
#   make test-reliability               every scenario, full size (RELIABILITY=short: the CI size)

BENCH_REPORT ?= BENCHMARKS.md
BENCH_COUNT  ?= 6
RELIABILITY  ?= full

.PHONY: bench test-reliability

bench: emulators build ## measure and write BENCHMARKS.md (about 10 minutes; best on a quiet machine)
	@mkdir -p .build/bench
	set -o pipefail; go test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) ./bench | tee .build/bench/micro.txt
	PARLEY_BENCH=$(CURDIR)/$(BENCH_REPORT) PARLEY_BENCH_MICRO=$(CURDIR)/.build/bench/micro.txt PARLEY_BENCH_BUILD=$(CURDIR)/.build \
		PARLEY_BENCH_LOGS=$(CURDIR)/.build/bench/logs \
		go test -tags bench -count=1 -run '^TestReport$$' -v -timeout 30m ./bench

test-reliability: emulators ## try to break it: duplicate storm, receiver chaos and flapping, a disabled endpoint, kills, crash injection at every step, emulator restarts, security (RELIABILITY=short for CI)
	PARLEY_RELIABILITY=$(RELIABILITY) go test -tags reliability -count=1 -v -timeout 40m ./bench/reliability
