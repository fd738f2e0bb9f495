# rtcomm-harness: see README.md. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/rtcomm-harness
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test vet unit faulty serve bench clean certify screenshots soak perf image distributed-demo

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/rtcomm-harness

## test: go vet, then every test (the conformance suite runs against the embedded reference)
##   but the fault catalogue (make faulty; CI runs both)
test: vet unit

vet:
	$(GO) vet ./...

unit:
	$(GO) test -skip '^(TestFaultyTargetsAreCaught|TestCheckerFindsFaults)$$' ./...

## faulty: the fault catalogue (docs/FAULTS.md): every planted fault caught by its own
##   requirement's check, against a clean baseline, and by the passive checker where it can
##   see it (docs/CHECK.md); about 2 minutes on 2 cores (the runs wait on timeouts far more
##   than they compute, so 8 run at once: 118 s, 10 s of CPU, 2 December)
faulty:
	$(GO) test -count=1 -parallel 8 -timeout 20m -run '^(TestFaultyTargetsAreCaught|TestCheckerFindsFaults)$$' ./scenarios/faulty

## serve: embedded broker + reference connector on loopback until Ctrl-C
serve:
	$(GO) run ./cmd/rtcomm-harness serve

## certify: run the conformance suite against a target and write a certification bundle
##   make certify                                  the embedded reference
##   make certify TARGET=scenarios/testdata/mosquitto.yaml OUT=bundle-mosquitto \
##        ARGS='--broker-tcp tcp://127.0.0.1:1883 --broker-ws ws://127.0.0.1:8080/mqtt'
## Exit status: 0 certified, 1 a claimed MUST failed, 2 the harness could not complete the run.
TARGET ?=
OUT    ?= bundle
ARGS   ?=
certify:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/rtcomm-harness certify $(if $(TARGET),--target $(TARGET)) --out $(OUT) $(ARGS)

## soak: long load against the embedded reference; checks that goroutines, heap, the session
##   table and the registry stay flat (trend per gauge) and drain. Output in soak-<timestamp>/.
##   make soak DURATION=30m [ARGS='--rate 50 --endpoints 2000']
## Exit status: 0 flat, 1 a gauge grew or did not drain, 2 the harness failed.
DURATION ?= 30m
soak:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/rtcomm-harness soak --duration $(DURATION) $(ARGS)

## screenshots: real certify/load/capacity runs, their reports (rtcomm-harness report), and PNGs of
##   them from headless Chromium into docs/img/ (SHOTS_WORK=dir keeps and reuses the results)
screenshots:
	GO=$(GO) BIN=$(BIN) LDFLAGS="$(LDFLAGS)" ./reports/screenshots.sh

## perf: cost per call, split processes: `serve` (broker + connector) in one, `load` against it
##   in the other (2,000 endpoints, 150 calls/s, 30 s); prints CPU per call and RSS per endpoint
##   of both (CPU from /proc/<pid>/stat over 20 s of the load window). Figures: docs/PERFORMANCE.md.
##   make perf [PERF_ARGS='RATE=300 PROFILE=/tmp/prof']   (variables: loadgen/perf.sh)
PERF_ARGS ?=
perf:
	env GO=$(GO) $(PERF_ARGS) ./loadgen/perf.sh

## image: container image FROM scratch with the static (CGO_ENABLED=0) binary, built with podman or
##   docker, whichever is installed (deploy/container/build.sh). make image IMAGE=registry/rtcomm-harness:tag
IMAGE ?= rtcomm-harness:dev
image:
	IMAGE=$(IMAGE) VERSION=$(VERSION) GO=$(GO) deploy/container/build.sh

## distributed-demo: the Kubernetes path without a cluster (docs/DISTRIBUTED.md): the load Job's
##   command line as 3 shard processes (index from JOB_COMPLETION_INDEX, one results folder, one
##   start time) against `serve` in its own process, then the merge Job's commands; checks start
##   skew < 50 ms, merged attempts = sum of the shards, merged rate = offered within 2 %, merged
##   histograms = the shards' logs merged directly. Also parses the manifests.
distributed-demo: build
	RTCOMM_HARNESS_BIN=$(abspath $(BIN)) $(GO) test -count=1 -v -run 'TestDistributedDemo|TestManifests' ./deploy/kubernetes/

## bench: Go benchmarks (figures go to docs/PERFORMANCE.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
