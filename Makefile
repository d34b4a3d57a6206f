# otelcol-ebpfnet. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
CLANG ?= clang-19
TOOLS := $(GO) tool -modfile=internal/tools/go.mod
export CLANG

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## regenerate BPF objects (bpf2go, pinned clang-19), metadata (mdatagen) and the distribution (ocb)
	$(GO) generate ./receiver/...

.PHONY: check-generated
check-generated: generate ## regenerate everything and fail if any committed output changed
	@git diff --exit-code --stat -- . || { echo "generated files are out of date: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- . | grep '^??')" || { git status --short; echo "generate produced untracked files" >&2; exit 1; }

.PHONY: fmt
fmt: ## gofmt the Go code and clang-format the BPF C
	gofmt -w $$(git ls-files '*.go' | grep -v '^cmd/')
	clang-format-19 -i $$(git ls-files 'bpf/*.c' 'bpf/*.h' | grep -v vmlinux.h) 2>/dev/null || true

.PHONY: lint
lint: ## go vet
	$(GO) vet ./...

.PHONY: test
test: ## the whole test suite (run as root: BPF tests need it; under CI=true they fail instead of skipping)
	$(GO) test -race -count=1 ./...
