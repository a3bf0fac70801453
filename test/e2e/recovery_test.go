package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/testkit"
)

// changeWhileDown drops the pipeline's slot while tidegate is stopped, and
// changes data meanwhile: updates, inserts, and deletes whose documents only
// a sweep can remove.
func changeWhileDown(t *testing.T, e *env) {
	t.Helper()
	testkit.Exec(t, e.conn, `SELECT pg_drop_replication_slot('tidegate_`+e.source+`')`)
	testkit.Exec(t, e.conn, `DELETE FROM order_items WHERE order_id % 7 = 0`)
	e.workload(testkit.NewWorkload(11), 100)
}

// Scenario 5, default policy: a lost slot stops tidegate with an error that
// says how to recover; nothing is skipped silently.
func TestPositionLostFails(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	if err := testkit.LoadShop(context.Background(), e.conn, 2000); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	e.waitConverged(convergeTimeout)
	e.workload(testkit.NewWorkload(3), 50)
	e.waitConverged(convergeTimeout)
	p.stop()

	changeWhileDown(t, e)
	p = e.start()
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil {
			t.Fatal("tidegate exited cleanly after losing its position; want a failure")
		}
	case <-time.After(convergeTimeout):
		t.Fatal("tidegate kept running after losing its position")
	}
	log, _ := os.ReadFile(p.log)
	for _, want := range []string{"no longer exists", "on_position_lost: resnapshot", "tidegate pipeline drop"} {
		if !strings.Contains(string(log), want) {
			p.dumpLog()
			t.Fatalf("the error does not say %q", want)
		}
	}
}

// Scenario 5, on_position_lost: resnapshot: tidegate re-snapshots, sweeps
// the documents of rows deleted while the position was lost, streams on,
// and the index converges.
func TestPositionLostResnapshot(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	e.snapshot = "initial\n    on_position_lost: resnapshot"
	if err := testkit.LoadShop(context.Background(), e.conn, 2000); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	e.waitConverged(convergeTimeout)
	p.stop()

	changeWhileDown(t, e)
	p = e.start()
	e.waitMetric(p, convergeTimeout, 1, "tidegate_source_position_lost_total")
	e.waitMetric(p, convergeTimeout, 4, "tidegate_events_total", `stage="sink:search"`, `op="sweep"`)
	e.waitConverged(convergeTimeout)
	// And it streams on from the new slot.
	e.workload(testkit.NewWorkload(5), 50)
	e.waitConverged(convergeTimeout)
	e.noDeadLetters()
	p.stop()
}
