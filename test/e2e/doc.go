// Package e2e runs the tidegate binary end to end against real PostgreSQL,
// Elasticsearch and OpenSearch (started by scripts/services.sh): snapshot,
// streaming, restarts, kill -9 and sink outages, each ending with a
// row-by-row comparison of tables and indexes.
package e2e
