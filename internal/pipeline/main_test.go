package pipeline

import (
	"testing"

	"github.com/tidegate/tidegate/internal/testkit/leaktest"
)

// Every goroutine a test starts (runners, flights, the emitter's flusher,
// publishers) is stopped by its owner before the test ends.
func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
