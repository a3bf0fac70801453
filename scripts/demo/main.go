// Command demo is what `make demo` runs: it loads a sample shop database
// into PostgreSQL, runs tidegate into Elasticsearch (snapshot, then live
// changes), measures it, and ends by comparing every table with its index.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/internal/testkit"
)

func main() {
	rows := flag.Int("rows", 250000, "rows to load in total")
	live := flag.Duration("live", 20*time.Second, "how long to generate live changes")
	bin := flag.String("bin", "bin/tidegate", "tidegate binary")
	dir := flag.String("dir", ".services/demo", "working directory for the demo's config and data")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rows, *live, *bin, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(ctx context.Context, rows int, live time.Duration, bin, dir string) error {
	base := os.Getenv(testkit.EnvPostgresDSN)
	esURL := os.Getenv(testkit.EnvElasticURL)
	if base == "" || esURL == "" {
		return fmt.Errorf("%s and %s must be set (run scripts/services.sh start pg es; . .services/env)", testkit.EnvPostgresDSN, testkit.EnvElasticURL)
	}
	const db = "tidegate_demo"
	step("preparing database %s with the shop schema (~%d rows)", db, rows)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	for _, s := range []string{
		`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '` + db + `'`,
		`DROP DATABASE IF EXISTS ` + db + ` WITH (FORCE)`,
		`CREATE DATABASE ` + db,
	} {
		if _, err := admin.Exec(ctx, s); err != nil {
			return err
		}
	}
	admin.Close(ctx)
	dsn := testkit.DSNWithDatabase(base, db)
	conn, err := testkit.ConnectSession(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	loadStart := time.Now()
	if err := testkit.LoadShop(ctx, conn, rows); err != nil {
		return err
	}
	total := 0
	for _, tb := range testkit.ShopTables {
		var n int
		_ = conn.QueryRow(ctx, "SELECT count(*) FROM "+tb.Name).Scan(&n)
		fmt.Printf("    %-20s %8d rows\n", tb.Name, n)
		total += n
	}
	fmt.Printf("    loaded %d rows in %s\n", total, time.Since(loadStart).Round(time.Millisecond))

	search := testkit.NewSearch(esURL)
	for _, tb := range testkit.ShopTables {
		_ = search.DeleteIndex(ctx, "shop."+tb.Name)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	adminAddr := "127.0.0.1:7079"
	cfgPath := filepath.Join(dir, "tidegate.yaml")
	cfg := testkit.ShopConfig("Written by make demo.", dir, adminAddr, "shop", "shop-search", dsn, esURL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Printf("    configuration: %s\n", cfgPath)

	step("checking the setup: %s validate -c %s", bin, cfgPath)
	v := exec.CommandContext(ctx, bin, "validate", "-c", cfgPath)
	v.Stdout, v.Stderr = os.Stdout, os.Stderr
	if err := v.Run(); err != nil {
		return fmt.Errorf("validate: %w", err)
	}

	step("running tidegate: snapshot, then streaming (log: %s/tidegate.log)", dir)
	logf, err := os.Create(filepath.Join(dir, "tidegate.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = logf, io.MultiWriter(logf, pw)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	go showProgress(pr)
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	}()
	m := &metrics{addr: adminAddr}
	var peakRSS int64
	snapDone := false
	for !snapDone {
		select {
		case err := <-exited:
			return fmt.Errorf("tidegate exited during the snapshot: %v (see %s/tidegate.log)", err, dir)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		peakRSS = max(peakRSS, rss(cmd.Process.Pid))
		if r, err := m.get("tidegate_snapshot_progress_ratio"); err == nil && r >= 1 {
			snapDone = true
		}
	}
	snapElapsed := time.Since(started)
	// Rows durable in the bus at the end of the snapshot; the index catches up now.
	if err := waitSinkEvents(ctx, m, float64(total), exited); err != nil {
		return err
	}
	snapToIndex := time.Since(started)
	fmt.Printf("    snapshot: %d rows read in %s (%.0f rows/s), all indexed after %s (%.0f rows/s end to end), peak RSS %.1f MiB\n",
		total, snapElapsed.Round(time.Millisecond), float64(total)/snapElapsed.Seconds(),
		snapToIndex.Round(time.Millisecond), float64(total)/snapToIndex.Seconds(), float64(peakRSS)/(1<<20))

	step("live changes for %s: inserts, updates, deletes, multi-row transactions", live)
	w := testkit.NewWorkload(uint64(time.Now().UnixNano()))
	liveEnd := time.Now().Add(live)
	txs := 0
	for time.Now().Before(liveEnd) {
		if err := w.Step(ctx, conn); err != nil {
			return err
		}
		txs++
		peakRSS = max(peakRSS, rss(cmd.Process.Pid))
	}
	fmt.Printf("    %d transactions, %d row changes\n", txs, w.Ops)

	step("streaming throughput: one transaction updating every order item")
	before, _ := m.get("tidegate_events_total", `stage="sink:search"`)
	var items int64
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM order_items").Scan(&items)
	burst := time.Now()
	if _, err := conn.Exec(ctx, "UPDATE order_items SET qty = qty + 1"); err != nil {
		return err
	}
	if err := waitSinkEvents(ctx, m, before+float64(items), exited); err != nil {
		return err
	}
	burstElapsed := time.Since(burst)
	fmt.Printf("    %d updates streamed and indexed in %s: %.0f events/s\n", items, burstElapsed.Round(time.Millisecond), float64(items)/burstElapsed.Seconds())
	peakRSS = max(peakRSS, rss(cmd.Process.Pid))

	step("verifying: every table against its index, row by row")
	failed := false
	for _, tb := range testkit.ShopTables {
		d, err := testkit.WaitConverged(ctx, conn, tb.Name, tb.Key, search, "shop."+tb.Name, 2*time.Minute)
		if err != nil {
			return err
		}
		if !d.Empty() {
			failed = true
			fmt.Printf("DIFFERENT: %s\n", d)
			continue
		}
		fmt.Printf("verified: %s %d rows = %d documents\n", tb.Name, d.Rows, d.Docs)
	}
	dlq, _ := m.get("tidegate_events_total", `stage="dlq:search"`)
	fmt.Printf("    dead letters: %.0f; peak RSS of tidegate: %.1f MiB\n", dlq, float64(peakRSS)/(1<<20))
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		return fmt.Errorf("tidegate did not stop cleanly: %v", err)
	}
	if failed || dlq > 0 {
		return fmt.Errorf("the index differs from the database")
	}
	fmt.Println("\ndemo complete: the indexes equal the tables. Try it yourself:", bin, "run -c", cfgPath)
	// The slot stays so that a restart resumes where it stopped; while
	// tidegate is stopped, PostgreSQL keeps every WAL segment written
	// since for it (scripts/services.sh caps that with
	// max_slot_wal_keep_size, a production server may not).
	fmt.Printf("The pipeline keeps its replication slot, and PostgreSQL keeps WAL for it while tidegate is stopped.\n"+
		"When you are done with the demo: %s pipeline drop shop-search -c %s\n", bin, cfgPath)
	return nil
}

// showProgress prints tidegate's snapshot and warning lines as they come.
func showProgress(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "snapshot") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, "streaming") {
			fmt.Println("    tidegate:", l)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func waitSinkEvents(ctx context.Context, m *metrics, want float64, exited chan error) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		v, err := m.get("tidegate_events_total", `stage="sink:search"`)
		if err == nil && v >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %v events in the sink (have %v)", want, v)
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("tidegate exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type metrics struct{ addr string }

func (m *metrics) get(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + m.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return sum, nil
}

// rss returns the resident set size of a process in bytes.
func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
