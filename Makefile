# tidegate: developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MODULE := github.com/tidegate/tidegate
PROTO_FILES := $(wildcard proto/tidegate/v1/*.proto)
PROTOC_GEN_GO_VERSION := v1.36.12
# protoc-gen-connect-go, for the admin API's service code (same version as connectrpc.com/connect in go.mod).
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
PROTOC_CONNECT_TOOL = [[ -x "$(GOBIN)/protoc-gen-connect-go" ]] || \
		go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
# protoc-gen-go-vtproto: fast marshal/unmarshal/size for the event envelope
# (same version as github.com/planetscale/vtprotobuf in go.mod).
PROTOC_GEN_VTPROTO_VERSION := v0.6.0
PROTOC_VTPROTO_TOOL = [[ -x "$(GOBIN)/protoc-gen-go-vtproto" ]] || \
		go install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_VTPROTO_VERSION)
VTPROTO_OPTS = --go-vtproto_opt=module=$(MODULE),features=marshal+unmarshal+size
GOBIN := $(shell go env GOPATH)/bin
# Go files to format and check: everything except dot-directories (.services, .git) and testdata.
GO_FILES = $(shell find . -name '*.go' -not -path './.*' -not -path '*/testdata/*' -not -path './bin/*')

# Under CI=true a missing service is a test failure, never a skip: pass it through
# (from the environment or `make test CI=true`), and leave it unset otherwise.
ifdef CI
export CI
endif

.PHONY: help services services-stop services-status build test soak test-unit vet demo bench \
	proto proto-check proto-tools fmt lint

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

services: ## start PostgreSQL, Elasticsearch and OpenSearch on 127.0.0.1 (scripts/services.sh)
	scripts/services.sh start

services-stop: ## stop the services
	scripts/services.sh stop

services-status: ## show which services run, with pid, url and version
	scripts/services.sh status

build: ## build bin/tidegate
	go build -o bin/tidegate ./cmd/tidegate

vet: ## go vet ./...
	go vet ./...

test: vet ## vet, start the services, run every test against them (-race -shuffle)
	scripts/services.sh start
	. .services/env && go test -race -shuffle=on -count=1 -timeout 45m ./...

soak: ## the chaos convergence test, long: 200 SIGKILLs, 6 Elasticsearch restarts (TIDEGATE_CHAOS_SEED replays a run)
	scripts/services.sh start
	. .services/env && TIDEGATE_CHAOS_KILLS=$${TIDEGATE_CHAOS_KILLS:-200} TIDEGATE_CHAOS_ES_RESTARTS=$${TIDEGATE_CHAOS_ES_RESTARTS:-6} \
		go test -count=1 -v -run '^TestChaosConvergence$$' -timeout 3h ./test/e2e/

test-unit: ## run the tests that need no services (go test -short)
	go test -race -short ./...

demo: ## run the end-to-end demo (scripts/demo.sh)
	scripts/demo.sh

bench: ## run the benchmarks (scripts/bench.sh)
	@if [[ ! -x scripts/bench.sh ]]; then \
		echo "make bench: scripts/bench.sh does not exist yet (or is not executable)" >&2; exit 1; fi
	scripts/bench.sh

proto-tools: # protoc and the well-known types (Debian protobuf-compiler, libprotobuf-dev) and protoc-gen-go $(PROTOC_GEN_GO_VERSION)
	@{ command -v protoc >/dev/null && [[ -f /usr/include/google/protobuf/timestamp.proto ]]; } || { \
		echo "installing protobuf-compiler libprotobuf-dev" >&2; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev || { \
			DEBIAN_FRONTEND=noninteractive apt-get update && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev; }; }
	@[[ "$$($(GOBIN)/protoc-gen-go --version 2>/dev/null)" == "protoc-gen-go $(PROTOC_GEN_GO_VERSION)" ]] || \
		go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

proto: proto-tools ## regenerate the Go code of proto/tidegate/v1/*.proto (event/, internal/admin/adminpb/)
	$(PROTOC_CONNECT_TOOL)
	$(PROTOC_VTPROTO_TOOL)
	PATH="$(GOBIN):$$PATH" protoc --proto_path=proto --go_out=. --go_opt=module=$(MODULE) \
		--connect-go_out=. --connect-go_opt=module=$(MODULE) $(PROTO_FILES)
	PATH="$(GOBIN):$$PATH" protoc --proto_path=proto --go-vtproto_out=. $(VTPROTO_OPTS) proto/tidegate/v1/event.proto

proto-check: proto-tools ## fail if the committed generated code differs from a fresh protoc run
	@$(PROTOC_CONNECT_TOOL)
	@$(PROTOC_VTPROTO_TOOL)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH="$(GOBIN):$$PATH" protoc --proto_path=proto --go_out="$$tmp" --go_opt=module=$(MODULE) \
		--connect-go_out="$$tmp" --connect-go_opt=module=$(MODULE) $(PROTO_FILES); \
	PATH="$(GOBIN):$$PATH" protoc --proto_path=proto --go-vtproto_out="$$tmp" $(VTPROTO_OPTS) proto/tidegate/v1/event.proto; \
	status=0; \
	for f in $$(cd "$$tmp" && find . -name '*.pb.go' -o -name '*.connect.go'); do \
		diff -u "$$f" "$$tmp/$$f" || status=1; \
	done; \
	if [[ $$status -ne 0 ]]; then echo "generated protobuf code is stale: run make proto" >&2; fi; \
	exit $$status

fmt: ## gofmt every Go file
	gofmt -w $(GO_FILES)

lint: vet ## fail on unformatted files (gofmt -l) and go vet findings
	@out=$$(gofmt -l $(GO_FILES)); \
	if [[ -n "$$out" ]]; then echo "not gofmt-ed (run make fmt):" >&2; echo "$$out" >&2; exit 1; fi
