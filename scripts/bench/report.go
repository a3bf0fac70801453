package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// results is everything one bench run measured; bench.json holds it.
type results struct {
	Rows        int       `json:"rows_requested"`
	TotalRows   int64     `json:"rows_loaded"`
	OrderItems  int64     `json:"order_items"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Machine     machine   `json:"machine"`
	Build       build     `json:"build"`
	HWMSnapshot int64     `json:"peak_rss_snapshot_bytes"`
	HWMTx       int64     `json:"peak_rss_big_transaction_bytes"`
	HWMWide     int64     `json:"peak_rss_wide_table_bytes"`
	Figures     []figure  `json:"figures"`
}

// figure is one tidegate figure beside the limit measured in the same run.
type figure struct {
	Scenario string  `json:"scenario"`
	Unit     string  `json:"unit"`
	Tidegate float64 `json:"tidegate"`
	Limit    string  `json:"limit,omitempty"`
	LimitVal float64 `json:"limit_value,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"` // tidegate / limit
	Note     string  `json:"note,omitempty"`
}

// build identifies what was measured.
type build struct {
	Commit       string `json:"commit"` // git HEAD, "+dirty" with uncommitted changes
	BinarySHA256 string `json:"binary_sha256"`
	BinaryBytes  int64  `json:"binary_bytes"`
}

func readBuild(bin string) build {
	var b build
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		b.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			b.Commit += "+dirty"
		}
	}
	if data, err := os.ReadFile(bin); err == nil {
		sum := sha256.Sum256(data)
		b.BinarySHA256 = hex.EncodeToString(sum[:])
		b.BinaryBytes = int64(len(data))
	}
	return b
}

type machine struct {
	CPUs     int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

func (r *results) add(scenario, unit string, tidegate float64, limit string, limitVal float64, note string) {
	f := figure{Scenario: scenario, Unit: unit, Tidegate: tidegate, Limit: limit, LimitVal: limitVal, Note: note}
	if limitVal > 0 {
		f.Ratio = tidegate / limitVal
	}
	r.Figures = append(r.Figures, f)
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

func (f figure) cells() (tg, lim, ratio string) {
	tg = num(f.Tidegate) + " " + f.Unit
	lim, ratio = "—", "—"
	if f.Limit != "" {
		lim = num(f.LimitVal) + " " + f.Unit + " (" + f.Limit + ")"
	}
	if f.Ratio > 0 {
		ratio = fmt.Sprintf("%.2f", f.Ratio)
	}
	return
}

// print writes the figures as a table to standard output.
func (r *results) print() error {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\ttidegate\tlimit (same run)\ttidegate/limit")
	for _, f := range r.Figures {
		tg, lim, ratio := f.cells()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Scenario, tg, lim, ratio)
	}
	return tw.Flush()
}

func (r *results) report(o options) error {
	r.Machine = readMachine()
	r.Build = readBuild(o.bin)
	if err := r.print(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.results), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.results, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println("\nresults:", o.results)
	if o.doc == "" {
		return nil
	}
	if err := os.WriteFile(o.doc, []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	fmt.Println("regenerated:", o.doc)
	return nil
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if out, err := exec.Command("nproc").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			m.CPUs = n
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	return m
}

func (r *results) markdown() string {
	var b strings.Builder
	b.WriteString(`# Performance

This page is regenerated by ` + "`make bench`" + ` (` + "`scripts/bench.sh`" + `, program
` + "`scripts/bench`" + `). Every tidegate figure stands beside a limit measured in the
same run on the same machine, so the ratio says how much of the available
throughput tidegate uses, not how fast the machine is. Raw results of the
latest run: ` + "`bench-results/bench.json`" + ` (not committed).

## Latest run

`)
	fmt.Fprintf(&b, "- date: %s (%.0f s)\n", r.Finished.Format("2006-01-02 15:04 UTC"), r.Finished.Sub(r.Started).Seconds())
	fmt.Fprintf(&b, "- build: commit %s, binary %.1f MiB, sha256 %.12s…\n", r.Build.Commit, float64(r.Build.BinaryBytes)/(1<<20), r.Build.BinarySHA256)
	fmt.Fprintf(&b, "- machine: %d CPUs (`nproc`), %s RAM, %s, %s, %s\n", r.Machine.CPUs, r.Machine.MemTotal, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.Go)
	fmt.Fprintf(&b, "- data: shop schema (`internal/testkit.LoadShop`), %d rows in 4 tables, of which %d order items\n", r.TotalRows, r.OrderItems)
	b.WriteString("- PostgreSQL 15 and Elasticsearch 8.19 on the same machine, started by `scripts/services.sh`\n\n")
	b.WriteString("| scenario | tidegate | limit measured in the same run | tidegate / limit |\n|---|---|---|---|\n")
	for _, f := range r.Figures {
		tg, lim, ratio := f.cells()
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Scenario, tg, lim, ratio)
	}
	if worst := r.worstRatio(); worst.Ratio > 0 {
		fmt.Fprintf(&b, "\nLowest throughput ratio in this run: **%s** (%.2f of its limit).\n", worst.Scenario+" vs "+worst.Limit, worst.Ratio)
	}
	if r.Machine.CPUs <= 4 {
		fmt.Fprintf(&b, "\nWith %d CPUs, PostgreSQL, Elasticsearch, tidegate and the load generator compete for the same cores. "+
			"The \"no sink\" figures isolate the source side (the sink is unreachable, so nothing indexes meanwhile); "+
			"the \"sink running\" snapshot figure shares the CPUs with indexing.\n", r.Machine.CPUs)
	}
	b.WriteString("\nDetails of each figure:\n\n")
	for _, f := range r.Figures {
		if f.Note != "" {
			fmt.Fprintf(&b, "- %s: %s\n", f.Scenario, f.Note)
		}
	}
	b.WriteString(methodology)
	return b.String()
}

const methodology = `
## Methodology

All services and tidegate run on one machine, so they compete for the same
CPUs; the limits run when tidegate is either not running (COPY, bulk
loader) or idle (pg_recvlogical drains a slot after tidegate has finished).
Each wait polls a condition (a metric at the admin address, or a process
exit) every 20 ms with a timeout; nothing waits for a fixed time. Throughput
figures come from one run (the snapshot and the bulk loader: best of two or
more), latency figures are medians of three runs: treat differences under
~10 % as noise.

- **Snapshot PostgreSQL → bus (no sink)**: tidegate runs with its sink pointed
  at an address where nothing listens, so the sink only retries to connect and
  every event stays in the bus; time from starting tidegate (empty data
  directory, new slot) until ` + "`tidegate_snapshot_progress_ratio`" + ` reaches 1, i.e.
  every row is durable in the embedded JetStream bus. The same measure is
  repeated in the run with the sink ("sink running"). Limit: ` + "`COPY (SELECT * FROM t) TO STDOUT`" + `
  of the same four tables, read with pgx ` + "`PgConn().CopyTo`" + ` into ` + "`io.Discard`" + `.
- **Snapshot PostgreSQL → Elasticsearch**: time from starting tidegate until
  ` + "`tidegate_events_total{stage=\"sink:search\"}`" + ` reaches the row count, best of
  two runs (each with a new slot, an empty bus and no index; up to four when
  the two best differ by more than 10 %), as for the limit: on this shared
  machine one run can be 10–30 % slower than the next for reasons outside
  both. Limit: a
  minimal bulk loader. The same rows are read with the same text decoding
  (pgdecode + ` + "`event.AppendRowJSON`" + `, document ids from ` + "`event.DocumentID`" + `),
  pre-rendered as NDJSON index actions with ` + "`_id`" + ` before the clock starts. The
  loader and tidegate take turns (loader, tidegate, loader, tidegate), each
  into fresh indexes with no tidegate running during the loader's run, so
  that both meet the cluster in the same state (a loader run on a cluster
  that has indexed nothing yet was the faster by ~7 % of Elasticsearch CPU
  per document); best of two runs each, so that a cluster still warming up
  does not lower the limit, and up to four when the two best of either
  differ by more than 10 %, a sign that something else used the machine. Split
  like the sink's defaults (5 MiB or 5000 actions per request) and POSTed to
  ` + "`/_bulk`" + ` two at a time (the sink's default concurrency) into separate indexes
  created with the same settings (` + "`refresh_interval: 1s`" + `, dynamic mapping). The
  loader's actions carry no ` + "`version`" + `/` + "`version_type: external_gte`" + `, which tidegate's
  actions do, and it reads nothing back from the bus: it is the ceiling, not
  a like-for-like pipeline.
- **Streaming → bus (no sink), one big transaction**: in the no-sink run,
  one ` + "`UPDATE order_items SET qty = qty + 1`" + `; time from its commit until the
  source counter (` + "`tidegate_events_total{stage=\"source\"}`" + `, counted when a
  batch is published) grew by the number of rows. Limit: ` + "`pg_recvlogical`" + ` as below,
  run after tidegate stopped.
- **Streaming, one big transaction**: one ` + "`UPDATE order_items SET qty = qty + 1`" + `;
  time from its commit until the sink counter grew by the number of rows.
  Limits: (a) ` + "`pg_recvlogical`" + ` with a ` + "`test_decoding`" + ` slot created just before the
  UPDATE, writing to ` + "`/dev/null`" + ` until ` + "`--endpos`" + ` = the WAL position after the commit
  (PostgreSQL decodes the transaction when the slot is read, so this is the
  server's logical decoding rate); (b) the bulk loader's rate above.
- **Streaming, autocommit**: single-row UPDATEs of distinct order items from
  4 concurrent connections; time from the first update until the sink counter
  grew by their number. Limit: the rate at which the load generator committed
  them, which tidegate cannot exceed, so the ratio says whether it kept up.
  (` + "`pg_recvlogical`" + `, as above, drains the same WAL afterwards ~20 times faster;
  it is in the details, not compared.)
- **End-to-end latency**: single-row updates paced at a fixed rate from 4
  connections; p50/p95/p99 computed from the deltas of the
  ` + "`tidegate_end_to_end_latency_seconds`" + ` histogram buckets over the run (summed over
  all series), interpolated linearly inside a bucket as Prometheus'
  ` + "`histogram_quantile`" + ` does, so their precision is the bucket layout's.
  Each rate starts once Elasticsearch runs no merge (` + "`_stats/merge`" + `, polled), so
  that the segments of the millions of writes before it are not merged
  during the measure. The details give where the time goes (the stages'
  histograms) and the CPU each process used. Limit: a **minimal relay**
  (` + "`scripts/bench/relay.go`" + `) run at the same rate just before, on its own
  copy of the updated rows (a table outside tidegate's publication, with its
  own publication, temporary slot and index). It does only what any relay
  must: it reads pgoutput, renders each row as tidegate does and POSTs index
  actions to ` + "`/_bulk`" + `, two requests at most in flight, what arrives
  meanwhile joining the next, a 5 ms linger when none is in flight. No bus,
  no versions, no dead letters, no positions kept. Its latencies are counted
  into tidegate's histogram buckets and read the same way, so the ratio says
  how much tidegate adds to what this machine gives any relay at that
  moment. Both slots stay connected during both runs, so PostgreSQL decodes
  the WAL twice in each. A tail on a shared machine moves a lot from run to
  run (p99 at 5,000/s from 70 to 450 ms for the same binary in one
  afternoon, the relay's from 25 to 110 ms), so each rate runs three times
  (` + "`-latency-runs`" + `): the table gives the medians of the runs' quantiles,
  the details every run. ` + "`go run ./scripts/bench -latency-only N`" + `
  snapshots once and runs only this scenario N times per rate, for
  comparing binaries (` + "`-bin`" + `) in interleaved runs.
- **Memory**: peak RSS (` + "`VmHWM`" + ` of ` + "`/proc/<pid>/status`" + `) of the tidegate process
  during the snapshot, then, after resetting the peak (` + "`echo 5 > /proc/<pid>/clear_refs`" + `),
  during the big transaction, and in a run of its own, during the snapshot
  of a table of 200 integer columns (100,000 rows): decoded, batches of
  small values take 20–35 times their encoded size, so this shape weighs
  most. Compared with a 256 MiB target.
- **Start-up**: size of ` + "`bin/tidegate`" + `; with the pipeline initialised, tidegate is
  stopped (SIGTERM), one row is updated, tidegate is started again and the
  time until the sink counter shows at least one event is measured.

- **CPU time** (in the details): user + system time of the tidegate process
  (` + "`/proc/<pid>/stat`" + `), of every ` + "`postgres`" + ` process and of Elasticsearch's
  (by its pid file, so an idle OpenSearch is not counted), sampled at each
  poll, over the scenario. Sums above the wall time times
  the CPUs say the machine was saturated; below it, something waited. The
  bench scrapes metrics without gzip so as not to add to tidegate's figure.

At the end the bench database, its replication slots and the bench indexes
are deleted. For performance work, ` + "`scripts/bench.sh -profile DIR`" + ` writes a CPU
profile of every tidegate run (the ` + "`TIDEGATE_CPUPROFILE`" + ` environment variable
of ` + "`tidegate run`" + `), and ` + "`-bus-only`" + ` stops after the no-sink scenarios.
`

// worstRatio returns the throughput figure furthest below its limit
// (memory figures, where lower is better, are left out).
func (r *results) worstRatio() figure {
	var w figure
	for _, f := range r.Figures {
		if f.Ratio > 0 && f.Unit != "MiB" && f.Unit != "ms" && (w.Ratio == 0 || f.Ratio < w.Ratio) {
			w = f
		}
	}
	return w
}

// renderDoc regenerates the performance document from a results file.
func renderDoc(resultsPath, doc string) error {
	data, err := os.ReadFile(resultsPath)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("decoding %s: %w", resultsPath, err)
	}
	return os.WriteFile(doc, []byte(r.markdown()), 0o644)
}
