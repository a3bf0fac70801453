package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/internal/testkit"
)

const slotBusTx = "tidegate_bench_recv_bus"

// busOnly measures the source side alone: tidegate runs with its sink
// pointed at an address where nothing listens (the sink retries to connect
// while every event waits in the bus), so neither the sink nor
// Elasticsearch's indexing competes for the CPUs. Scenarios: the snapshot
// into the bus, then one transaction updating every order item into the
// bus. The pipeline is dropped afterwards.
func busOnly(ctx context.Context, o options, conn *pgx.Conn, dsn string, res *results, copyRate float64) error {
	step("tidegate, no sink: snapshot → bus")
	dir := filepath.Join(o.dir, "bus-only")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := testkit.ShopConfig("Written by make bench (scripts/bench): source side only.", dir, o.adminAddr, sourceName, "bench-bus", dsn, "http://127.0.0.1:9")
	// Room for everything: the snapshot and the big transaction stay in the bus.
	cfg = strings.Replace(cfg, "\nadmin:", "\nbus: { max_bytes: 16GiB }\nadmin:", 1)
	cfgPath, logPath := filepath.Join(dir, "tidegate.yaml"), filepath.Join(dir, "tidegate.log")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	pg := newPGCPU()
	started := time.Now()
	p, err := startTidegate(o.bin, cfgPath, logPath, o.adminAddr)
	if err != nil {
		return err
	}
	defer func() {
		_ = p.stop()
		_ = execSQL(context.Background(), conn, `SELECT pg_drop_replication_slot('tidegate_bench_bus')`)
	}()
	sourceEvents := func() (float64, error) { return p.m.get("tidegate_events_total", `stage="source"`) }
	err = p.waitFor(ctx, "snapshot_progress_ratio = 1", o.waitTimeout, 20*time.Millisecond, func() (bool, string) {
		pg.sample()
		r, err := p.m.get("tidegate_snapshot_progress_ratio")
		return err == nil && r >= 1, fmt.Sprintf("ratio %.3f, err %v; see %s", r, err, logPath)
	})
	if err != nil {
		return err
	}
	elapsed := time.Since(started)
	pg.sample()
	total := float64(res.TotalRows)
	tgCPU, pgCPU := cpuSeconds(p.cmd.Process.Pid), pg.seconds()
	fmt.Printf("    %d rows durable in the bus after %s; CPU: tidegate %.2f s (%.2f µs/row), PostgreSQL %.2f s\n",
		res.TotalRows, elapsed.Round(time.Millisecond), tgCPU, tgCPU/total*1e6, pgCPU)
	res.add("snapshot PostgreSQL → bus (no sink)", "rows/s", total/elapsed.Seconds(), "COPY (SELECT *) TO STDOUT → io.Discard", copyRate,
		fmt.Sprintf("%d rows; tidegate start (new slot, empty bus) until snapshot_progress_ratio=1 in %s, sink unreachable; CPU used meanwhile: tidegate %.2f s (%.2f µs/row), PostgreSQL %.2f s",
			res.TotalRows, elapsed.Round(time.Millisecond), tgCPU, tgCPU/total*1e6, pgCPU))

	step("tidegate, no sink: one transaction updating %d order items → bus", res.OrderItems)
	if err := createDecodingSlot(ctx, conn, slotBusTx); err != nil {
		return err
	}
	defer dropSlot(context.Background(), conn, slotBusTx)
	before, err := sourceEvents()
	if err != nil {
		return err
	}
	tag, err := conn.Exec(ctx, "UPDATE order_items SET qty = qty + 1")
	if err != nil {
		return err
	}
	committed := time.Now()
	n := float64(tag.RowsAffected())
	end, err := endLSN(ctx, conn)
	if err != nil {
		return err
	}
	err = p.waitFor(ctx, "the big transaction in the bus", o.waitTimeout, 20*time.Millisecond, func() (bool, string) {
		v, err := sourceEvents()
		return err == nil && v >= before+n, fmt.Sprintf("have %.0f of %.0f, err %v", v-before, n, err)
	})
	if err != nil {
		return err
	}
	inBus := time.Since(committed)
	_ = p.stop() // pg_recvlogical runs alone
	recv, err := recvLogical(ctx, dsn, slotBusTx, end)
	if err != nil {
		return err
	}
	fmt.Printf("    tidegate %.0f events into the bus in %s; pg_recvlogical in %s\n", n, inBus.Round(time.Millisecond), recv.Round(time.Millisecond))
	res.add("streaming PostgreSQL → bus (no sink), one big transaction", "events/s", n/inBus.Seconds(), "pg_recvlogical (test_decoding) → /dev/null", n/recv.Seconds(),
		fmt.Sprintf("UPDATE of %.0f rows; commit until the source counter +%.0f in %s; pg_recvlogical to --endpos in %s", n, n, inBus.Round(time.Millisecond), recv.Round(time.Millisecond)))
	return nil
}

func execSQL(ctx context.Context, conn *pgx.Conn, sql string) error {
	_, err := conn.Exec(ctx, sql)
	return err
}
