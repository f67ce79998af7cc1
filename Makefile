# rankhub — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
REV := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/rankhub/rankhub/internal/buildinfo.Revision=$(REV)
export CGO_ENABLED ?= 0
BINS := bin/rankhub bin/hello bin/interactive bin/interactive-client $(if $(wildcard examples/ising),bin/ising)

.PHONY: help build test check demo bench bench-multinode fuzz clean slurm-up slurm-down slurm-multi-up slurm-multi-down jsreaders

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/rankhub and the examples (static, cgo-free)
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/rankhub ./cmd/rankhub
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/hello ./examples/hello
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/interactive ./examples/interactive
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/interactive-client ./examples/interactive/client
	@if [ -d examples/ising ]; then $(GO) build -ldflags "$(LDFLAGS)" -o bin/ising ./examples/ising; fi

jsreaders: ## install the Arrow readers that are not ours (Arrow JS, DuckDB) for the results tests
	@if [ ! -d results/jsreaders/node_modules/apache-arrow ]; then \
	  if command -v npm >/dev/null; then cd results/jsreaders && npm install --no-audit --no-fund --loglevel=error; \
	  else echo "npm not found: the Arrow JS/DuckDB reader tests will skip (apt-get install nodejs npm)"; fi; fi

test: build jsreaders ## run every test with the race detector
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

check: ## gofmt, go vet, staticcheck (pinned), go mod tidy drift, import direction
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@cp go.mod /tmp/rankhub-go.mod.bak; cp go.sum /tmp/rankhub-go.sum.bak; $(GO) mod tidy; \
	  if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changes go.mod/go.sum:"; git diff -- go.mod go.sum; \
	  cp /tmp/rankhub-go.mod.bak go.mod; cp /tmp/rankhub-go.sum.bak go.sum; exit 1; fi
	$(GO) test -count=1 -run TestImportDirection .

demo: build ## run the hello job on 4 local ranks (and the Ising sweep with a peek table, when built)
	bin/rankhub run jobs/examples/hello.toml
	@if [ -x bin/ising ] && [ -f jobs/examples/ising.toml ]; then \
	  rm -f jobs/examples/ising.arrow; bin/rankhub run jobs/examples/ising.toml && bin/rankhub peek jobs/examples/ising.arrow --by L,T; fi

bench: build ## rankhub's benchmarks side by side with the anchors in ../shared/anchors
	bash scripts/bench-deps.sh
	$(GO) build -o bin/rhbench ./benchmarks/rhbench
	$(GO) run ./benchmarks/cmd/bench
	@if [ "$${BENCH_SKIP#*coll}" = "$${BENCH_SKIP}" ]; then bash benchmarks/collective/run.sh; fi
	@if [ "$${BENCH_SKIP#*oversub}" = "$${BENCH_SKIP}" ]; then bash benchmarks/oversub/run.sh; fi

bench-multinode: ## rankhub across the emulated 3-node cluster beside the raw wire and Open MPI (SIZES_MIB LAYOUTS OPS REPS narrow it)
	bash benchmarks/multinode/run.sh

fuzz: ## run every fuzz target for FUZZTIME each (default 30s; FUZZ=regexp picks targets); any crasher fails
	GO=$(GO) bash scripts/fuzz.sh

slurm-up: ## start the local single-node SLURM (installs it if missing)
	bash scripts/slurm-local.sh up

slurm-down: ## stop the local SLURM
	bash scripts/slurm-local.sh down

slurm-multi-up: ## start the emulated 3-node SLURM beside the local one (the multi-node tier)
	bash scripts/slurm-local.sh up --nodes 3

slurm-multi-down: ## remove the emulated 3-node SLURM (namespaces, bridge, daemons, files)
	bash scripts/slurm-local.sh down --nodes 3

clean: ## remove built binaries and local job directories
	rm -rf bin .rankhub jobs/examples/.rankhub
