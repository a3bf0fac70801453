package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/testkit"
)

// waitSlotConfirmedPast polls until the pipeline slot's confirmed_flush_lsn
// reaches lsn.
func waitSlotConfirmedPast(t *testing.T, e *env, lsn string, why string) {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		var passed bool
		err := e.conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`,
			lsn, "tidegate_"+e.source).Scan(&passed)
		if err != nil {
			t.Fatal(err)
		}
		if passed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not confirmed past %s (confirmed %s): %s", lsn, confirmedLSN(t, e), why)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition
	}
}

func currentLSN(t *testing.T, e *env) string {
	t.Helper()
	var lsn string
	if err := e.conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

// Scenario 4: heavy writes to tables that are not captured (in the same
// database and in another one) while the captured tables are idle: the
// heartbeat keeps confirmed_flush_lsn advancing, so the slot does not pin
// the WAL; the lag metric reports what the slot retains.
func TestIdleCaptureHeavyOtherWrites(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	e.extra = "      heartbeat_interval: 1s\n"
	if err := testkit.LoadShop(context.Background(), e.conn, 500); err != nil {
		t.Fatal(err)
	}
	other := testkit.Connect(t, testkit.NewDatabase(t))
	p := e.start()
	e.waitConverged(convergeTimeout)

	testkit.Exec(t, e.conn, `CREATE TABLE not_captured (id bigserial PRIMARY KEY, pad text)`)
	testkit.Exec(t, other, `CREATE TABLE elsewhere (id bigserial PRIMARY KEY, pad text)`)
	for range 5 {
		testkit.Exec(t, e.conn, `INSERT INTO not_captured (pad) SELECT repeat('x', 200) FROM generate_series(1, 20000)`)
		testkit.Exec(t, other, `INSERT INTO elsewhere (pad) SELECT repeat('y', 200) FROM generate_series(1, 20000)`)
	}
	end := currentLSN(t, e)
	waitSlotConfirmedPast(t, e, end, "the heartbeat does not advance an idle slot")
	e.waitMetric(p, convergeTimeout, 1, "tidegate_source_slot_lag_bytes")
	if v, err := e.metric("tidegate_events_total", `stage="source"`, `table="public.not_captured"`); err != nil || v != 0 {
		t.Fatalf("events of a table that is not captured: %v (err %v)", v, err)
	}
	e.noDeadLetters()
	p.stop()
}

// Scenario 4: when the slot retains more WAL than max_slot_lag_bytes (here
// the sink is down and the bus is full, so nothing can be confirmed), the
// alert is raised loudly: an error log line and a gauge at 1. Once the sink
// is back, everything converges.
func TestMaxSlotLagAlert(t *testing.T) {
	e, proxy := newProxiedEnv(t)
	e.extra = "      max_slot_lag_bytes: 2MiB\n"
	e.bus = "bus: { max_bytes: 1MiB, max_inflight_bytes: 128KiB }"
	if err := testkit.LoadShop(context.Background(), e.conn, 500); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	e.waitConverged(convergeTimeout)
	if v, err := e.metric("tidegate_source_slot_lag_exceeded"); err != nil || v != 0 {
		t.Fatalf("lag alert raised before any lag: %v (err %v)", v, err)
	}

	proxy.Cut()
	w := testkit.NewWorkload(9)
	// Enough captured changes to fill the 1 MiB bus and block the source,
	// then WAL the slot must retain.
	for range 10 {
		testkit.Exec(t, e.conn, `UPDATE order_items SET qty = qty + 1`)
	}
	testkit.Exec(t, e.conn, `CREATE TABLE filler (id bigserial PRIMARY KEY, pad text)`)
	testkit.Exec(t, e.conn, `INSERT INTO filler (pad) SELECT repeat('z', 500) FROM generate_series(1, 20000)`)
	e.waitMetric(p, convergeTimeout, 1, "tidegate_source_slot_lag_exceeded")
	log, _ := os.ReadFile(p.log)
	if !strings.Contains(string(log), "retains more WAL than max_slot_lag_bytes") {
		p.dumpLog()
		t.Fatal("no error log line for the exceeded slot lag")
	}

	proxy.Restore()
	e.workload(w, 20)
	e.waitConverged(convergeTimeout)
	e.noDeadLetters()
	p.stop()
}
