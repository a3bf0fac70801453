// Package leaktest fails a package's tests when a goroutine they started
// is still running after them: every goroutine has an owner that stops it.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// VerifyTestMain runs the tests, then checks for leaked goroutines. Call it
// from TestMain.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The NATS server and client keep a few process-wide goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).logRejectedTLSConns"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
