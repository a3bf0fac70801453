// Package pipeline wires one source to the bus and the bus to N sinks, owns
// their lifecycle (restarts after transient failures), and records the
// pipeline's metrics. build.go is the one place that turns configuration
// into concrete sources and sinks.
package pipeline
