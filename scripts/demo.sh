#!/usr/bin/env bash
# make demo: install and start PostgreSQL and Elasticsearch on 127.0.0.1,
# load a sample shop database, run tidegate (snapshot, then live changes)
# and verify every table against its index.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh start pg es
# shellcheck disable=SC1091
. .services/env
echo "==> building tidegate"
go build -o bin/tidegate ./cmd/tidegate
go run ./scripts/demo "$@"
