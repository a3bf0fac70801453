package testkit

import (
	"os"
	"testing"
)

// Environment variables written by scripts/services.sh into .services/env.
const (
	EnvPostgresDSN   = "TIDEGATE_TEST_PG_DSN"
	EnvElasticURL    = "TIDEGATE_TEST_ES_URL"
	EnvOpenSearchURL = "TIDEGATE_TEST_OS_URL"
)

// Service returns the value of a service environment variable. When it is
// unset the test is skipped, except under CI=true where a missing service
// fails the test: CI must never pass by skipping.
func Service(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	prerequisite(t, "%s not set: start the services with `make services` and `source .services/env`", name)
	return ""
}

// PostgresDSN returns the DSN of the test PostgreSQL (a superuser on a
// cluster with wal_level=logical).
func PostgresDSN(t testing.TB) string { return Service(t, EnvPostgresDSN) }

// ElasticURL returns the URL of the test Elasticsearch.
func ElasticURL(t testing.TB) string { return Service(t, EnvElasticURL) }

// OpenSearchURL returns the URL of the test OpenSearch.
func OpenSearchURL(t testing.TB) string { return Service(t, EnvOpenSearchURL) }
