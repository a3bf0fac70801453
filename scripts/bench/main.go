// Command bench is what `make bench` runs: it loads the shop database,
// measures tidegate (snapshot, streaming, latency, memory, start-up) and,
// in the same run, the limit each figure should be compared with (COPY,
// a minimal bulk loader, pg_recvlogical, a minimal change relay). It
// prints a table, writes bench-results/bench.json and regenerates
// docs/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/internal/testkit"
)

type options struct {
	rows        int
	autocommit  int
	rates       string
	latencyFor  time.Duration
	bin         string
	dir         string
	adminAddr   string
	results     string
	doc         string
	waitTimeout time.Duration
	busOnly     bool
	latencyRuns int             // latency runs per rate; the document reports their medians
	latencyOnly int             // >0: only the latency scenario, this many times per rate
	search      *testkit.Search // the cluster at the environment's URL
}

func main() {
	var o options
	flag.IntVar(&o.rows, "rows", 2_000_000, "rows to load in total (shop schema; the default makes the big transaction update over 1M order items)")
	flag.IntVar(&o.autocommit, "autocommit", 20_000, "single-row autocommit updates in the autocommit scenario")
	flag.StringVar(&o.rates, "rates", "1000,5000", "updates per second in the latency scenario (comma-separated)")
	flag.DurationVar(&o.latencyFor, "latency-for", 20*time.Second, "duration of the latency scenario")
	flag.IntVar(&o.latencyRuns, "latency-runs", 3, "latency runs per rate, each beside a relay run; the document reports their medians (a tail on a shared machine moves a lot from run to run)")
	flag.StringVar(&o.bin, "bin", "bin/tidegate", "tidegate binary")
	flag.StringVar(&o.dir, "dir", ".services/bench", "working directory for config, data and log")
	flag.StringVar(&o.adminAddr, "admin", "127.0.0.1:7089", "admin address given to tidegate")
	flag.StringVar(&o.results, "out", "bench-results/bench.json", "results file")
	flag.StringVar(&o.doc, "doc", "docs/performance.md", "performance document to regenerate (empty: do not write)")
	flag.DurationVar(&o.waitTimeout, "timeout", 15*time.Minute, "longest wait for any one condition")
	flag.StringVar(&profileDir, "profile", "", "write a CPU profile of every tidegate run into this directory (pprof)")
	flag.BoolVar(&o.busOnly, "bus-only", false, "measure the limits and the no-sink scenarios only, and write no document (profiling the source side)")
	flag.IntVar(&o.latencyOnly, "latency-only", 0, "measure only the latency scenario, this many runs per rate, and write no document (0: the whole bench)")
	render := flag.String("render", "", "only regenerate -doc from this results file (e.g. bench-results/bench.json), measuring nothing")
	flag.Parse()
	if *render != "" {
		if err := renderDoc(*render, o.doc); err != nil {
			fmt.Fprintln(os.Stderr, "bench failed:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

const (
	benchDB    = "tidegate_bench"
	sourceName = "bench"
	bulkPrefix = "benchbulk."
	slotBig    = "tidegate_bench_recv_tx"
	slotAuto   = "tidegate_bench_recv_auto"
)

func run(ctx context.Context, o options) (err error) {
	base := os.Getenv(testkit.EnvPostgresDSN)
	esURL := os.Getenv(testkit.EnvElasticURL)
	if base == "" || esURL == "" {
		return fmt.Errorf("%s and %s must be set (scripts/services.sh start pg es; . .services/env)", testkit.EnvPostgresDSN, testkit.EnvElasticURL)
	}
	res := &results{Rows: o.rows, Started: time.Now().UTC()}
	search := testkit.NewSearch(esURL)
	o.search = search
	deleteIndexes := func() {
		for _, tb := range testkit.ShopTables {
			_ = search.DeleteIndex(context.Background(), sourceName+"."+tb.Name)
			_ = search.DeleteIndex(context.Background(), bulkPrefix+tb.Name)
		}
	}

	step("preparing database %s (~%d rows)", benchDB, o.rows)
	if err := dropDatabase(ctx, base, benchDB); err != nil {
		return err
	}
	if err := execAdmin(ctx, base, "CREATE DATABASE "+benchDB); err != nil {
		return err
	}
	var p *process
	defer func() {
		step("cleaning up: tidegate, slots, database %s, indexes", benchDB)
		if perr := p.stop(); perr != nil {
			fmt.Fprintln(os.Stderr, "stopping tidegate:", perr)
		}
		if derr := dropDatabase(context.Background(), base, benchDB); derr != nil && err == nil {
			err = derr
		}
		deleteIndexes()
	}()
	deleteIndexes()
	dsn := testkit.DSNWithDatabase(base, benchDB)
	conn, err := testkit.ConnectSession(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	t0 := time.Now()
	if err := testkit.LoadShop(ctx, conn, o.rows); err != nil {
		return err
	}
	var total, items int64
	for _, tb := range testkit.ShopTables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tb.Name).Scan(&n); err != nil {
			return err
		}
		total += n
		if tb.Name == "public.order_items" {
			items = n
		}
	}
	res.TotalRows, res.OrderItems = total, items
	fmt.Printf("    loaded %d rows (%d order items) in %s\n", total, items, time.Since(t0).Round(time.Millisecond))

	if o.latencyOnly > 0 {
		return latencyOnly(ctx, o, conn, dsn, esURL, total, res)
	}

	// Limits first, on an idle machine and an empty cluster.
	step("limit: COPY of every table to io.Discard")
	copyCPU := newPGCPU()
	copied, copyTime, err := copyLimit(ctx, conn)
	if err != nil {
		return err
	}
	copyCPU.sample()
	if copied != total {
		return fmt.Errorf("COPY returned %d rows, expected %d", copied, total)
	}
	copyRate := float64(copied) / copyTime.Seconds()
	fmt.Printf("    %d rows in %s: %.0f rows/s; PostgreSQL CPU %.2f s\n", copied, copyTime.Round(time.Millisecond), copyRate, copyCPU.seconds())

	step("rendering the bulk loader's documents (pre-rendered NDJSON, %d MiB / %d actions per request)", bulkMaxBytes>>20, bulkMaxActions)
	bodies, docs, err := renderBulk(ctx, conn, bulkPrefix)
	if err != nil {
		return err
	}

	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	if err := busOnly(ctx, o, conn, dsn, res, copyRate); err != nil {
		return err
	}
	if o.busOnly {
		return res.print()
	}

	cfgPath, logPath := filepath.Join(o.dir, "tidegate.yaml"), filepath.Join(o.dir, "tidegate.log")
	if err := writeConfig(cfgPath, o, dsn, esURL); err != nil {
		return err
	}
	// The loader (the limit) and tidegate take turns, each run into fresh
	// indexes, so that both meet the cluster in the same state: run before
	// everything else, on a cluster that had indexed nothing yet, the
	// loader took 10.4 s where tidegate's runs after it made Elasticsearch
	// spend 7 % more CPU per document than in a run on a fresh cluster.
	// Best of two runs each: a cluster just started is still compiling its
	// hot paths. When the two best runs of either differ by more than 10 %
	// the machine was disturbed (seen: 22.2 s then 14.3 s), so both run
	// again, up to 4 times.
	var best snapshotRun
	var indexed []time.Duration
	var bulkTime time.Duration
	var loaderES *procCPU
	var took []time.Duration
	for run := 1; run <= 4 && (run <= 2 || !agree(indexed, 0.10) || !agree(took, 0.10)); run++ {
		if run > 1 {
			// A new pipeline (the last run's goes on to the streaming
			// scenarios), and none running while the loader runs.
			if err := p.stop(); err != nil {
				return fmt.Errorf("stopping tidegate: %w", err)
			}
			if err := execSQL(ctx, conn, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'tidegate_bench_search%'`); err != nil {
				return err
			}
			for _, tb := range testkit.ShopTables {
				_ = search.DeleteIndex(ctx, sourceName+"."+tb.Name)
			}
			if err := os.RemoveAll(filepath.Join(o.dir, "data")); err != nil {
				return err
			}
		}
		step("limit: minimal bulk loader (run %d; concurrency %d)", run, bulkConcurrency)
		for _, tb := range testkit.ShopTables {
			_ = search.DeleteIndex(ctx, bulkPrefix+tb.Name)
			if err := createIndex(ctx, esURL, bulkPrefix+tb.Name); err != nil {
				return err
			}
		}
		cpu := newESCPU()
		t, err := bulkLimit(ctx, esURL, bodies)
		if err != nil {
			return err
		}
		cpu.sample()
		fmt.Printf("    %d documents in %s; Elasticsearch CPU %.1f s\n", docs, t.Round(time.Millisecond), cpu.seconds())
		took = append(took, t)
		if bulkTime == 0 || t < bulkTime {
			bulkTime, loaderES = t, cpu
		}
		for _, tb := range testkit.ShopTables {
			_ = search.DeleteIndex(ctx, bulkPrefix+tb.Name)
		}
		step("tidegate: initial snapshot (run %d)", run)
		var r snapshotRun
		if p, r, err = snapshot(ctx, o, total, cfgPath, logPath); err != nil {
			return err
		}
		fmt.Printf("    bus after %s, indexed after %s, peak RSS %.1f MiB; CPU used meanwhile: tidegate %.1f s, PostgreSQL %.1f s, Elasticsearch %.1f s (bulk loader run just before: Elasticsearch %.1f s); bulk requests in flight %.2f on average\n",
			r.bus.Round(time.Millisecond), r.indexed.Round(time.Millisecond), mib(r.hwm), r.tidegateCPU, r.pgCPU, r.esCPU, cpu.seconds(), r.inFlight)
		res.HWMSnapshot = max(res.HWMSnapshot, r.hwm)
		indexed = append(indexed, r.indexed)
		if best.indexed == 0 || r.indexed < best.indexed {
			best = r
		}
	}
	bodies = nil
	bulkRate := float64(docs) / bulkTime.Seconds()
	snapCPU := fmt.Sprintf("CPU used meanwhile: tidegate %.1f s, PostgreSQL %.1f s, Elasticsearch %.1f s (bulk loader run: Elasticsearch %.1f s); bulk requests in flight %.2f on average",
		best.tidegateCPU, best.pgCPU, best.esCPU, loaderES.seconds(), best.inFlight)
	res.add("snapshot PostgreSQL → bus, sink running", "rows/s", float64(total)/best.bus.Seconds(), "COPY (SELECT *) TO STDOUT → io.Discard", copyRate,
		fmt.Sprintf("%d rows; tidegate start until snapshot_progress_ratio=1 in %s while the sink indexes; COPY in %s", total, best.bus.Round(time.Millisecond), copyTime.Round(time.Millisecond)))
	res.add("snapshot PostgreSQL → Elasticsearch", "rows/s", float64(total)/best.indexed.Seconds(), "minimal bulk loader, pre-rendered NDJSON", bulkRate,
		fmt.Sprintf("best of %d runs, each from tidegate start (new slot, empty bus and indexes) until sink counter ≥ %d: %s; bulk loader in %s (best of %d runs); %s", len(indexed), total, best.indexed.Round(time.Millisecond), bulkTime.Round(time.Millisecond), len(took), snapCPU))

	if err := bigTransaction(ctx, o, p, conn, dsn, res, bulkRate); err != nil {
		return err
	}
	if err := autocommit(ctx, o, p, dsn, conn, res); err != nil {
		return err
	}
	if err := latencies(ctx, o, p, conn, dsn, res); err != nil {
		return err
	}
	if err := startup(ctx, o, &p, conn, cfgPath, logPath, res); err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return fmt.Errorf("stopping tidegate: %w", err)
	}
	res.add("memory: peak RSS (VmHWM), snapshot", "MiB", mib(res.HWMSnapshot), "target 256 MiB", 256, "")
	res.add("memory: peak RSS (VmHWM), big transaction", "MiB", mib(res.HWMTx), "target 256 MiB", 256, "VmHWM reset via /proc/<pid>/clear_refs before the UPDATE")
	if err := wideTable(ctx, o, conn, dsn, esURL, res); err != nil {
		return err
	}
	res.Finished = time.Now().UTC()
	return res.report(o)
}

// latencyOnly snapshots once, then runs the latency scenario
// o.latencyOnly times per rate, printing each run and the medians (for
// work on the tail: one run says little on this machine).
func latencyOnly(ctx context.Context, o options, conn *pgx.Conn, dsn, esURL string, total int64, res *results) error {
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	cfgPath, logPath := filepath.Join(o.dir, "tidegate.yaml"), filepath.Join(o.dir, "tidegate.log")
	if err := writeConfig(cfgPath, o, dsn, esURL); err != nil {
		return err
	}
	step("tidegate: initial snapshot")
	p, r, err := snapshot(ctx, o, total, cfgPath, logPath)
	if err != nil {
		return err
	}
	defer p.stop()
	fmt.Printf("    bus after %s, indexed after %s, peak RSS %.1f MiB; CPU used meanwhile: tidegate %.1f s, PostgreSQL %.1f s, Elasticsearch %.1f s\n",
		r.bus.Round(time.Millisecond), r.indexed.Round(time.Millisecond), mib(r.hwm), r.tidegateCPU, r.pgCPU, r.esCPU)
	o.latencyRuns = o.latencyOnly
	if err := latencies(ctx, o, p, conn, dsn, res); err != nil {
		return err
	}
	return res.print()
}

// latencies runs the latency scenario at each of o.rates (o.latencyRuns
// times), each run beside the minimal relay (relay.go) at the same rate.
func latencies(ctx context.Context, o options, p *process, conn *pgx.Conn, dsn string, res *results) (err error) {
	var rates []int
	var most int64
	for _, r := range strings.Split(o.rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate <= 0 {
			return fmt.Errorf("-rates %q: %q is not a positive number", o.rates, r)
		}
		rates = append(rates, rate)
		most = max(most, latencyUpdates(o, rate, res.OrderItems))
	}
	if err := prepareRelay(ctx, conn, most/2+1); err != nil {
		return err
	}
	rl, err := startRelay(ctx, o, conn, dsn)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rl.close(); err == nil {
			err = cerr
		}
		_ = o.search.DeleteIndex(context.Background(), relayIndex)
	}()
	for _, rate := range rates {
		if err := latency(ctx, o, rate, p, rl, dsn, res); err != nil {
			return err
		}
	}
	return nil
}

func writeConfig(path string, o options, dsn, esURL string) error {
	cfg := testkit.ShopConfig("Written by make bench (scripts/bench).", o.dir, o.adminAddr, sourceName, "bench-search", dsn, esURL)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func execAdmin(ctx context.Context, base string, sql ...string) error {
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	for _, s := range sql {
		if _, err := admin.Exec(ctx, s); err != nil {
			return fmt.Errorf("executing %q: %w", s, err)
		}
	}
	return nil
}

// dropDatabase drops the database and its replication slots, as
// testkit.DropDatabase does (which needs a testing.TB).
func dropDatabase(ctx context.Context, base, name string) error {
	return execAdmin(ctx, base,
		`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '`+name+`' AND active_pid IS NOT NULL`,
		`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '`+name+`'`,
		`DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// snapshotRun is what one initial snapshot into Elasticsearch measured.
type snapshotRun struct {
	bus, indexed              time.Duration // from start: every row in the bus; every row indexed
	tidegateCPU, pgCPU, esCPU float64       // seconds meanwhile
	inFlight                  float64       // bulk requests in flight on average
	hwm                       int64         // peak RSS, bytes
}

// snapshot starts tidegate on a new pipeline and waits until all total
// rows are indexed. The process keeps running.
func snapshot(ctx context.Context, o options, total int64, cfgPath, logPath string) (*process, snapshotRun, error) {
	var r snapshotRun
	snapPG, snapJava := newPGCPU(), newESCPU()
	started := time.Now()
	p, err := startTidegate(o.bin, cfgPath, logPath, o.adminAddr)
	if err != nil {
		return nil, r, err
	}
	pid := p.cmd.Process.Pid
	var sampled int64
	sample := func() { sampled = max(sampled, procStatus(pid, "VmRSS")) }
	err = p.waitFor(ctx, "snapshot_progress_ratio = 1", o.waitTimeout, 20*time.Millisecond, func() (bool, string) {
		sample()
		snapPG.sample()
		v, err := p.m.get("tidegate_snapshot_progress_ratio")
		return err == nil && v >= 1, fmt.Sprintf("ratio %.3f, err %v; see %s", v, err, logPath)
	})
	if err != nil {
		return p, r, err
	}
	r.bus = time.Since(started)
	if err := p.waitSink(ctx, float64(total), o.waitTimeout); err != nil {
		return p, r, err
	}
	r.indexed = time.Since(started)
	sample()
	snapPG.sample()
	snapJava.sample()
	// Bulk requests in flight on average: the loader keeps
	// bulkConcurrency there all the time.
	bulkBusy, _ := p.m.get("tidegate_sink_bulk_duration_seconds_sum")
	r.tidegateCPU, r.pgCPU, r.esCPU = cpuSeconds(pid), snapPG.seconds(), snapJava.seconds()
	r.inFlight = bulkBusy / r.indexed.Seconds()
	r.hwm = max(procStatus(pid, "VmHWM"), sampled)
	return p, r, nil
}

// agree reports whether the two shortest durations are within tolerance
// of each other (relative to the shorter).
func agree(ds []time.Duration, tolerance float64) bool {
	if len(ds) < 2 {
		return false
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[1]-s[0]) <= tolerance*float64(s[0])
}
