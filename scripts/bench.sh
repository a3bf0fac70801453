#!/usr/bin/env bash
# make bench: start PostgreSQL and Elasticsearch on 127.0.0.1, build
# tidegate and measure it beside the limits measured in the same run.
# Arguments go to the program, e.g. scripts/bench.sh -rows 200000.
# Writes bench-results/bench.json and regenerates docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh start pg es
# shellcheck disable=SC1091
. .services/env
echo "==> building tidegate"
go build -o bin/tidegate ./cmd/tidegate
go run ./scripts/bench "$@"
