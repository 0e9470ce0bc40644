# PANORAMIX mail. `make` alone lists the targets; `make run` and `make test` are the two set-up
# commands named in README.md.

# The Go toolchain every target uses. go1.27.3 fixes standard-library vulnerabilities that go1.26.8
# has with call paths in this code (issue 13, finding 9); the go command fetches it from the module
# proxy on first use. Set here, not only in go.mod, because the environment here sets
# GOTOOLCHAIN=local, which would otherwise refuse go.mod's `go 1.27.3` on a machine with Go 1.26.
export GOTOOLCHAIN := go1.27.3

GO ?= go
GOFMT ?= $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) $(GO) env GOROOT)/bin/gofmt

# The programs, one main package each (DESIGN.md section 2). `make build` builds those that exist.
CMDS := mailproxy postfix-filter mixd directory mixctl

# Version stamped into every program's --version.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/panoramix-mixnet/panoramix/pkg/version.Version=$(VERSION)

# Narrow `make bench` and `make fuzz`: PKG=./pkg/sphinx BENCH=Unwrap BENCHTIME=2s FUZZTIME=30s.
PKG ?= ./...
BENCH ?= .
BENCHTIME ?= 1s
FUZZTIME ?= 10s

.DEFAULT_GOAL := help
.PHONY: help build test bench privacy vectors fuzz lint vulncheck run run-reset clean

help: ## list the targets
	@echo 'Targets (make TARGET):'
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo 'Variables: PKG=$(PKG) BENCH=$(BENCH) BENCHTIME=$(BENCHTIME) FUZZTIME=$(FUZZTIME) VERSION=$(VERSION)'

build: ## build every program into bin/ with the version stamped
	@echo "Go toolchain $(GOTOOLCHAIN) (a first run downloads it, about 75 MB):"
	@$(GO) version
	@set -e; pkgs=; for d in $(CMDS); do \
		if grep -qs '^package main$$' ./$$d/*.go; then pkgs="$$pkgs ./$$d"; \
		else echo "skipping $$d/: no main package there yet"; fi; \
	done; \
	if [ -n "$$pkgs" ]; then mkdir -p bin; \
		echo "building$$pkgs into bin/ (version $(VERSION)); a first build downloads the modules (about 105 MB: the go: downloading lines) and compiles everything: minutes (README.md, First run)"; \
		echo "$(GO) build -v -ldflags '$(LDFLAGS)' -o bin/$$pkgs   (lists each package it compiles)"; \
		$(GO) build -v -ldflags '$(LDFLAGS)' -o bin/ $$pkgs; echo "built: $$(cd bin && echo *)"; fi

test: ## run every test (the README's test command); installs (as root) the Debian packages they need
	@scripts/install-test-deps.sh
	$(GO) test -count=1 -timeout 30m ./...

bench: ## run benchmarks with allocations (narrow with PKG, BENCH, BENCHTIME)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem $(PKG)

privacy: ## measure privacy on a 50-user local network (about 15 min; needs tcpdump, root) into docs/PRIVACY.md
	$(GO) run -tags privacytrace ./internal/privacy/cmd/privacy -out docs/PRIVACY.md -figures docs/privacy/quick -sim-quick $(PRIVACY_ARGS)

vectors: ## regenerate the Sphinx test vectors in pkg/sphinx/testdata (only on purpose)
	$(GO) run ./pkg/sphinx/internal/genvectors -out pkg/sphinx/testdata

fuzz: ## run every fuzz target for FUZZTIME each (narrow with PKG)
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh $(PKG)

lint: ## gofmt, go vet and staticcheck
	@files=$$(find . \( -name testdata -o -name '.?*' \) -prune -o -name '*.go' -print | xargs -r $(GOFMT) -l); \
	if [ -n "$$files" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

vulncheck: ## govulncheck ./... against a database built offline from golang.org/x/vulndb
	GO=$(GO) scripts/vulncheck.sh

run: ## start (or resume, from .run/) a whole local mixnet; Ctrl-C stops it (options: RUN_ARGS=)
	GO=$(GO) scripts/run.sh $(RUN_ARGS)

run-reset: ## delete .run/ and start a new local mixnet
	GO=$(GO) scripts/run.sh --fresh

clean: ## remove bin/
	rm -rf bin
