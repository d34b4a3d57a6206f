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

# The kernel matrix (scripts/kernel-matrix/README.md): the tracer's tests, built static, run on the host
# and inside Debian kernels booted under qemu, two VMs at a time. Kernels are cached under KM_CACHE.
KM_KERNELS ?=
KM_RUN ?=

.PHONY: kernel-matrix
kernel-matrix: ## tracer tests on the host + Debian 5.10/6.1/6.12/latest under qemu (KM_KERNELS="6.1 latest", KM_RUN=TestX)
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "CGO_ENABLED=0 $(GO) test -c -o $$tmp/tracer.test ./receiver/ebpfnetreceiver/internal/tracer"; \
	CGO_ENABLED=0 $(GO) test -c -o "$$tmp/tracer.test" ./receiver/ebpfnetreceiver/internal/tracer; \
	KM_KERNELS='$(KM_KERNELS)' scripts/kernel-matrix/km.sh run "$$tmp/tracer.test" -test.v -test.count=1 $(if $(KM_RUN),'-test.run=$(KM_RUN)')

.PHONY: kernel-matrix-fetch
kernel-matrix-fetch: ## install qemu & co., download/refresh the kernel matrix's kernels into KM_CACHE
	scripts/kernel-matrix/km.sh deps
	KM_KERNELS='$(KM_KERNELS)' scripts/kernel-matrix/km.sh fetch
