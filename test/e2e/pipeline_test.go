package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/testkit"
)

const convergeTimeout = 90 * time.Second

func clusters(t *testing.T) map[string]string {
	return map[string]string{
		"elasticsearch": testkit.ElasticURL(t),
		"opensearch":    testkit.OpenSearchURL(t),
	}
}

// Snapshot of every type family, then live inserts/updates/deletes.
func TestSnapshotThenStream(t *testing.T) {
	for flavor, url := range clusters(t) {
		t.Run(flavor, func(t *testing.T) {
			e := newEnv(t, url)
			ctx := context.Background()
			if err := testkit.LoadShop(ctx, e.conn, 6000); err != nil {
				t.Fatal(err)
			}
			p := e.start()
			e.waitConverged(convergeTimeout)
			e.workload(testkit.NewWorkload(1), 300)
			e.waitConverged(convergeTimeout)
			e.noDeadLetters()
			// The latency breakdown saw the streamed transactions, from
			// PostgreSQL's side to the sink's.
			for _, h := range []string{"tidegate_source_server_delay_seconds_count", "tidegate_source_publish_latency_seconds_count", "tidegate_end_to_end_latency_seconds_count"} {
				if n, err := e.metric(h); err != nil || n == 0 {
					t.Errorf("%s = %v (err %v) after 300 streamed transactions", h, n, err)
				}
			}
			p.stop()
		})
	}
}

// A clean restart resumes: changes made while tidegate is down arrive,
// nothing is lost or doubled.
func TestRestartResumes(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 3000); err != nil {
		t.Fatal(err)
	}
	w := testkit.NewWorkload(2)
	p := e.start()
	e.waitConverged(convergeTimeout)
	e.workload(w, 100)
	p.stop()
	e.workload(w, 200)
	p = e.start()
	e.waitConverged(convergeTimeout)
	// Events the source re-sends after the restart are re-applied
	// harmlessly: nothing goes to the DLQ.
	e.noDeadLetters()
	p.stop()
}

// A row updated twice in one transaction keeps the second value; a key
// deleted and re-inserted exists with the new value.
func TestSameRowTwiceAndReinsert(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	testkit.Exec(t, e.conn, `INSERT INTO customers (id, email, name) VALUES (1, 'a@x', 'one'), (2, 'b@x', 'two')`)
	p := e.start()
	e.waitConverged(convergeTimeout)
	testkit.Exec(t, e.conn,
		`BEGIN; UPDATE customers SET name = 'first' WHERE id = 1; UPDATE customers SET name = 'second' WHERE id = 1; COMMIT`,
		`BEGIN; DELETE FROM customers WHERE id = 2; INSERT INTO customers (id, email, name) VALUES (2, 'b@x', 'reborn'); COMMIT`,
		`UPDATE customers SET id = 3 WHERE id = 1`, // key change: doc 1 goes, doc 3 appears
	)
	e.waitConverged(convergeTimeout)
	doc, err := e.search.Get(context.Background(), e.index("public.customers"), "3")
	if err != nil || doc == nil {
		t.Fatalf("doc 3: %s %v", doc, err)
	}
	var c struct{ Name string }
	_ = json.Unmarshal(doc, &c)
	if c.Name != "second" {
		t.Fatalf("name = %q, want second", c.Name)
	}
	p.stop()
}

// interruptSnapshot runs tidegate with a 1 MiB bus and the sink cut off, so
// the snapshot fills the bus and waits; it kills tidegate there (kill -9),
// then restores the sink and the bus size. Deterministically mid-snapshot.
func (e *env) interruptSnapshot(proxy *testkit.Proxy) {
	e.t.Helper()
	proxy.Cut()
	e.bus = "bus: { max_bytes: 1MiB, max_inflight_bytes: 128KiB }"
	e.writeConfig()
	p := e.start()
	e.waitMetric(p, convergeTimeout, 1000, "tidegate_snapshot_rows_total")
	p.kill9()
	e.bus = ""
	e.writeConfig()
	proxy.Restore()
}

// assertResumed checks that a run resumed an interrupted snapshot.
func (p *proc) assertResumed() {
	p.t.Helper()
	data, _ := os.ReadFile(p.log)
	if !strings.Contains(string(data), "resuming interrupted snapshot") {
		p.dumpLog()
		p.t.Fatal("the snapshot was not resumed: the test did not exercise what it claims")
	}
}

// The snapshot/stream boundary: a snapshot resumed after a crash runs under
// a new snapshot while a transaction is open; that transaction commits
// after the snapshot read the rows it changed. Its changes must win.
func TestBoundaryTransactionAfterResumedSnapshot(t *testing.T) {
	e, proxy := newProxiedEnv(t)
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 20000); err != nil {
		t.Fatal(err)
	}
	e.extra = "      snapshot_workers: 1\n"
	e.interruptSnapshot(proxy)

	// An open transaction changes rows the resumed snapshot will read
	// (order_items) and rows the first run already read (orders).
	other := testkit.Connect(t, e.dsn)
	testkit.Exec(t, other, `BEGIN`, `UPDATE order_items SET qty = 999 WHERE order_id = 3000`, `UPDATE orders SET notes = 'boundary' WHERE id IN (1, 3000)`)
	p := e.start()
	// Wait for the snapshot to complete: it cannot see the open transaction.
	e.waitMetric(p, convergeTimeout, 1, "tidegate_snapshot_progress_ratio")
	p.assertResumed()
	testkit.Exec(t, other, `COMMIT`)
	e.waitConverged(convergeTimeout)
	doc, _ := e.search.Get(ctx, e.index("public.order_items"), "[3000,1]")
	var it struct{ Qty int }
	_ = json.Unmarshal(doc, &it)
	if it.Qty != 999 {
		t.Fatalf("order item [3000,1] qty = %d, want 999 (doc %s)", it.Qty, doc)
	}
	e.noDeadLetters()
	p.stop()
}

// kill -9 during the snapshot and again during streaming; every restart
// resumes and the index ends equal to the tables.
func TestKill9DuringSnapshotAndStreaming(t *testing.T) {
	e, proxy := newProxiedEnv(t)
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 30000); err != nil {
		t.Fatal(err)
	}
	e.interruptSnapshot(proxy)
	p := e.start()
	e.waitMetric(p, convergeTimeout, 1, "tidegate_snapshot_progress_ratio")
	p.assertResumed()
	w := testkit.NewWorkload(3)
	for range 3 {
		e.workload(w, 100)
		e.waitMetric(p, convergeTimeout, 1, "tidegate_events_total", `stage="sink:search"`)
		p.kill9()
		e.workload(w, 50)
		p = e.start()
	}
	e.waitConverged(convergeTimeout)
	e.noDeadLetters()
	p.stop()
}

// Elasticsearch unreachable for 30 s during streaming (a proxy in front of
// the real server cuts every connection), and tidegate killed while it is
// unreachable: positions confirmed to PostgreSQL were in the bus, so after
// restart everything arrives.
func TestSinkOutageAndCrash(t *testing.T) {
	e, proxy := newProxiedEnv(t)
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 3000); err != nil {
		t.Fatal(err)
	}
	w := testkit.NewWorkload(4)
	p := e.start()
	e.waitConverged(convergeTimeout)

	proxy.Cut()
	outage := time.Now()
	e.workload(w, 300)
	// The slot is confirmed past the whole workload while the sink is down:
	// its events are durable in the bus (the restart below proves nothing
	// confirmed was lost).
	var end string
	if err := e.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(convergeTimeout)
	for {
		var passed bool
		err := e.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`,
			end, "tidegate_"+e.source).Scan(&passed)
		if err != nil {
			t.Fatal(err)
		}
		if passed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not confirmed past %s while the sink was down (confirmed %s): events are not buffered in the bus", end, confirmedLSN(t, e))
		}
		time.Sleep(200 * time.Millisecond) // polling a condition
	}
	if time.Since(outage) < 30*time.Second {
		time.Sleep(30*time.Second - time.Since(outage)) // the outage lasts 30 s by design
	}
	p.kill9()
	proxy.Restore()
	p = e.start()
	e.waitConverged(convergeTimeout)
	e.noDeadLetters()
	p.stop()
}

// newProxiedEnv is an env whose tidegate reaches Elasticsearch through a
// fault-injecting proxy.
func newProxiedEnv(t *testing.T) (*env, *testkit.Proxy) {
	url := testkit.ElasticURL(t)
	proxy := testkit.NewProxy(t, strings.TrimPrefix(url, "http://"))
	e := newEnv(t, url)
	e.searchURL = "http://" + proxy.Addr()
	return e, proxy
}

func confirmedLSN(t *testing.T, e *env) string {
	var lsn *string
	err := e.conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, "tidegate_"+e.source).Scan(&lsn)
	if err != nil || lsn == nil {
		t.Fatalf("reading confirmed_flush_lsn: %v", err)
	}
	return *lsn
}
