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

const (
	wideColumns = 200
	wideRows    = 100_000
)

// wideTable measures peak RSS while a table of wideColumns integer columns
// is snapshotted into Elasticsearch. Per encoded byte it is the heaviest
// shape: decoded, a batch of small values takes 20-35 times its encoded
// size (every column is a Column, a Value and its kind), so it checks the
// memory bound where the shop tables do not. The table, its pipeline and
// its index are removed afterwards.
func wideTable(ctx context.Context, o options, conn *pgx.Conn, dsn, esURL string, res *results) (err error) {
	step("memory: snapshot of a %d-column table (%d rows) → Elasticsearch", wideColumns, wideRows)
	cols, vals := make([]string, wideColumns), make([]string, wideColumns)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d int", i)
		vals[i] = fmt.Sprintf("(g + %d)::int", i)
	}
	if err := execSQL(ctx, conn, "DROP TABLE IF EXISTS public.wide"); err != nil {
		return err
	}
	if err := execSQL(ctx, conn, "CREATE TABLE public.wide (id bigint PRIMARY KEY, "+strings.Join(cols, ", ")+")"); err != nil {
		return err
	}
	if err := execSQL(ctx, conn, fmt.Sprintf("INSERT INTO public.wide SELECT g, %s FROM generate_series(1, %d) g", strings.Join(vals, ", "), wideRows)); err != nil {
		return err
	}
	dir := filepath.Join(o.dir, "wide")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	const source = "benchwide"
	cfg := testkit.ShopConfig("Written by make bench (scripts/bench): a wide table.", dir, o.adminAddr, source, "bench-wide", dsn, esURL)
	cfg = strings.Replace(cfg, "tables: [public.customers, public.products, public.orders, public.order_items]", "tables: [public.wide]", 1)
	cfgPath, logPath := filepath.Join(dir, "tidegate.yaml"), filepath.Join(dir, "tidegate.log")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	started := time.Now()
	p, err := startTidegate(o.bin, cfgPath, logPath, o.adminAddr)
	if err != nil {
		return err
	}
	defer func() {
		if serr := p.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping tidegate: %w", serr)
		}
		_ = execSQL(context.Background(), conn, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'tidegate_bench_wide%'`)
		_ = execSQL(context.Background(), conn, "DROP TABLE IF EXISTS public.wide")
		_ = o.search.DeleteIndex(context.Background(), source+".public.wide")
	}()
	pid := p.cmd.Process.Pid
	var sampled int64
	err = p.waitFor(ctx, fmt.Sprintf("%d events in the sink", wideRows), o.waitTimeout, 20*time.Millisecond, func() (bool, string) {
		sampled = max(sampled, procStatus(pid, "VmRSS"))
		v, err := p.m.sinkEvents()
		return err == nil && v >= wideRows, fmt.Sprintf("have %.0f, err %v; see %s", v, err, logPath)
	})
	if err != nil {
		return err
	}
	elapsed := time.Since(started)
	hwm := max(procStatus(pid, "VmHWM"), sampled)
	fmt.Printf("    %d rows of %d columns indexed after %s; peak RSS %.1f MiB; CPU: tidegate %.1f s\n", wideRows, wideColumns, elapsed.Round(time.Millisecond), mib(hwm), cpuSeconds(pid))
	res.HWMWide = hwm
	res.add(fmt.Sprintf("memory: peak RSS (VmHWM), snapshot of a %d-column table", wideColumns), "MiB", mib(hwm), "target 256 MiB", 256,
		fmt.Sprintf("%d rows of %d integer columns, tidegate start until all indexed in %s", wideRows, wideColumns, elapsed.Round(time.Millisecond)))
	return nil
}
