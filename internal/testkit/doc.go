// Package testkit is the shared integration-test harness: where the real
// services are (started by scripts/services.sh), a workload generator and a
// source-versus-sink comparator that every source and sink test reuses.
package testkit
