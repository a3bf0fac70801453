package pipeline

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (runners, flights, the emitter's flusher,
// publishers) is stopped by its owner before the test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The NATS server and client keep a few process-wide goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).logRejectedTLSConns"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
