// Package elasticsearch is the Elasticsearch and OpenSearch sink: it applies
// batches of change events as bulk index/delete operations, one document per
// source row.
//
// It owns: flavor and version detection, index naming, index creation with
// the configured settings and mappings, NDJSON bulk encoding, splitting and
// concurrent sending of bulk requests, retries, error classification
// (retryable, permanent, stale), truncate handling, and filling in unchanged
// TOAST columns from the batch or the stored documents (toast.go). Talking
// HTTP is left to the official clients (go-elasticsearch and opensearch-go)
// behind the small backend interface in backend.go; everything else is
// flavor-agnostic.
//
// Ordering and idempotency come from external versioning: every operation
// carries version=<event version> and version_type=external_gte, so a replay
// or an out-of-order older event can never overwrite a newer document.
// docs/sinks/elasticsearch.md describes the behaviour for users.
package elasticsearch
