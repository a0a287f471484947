# srsproxy — run `make help` for the targets.
GO        ?= go
BIN       := bin/srsproxy
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.Version=$(VERSION)
TESTFLAGS ?= -count=1 -timeout 9m

.DEFAULT_GOAL := help
.PHONY: help build run deps test test-cluster test-race lint bench fmt clean

help: ## show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/srsproxy
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/srsproxy

run: build ## build and start the sidecar on 127.0.0.1:6380 against the local Redis and MariaDB
	./$(BIN) $(ARGS)

CLIENTS_STAMP   := testdata/clients/node_modules/.srsproxy-installed
TSFSRS_STAMP    := testdata/tsfsrs/node_modules/.srsproxy-installed
OPTIMIZER_STAMP := testdata/optimizer/node_modules/.srsproxy-installed

deps: $(CLIENTS_STAMP) $(TSFSRS_STAMP) $(OPTIMIZER_STAMP) ## install what the tests need: Debian packages (redis-server, redis-tools, python3-redis, nutcracker), the pinned npm clients, ts-fsrs and fsrs-rs's binding
	@./scripts/test-deps

# The real-client tests' pinned npm packages (ioredis, iovalkey, node-redis 4, 5 and 6), from the lockfile.
$(CLIENTS_STAMP): testdata/clients/package-lock.json
	cd testdata/clients && npm ci --no-audit --no-fund --loglevel=error
	touch $(CLIENTS_STAMP)

# ts-fsrs, the reference FSRS, for the differential test (engine/core/tsfsrs_test.go).
$(TSFSRS_STAMP): testdata/tsfsrs/package-lock.json
	cd testdata/tsfsrs && npm ci --no-audit --no-fund --loglevel=error
	touch $(TSFSRS_STAMP)

# fsrs-rs's optimiser through its pinned Node binding, the anchor of fsrs/optimize's tests.
# npm install from the lockfile, not npm ci: the registry here has only the linux-x64-gnu
# prebuilt, so the lockfile cannot list the other platforms' optional packages that npm ci requires.
$(OPTIMIZER_STAMP): testdata/optimizer/package-lock.json
	cd testdata/optimizer && npm install --no-save --no-audit --no-fund --loglevel=error
	touch $(OPTIMIZER_STAMP)

# The previous release, built from git, for the upgrade tests (cmd/srsproxy/upgrade_test.go).
RELEASE1     := eeeb798
RELEASE1_BIN := bin/srsproxy-release1

$(RELEASE1_BIN):
	@mkdir -p bin && rm -rf bin/.release1 && mkdir -p bin/.release1
	git archive $(RELEASE1) | tar -x -C bin/.release1
	cd bin/.release1 && $(GO) build -o ../srsproxy-release1 ./cmd/srsproxy
	rm -rf bin/.release1

test: build deps $(RELEASE1_BIN) ## run every test (unit, integration, real clients, crash tests, upgrade from the previous release)
	$(GO) vet ./...
	SRSPROXY_BIN=$(CURDIR)/$(BIN) SRSPROXY_RELEASE1_BIN=$(CURDIR)/$(RELEASE1_BIN) $(GO) test $(TESTFLAGS) ./...

test-cluster: build ## only the scale-out tests: a private 6-node Redis Cluster, failover, three sidecars (make test runs them too)
	SRSPROXY_BIN=$(CURDIR)/$(BIN) $(GO) test $(TESTFLAGS) -run Cluster -v ./cmd/srsproxy/ ./backend/redis/

test-race: build deps $(RELEASE1_BIN) ## run the tests with the race detector
	SRSPROXY_BIN=$(CURDIR)/$(BIN) SRSPROXY_RELEASE1_BIN=$(CURDIR)/$(RELEASE1_BIN) $(GO) test -race $(TESTFLAGS) ./...

lint: ## go vet, gofmt and golangci-lint (when installed)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; else echo "golangci-lint not installed; skipped"; fi

bench: build ## whole-system benchmark, ~10 min (cmd/srsbench): writes docs/benchmarks/; BENCHARGS="--profile quick" for a smoke run
	@command -v nutcracker >/dev/null 2>&1 || test -x /usr/sbin/nutcracker || \
		apt-get install -y -qq nutcracker >/dev/null 2>&1 || \
		(apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq nutcracker >/dev/null 2>&1) || \
		echo "srsbench: the Debian package nutcracker (twemproxy) could not be installed; the twemproxy baseline will be skipped"
	$(GO) build -o bin/srsbench ./cmd/srsbench
	./bin/srsbench --bin $(BIN) --out docs/benchmarks --cpuprofile docs/benchmarks/pprof $(BENCHARGS)

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output and ./data (the default queue directory of earlier releases)
	rm -rf bin data
