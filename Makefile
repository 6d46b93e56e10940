# circuitmesh build and test entry points. `make help` lists them.

GO      ?= go
BIN     ?= bin/circuitmesh
PKGS    ?= ./...

.PHONY: help build test test-long soak stress fuzz lint bench demo clean

help:
	@echo "build      build $(BIN)"
	@echo "test       go test -race -short (the quick suite, includes end-to-end tests)"
	@echo "test-long  go test without -short (long scenarios too), -race but for routing, simulate and the 100-node gossip mesh"
	@echo "soak       5 CPU-starved daemons for 2 minutes: no false link-down, no failed ping"
	@echo "stress     run the quick suite RUNS times, LOAD busy loops beside it (.ci/stress)"
	@echo "fuzz       run every fuzz target of PKGS for FUZZTIME (default 60s) each (.ci/fuzz)"
	@echo "lint       gofmt check and go vet"
	@echo "bench      run the benchmarks"
	@echo "demo       run the five-node in-process demo"
	@echo "trace-demo run Jaeger and the demo exporting its traces to it (UI on :16686)"
	@echo "jaeger-ui  build Jaeger's UI (node, npm) for trace-demo to serve"

build:
	$(GO) build -o $(BIN) ./cmd/circuitmesh

test:
	$(GO) test -race -short -count=1 -timeout 30m $(PKGS)
	$(GO) test -race -short -count=1 github.com/quic-go/quic-go/...

# simulate's long scenarios run in testing/synctest bubbles, which Go 1.26's
# race detector can abort (ThreadSanitizer: CHECK failed, golang/go#78156):
# they run without it; every other package, and simulate's quick suite
# (make test), runs with it. The 100-node gossip mesh of node, too slow
# under the race detector on 2 cores, runs without it as well, and so do
# routing's long scenarios: one goroutine drives each engine there, and
# under the race detector they ran past the 30-minute timeout on a loaded
# 2-core machine (routing's quick suite runs with it).
test-long:
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list $(PKGS) | grep -v -e '/simulate$$' -e '/routing$$')
	if $(GO) list $(PKGS) | grep -q '/routing$$'; then $(GO) test -count=1 -timeout 30m ./routing/; fi
	if $(GO) list $(PKGS) | grep -q '/simulate$$'; then $(GO) test -count=1 -timeout 30m ./simulate/; fi
	if $(GO) list $(PKGS) | grep -q '/node$$'; then $(GO) test -count=1 -timeout 10m -run 'TestDiscoveryBuildsConnectedBoundedMesh/100' ./node/; fi

soak:
	$(GO) test -count=1 -v -run TestSoakCPUStarvedMesh ./cmd/circuitmesh

# Flaky-test hunting: RUNS go test invocations of PKGS (-count=COUNT, -run
# RUN) beside LOAD busy loops; failing runs' output is kept (.ci/stress).
RUNS    ?= 5
COUNT   ?= 1
LOAD    ?= 0
RUN     ?=

stress:
	RUNS='$(RUNS)' COUNT='$(COUNT)' LOAD='$(LOAD)' RUN='$(RUN)' PKGS='$(PKGS)' bash .ci/stress

# Every fuzz target of PKGS, one at a time, FUZZTIME each (.ci/fuzz).
FUZZTIME ?= 60s

fuzz:
	PKGS='$(PKGS)' FUZZTIME='$(FUZZTIME)' RUN='$(RUN)' bash .ci/fuzz

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS) github.com/quic-go/quic-go/...

# QUICK=1 runs the reduced suite (under two minutes).
QUICK ?=

# The performance suite: circuits through 0-3 relays against direct quic-go,
# each node in its own process; prints a table, writes bench-results.json.
# Circuits run resumable and with resumption off (resume_throughput_ratio),
# and a relay is killed under a live transfer (reroute_live_ms).
bench:
	$(GO) build -o bin/circuitmesh-bench ./cmd/circuitmesh-bench
	bin/circuitmesh-bench $(if $(QUICK),-quick) -out bench-results.json
	# Honest circuit opens and link setups during each flood (issue 13).
	$(GO) test -run '^$$' -bench BenchmarkHonestWorkDuringFloods -benchtime 1x ./node/

demo:
	$(GO) run ./cmd/circuitmesh demo

# Builds Jaeger (JAEGER_VERSION, once, under bin/), runs it and the demo
# exporting OTLP to it; KEEP=0 stops Jaeger when the demo is done.
.PHONY: trace-demo
trace-demo:
	GO='$(GO)' bash deploy/trace-demo.sh

.PHONY: jaeger-ui
jaeger-ui:
	bash deploy/jaeger-ui.sh

clean:
	rm -f $(BIN)
