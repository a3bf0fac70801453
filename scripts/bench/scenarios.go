package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/internal/testkit"
)

// bigTransaction: one UPDATE of every order item, from commit until the
// sink counter grew by that many; limit: pg_recvlogical of the same change.
func bigTransaction(ctx context.Context, o options, p *process, conn *pgx.Conn, dsn string, res *results, bulkRate float64) error {
	step("streaming: one transaction updating %d order items", res.OrderItems)
	if err := createDecodingSlot(ctx, conn, slotBig); err != nil {
		return err
	}
	defer dropSlot(context.Background(), conn, slotBig)
	before, err := p.m.sinkEvents()
	if err != nil {
		return err
	}
	pid := p.cmd.Process.Pid
	if err := resetHWM(pid); err != nil {
		fmt.Println("    cannot reset VmHWM, the peak includes the snapshot:", err)
	}
	tgCPU, pgCPU, esCPU := cpuSeconds(pid), newPGCPU(), newESCPU()
	tag, err := conn.Exec(ctx, "UPDATE order_items SET qty = qty + 1")
	if err != nil {
		return err
	}
	committed := time.Now()
	n := tag.RowsAffected()
	end, err := endLSN(ctx, conn)
	if err != nil {
		return err
	}
	var sampled int64
	err = p.waitFor(ctx, "the big transaction in the sink", o.waitTimeout, 20*time.Millisecond, func() (bool, string) {
		sampled = max(sampled, procStatus(pid, "VmRSS"))
		pgCPU.sample()
		esCPU.sample()
		v, err := p.m.sinkEvents()
		return err == nil && v >= before+float64(n), fmt.Sprintf("have %.0f of %.0f, err %v", v-before, float64(n), err)
	})
	if err != nil {
		return err
	}
	elapsed := time.Since(committed)
	// The UPDATE itself (its commit included) is counted in PostgreSQL's
	// CPU: it runs before the commit time the elapsed time starts from.
	cpu := fmt.Sprintf("CPU used meanwhile (the UPDATE included): tidegate %.1f s, PostgreSQL %.1f s, Elasticsearch %.1f s",
		cpuSeconds(pid)-tgCPU, pgCPU.seconds(), esCPU.seconds())
	res.HWMTx = max(procStatus(pid, "VmHWM"), sampled)
	recv, err := recvLogical(ctx, dsn, slotBig, end)
	if err != nil {
		return err
	}
	fmt.Printf("    tidegate %d events in %s (%s); pg_recvlogical in %s\n", n, elapsed.Round(time.Millisecond), cpu, recv.Round(time.Millisecond))
	rate := float64(n) / elapsed.Seconds()
	res.add("streaming, one big transaction → Elasticsearch", "events/s", rate, "pg_recvlogical (test_decoding) → /dev/null", float64(n)/recv.Seconds(),
		fmt.Sprintf("UPDATE of %d rows; commit until sink counter +%d in %s; pg_recvlogical to --endpos in %s; %s", n, n, elapsed.Round(time.Millisecond), recv.Round(time.Millisecond), cpu))
	res.add("streaming, one big transaction → Elasticsearch", "events/s", rate, "minimal bulk loader (from the snapshot run)", bulkRate, "")
	return nil
}

// autocommit: N single-row UPDATEs from 4 connections.
func autocommit(ctx context.Context, o options, p *process, dsn string, conn *pgx.Conn, res *results) error {
	n := min(int64(o.autocommit), res.OrderItems)
	const workers = 4
	step("streaming: %d single-row autocommit updates from %d connections", n, workers)
	if err := createDecodingSlot(ctx, conn, slotAuto); err != nil {
		return err
	}
	defer dropSlot(context.Background(), conn, slotAuto)
	before, err := p.m.sinkEvents()
	if err != nil {
		return err
	}
	start := time.Now()
	var next atomic.Int64
	err = updaters(ctx, dsn, "order_items", workers, func() (int64, bool) {
		g := next.Add(1)
		return g, g <= n
	}, nil)
	if err != nil {
		return err
	}
	issued := time.Since(start)
	end, err := endLSN(ctx, conn)
	if err != nil {
		return err
	}
	if err := p.waitSink(ctx, before+float64(n), o.waitTimeout); err != nil {
		return err
	}
	elapsed := time.Since(start)
	recv, err := recvLogical(ctx, dsn, slotAuto, end)
	if err != nil {
		return err
	}
	fmt.Printf("    issued in %s (%.0f/s), all in the sink after %s; pg_recvlogical in %s\n",
		issued.Round(time.Millisecond), float64(n)/issued.Seconds(), elapsed.Round(time.Millisecond), recv.Round(time.Millisecond))
	// The limit is the rate the load generator reached: 4 connections
	// committing one row at a time, which tidegate cannot outrun (its ratio
	// says whether it kept up). pg_recvlogical drains the same WAL ~20
	// times faster afterwards, which says nothing about tidegate here.
	res.add("streaming, autocommit (4 connections) → Elasticsearch", "events/s", float64(n)/elapsed.Seconds(), "updates committed by the load generator", float64(n)/issued.Seconds(),
		fmt.Sprintf("%d updates; first update until sink counter +%d in %s; the updates were committed in %s; pg_recvlogical (test_decoding) drained their WAL at %.0f/s afterwards", n, n, elapsed.Round(time.Millisecond), issued.Round(time.Millisecond), float64(n)/recv.Seconds()))
	return nil
}

// updaters runs workers connections, each updating the order item (of
// table: order_items or the relay's copy) with ordinal g (1-based, the
// order LoadShop inserts them in) until next says stop.
// Each update's round trip (the commit as the client sees it) is
// appended to rtts when it is not nil.
func updaters(ctx context.Context, dsn, table string, workers int, next func() (int64, bool), rtts *[]time.Duration) error {
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	for range workers {
		g.Go(func() error {
			var mine []time.Duration
			defer func() {
				if rtts != nil {
					mu.Lock()
					*rtts = append(*rtts, mine...)
					mu.Unlock()
				}
			}()
			c, err := testkit.ConnectSession(gctx, dsn)
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			for {
				i, ok := next()
				if !ok {
					return nil
				}
				sent := time.Now()
				if _, err := c.Exec(gctx, "UPDATE "+table+" SET qty = qty + 1 WHERE order_id = $1 AND line = $2", 1+(i-1)/2, 1+(i-1)%2); err != nil {
					return err
				}
				mine = append(mine, time.Since(sent))
			}
		})
	}
	return g.Wait()
}

// pacedUpdates issues total single-row updates of table at rate, from
// enough connections that the rate is reached (a round trip and a commit
// take ~0.5-1 ms each on this machine). It returns how long that took and
// each update's round trip.
func pacedUpdates(ctx context.Context, dsn, table string, rate int, total int64) (took time.Duration, rtts []time.Duration, err error) {
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var issued atomic.Int64
	err = updaters(ctx, dsn, table, max(4, rate/500), func() (int64, bool) {
		i := issued.Add(1)
		if i > total {
			return 0, false
		}
		if d := time.Until(start.Add(time.Duration(i-1) * interval)); d > 0 {
			time.Sleep(d)
		}
		return i, true
	}, &rtts)
	return time.Since(start), rtts, err
}

// latencyUpdates is how many updates a latency run at rate makes.
func latencyUpdates(o options, rate int, orderItems int64) int64 {
	return min(int64(rate)*int64(o.latencyFor/time.Second), orderItems)
}

// latency: single-row updates at a fixed rate, o.latencyRuns times;
// the medians of each run's quantiles, beside the minimal relay's.
func latency(ctx context.Context, o options, rate int, p *process, rl *relay, dsn string, res *results) error {
	var runs []latencyRun
	for i := range max(1, o.latencyRuns) {
		r, err := latencyOnce(ctx, o, rate, p, rl, dsn, res.OrderItems)
		if err != nil {
			return err
		}
		fmt.Printf("    run %d: tidegate p50 %.1f ms, p95 %.1f ms, p99 %.1f ms; minimal relay p99 %.1f ms\n", i+1, r.q[0]*1e3, r.q[1]*1e3, r.q[2]*1e3, r.relay[2]*1e3)
		runs = append(runs, r)
	}
	med := func(f func(latencyRun) float64) (float64, string) {
		var vs []float64
		var each []string
		for _, r := range runs {
			vs = append(vs, f(r)*1e3)
			each = append(each, num(f(r)*1e3))
		}
		return median(vs), strings.Join(each, ", ")
	}
	var notes []string
	for i, r := range runs {
		notes = append(notes, fmt.Sprintf("run %d: %s", i+1, r.note))
	}
	p99, each99 := med(func(r latencyRun) float64 { return r.q[2] })
	relay99, eachRelay := med(func(r latencyRun) float64 { return r.relay[2] })
	note := fmt.Sprintf("median of %d runs, p99 of each: %s ms (minimal relay: %s ms). %s", len(runs), each99, eachRelay, strings.Join(notes, " "))
	for i, label := range []string{"p50", "p95", "p99"} {
		v, _ := med(func(r latencyRun) float64 { return r.q[i] })
		limit, limitVal := "", 0.0
		if label == "p99" {
			limit, limitVal = "target 100 ms", 100
		}
		res.add(fmt.Sprintf("end-to-end latency %s at %d updates/s", label, rate), "ms", v, limit, limitVal, note)
		note = ""
	}
	res.add(fmt.Sprintf("end-to-end latency p99 at %d updates/s, beside a minimal relay", rate), "ms", p99,
		"minimal relay: pgoutput → _bulk, no bus, same rate, just before", relay99,
		"medians of the same runs; the relay's quantiles are read from the same buckets as tidegate's")
	// Part of the p99 that happens before tidegate receives anything: the
	// walsender's delay from commit to sending (its own timestamps).
	send, eachSend := med(func(r latencyRun) float64 { return r.sendDelay })
	_, eachRelaySend := med(func(r latencyRun) float64 { return r.relaySend })
	res.add(fmt.Sprintf("of which PostgreSQL's send delay, p99, at %d updates/s", rate), "ms", send, "", 0,
		fmt.Sprintf("median of %s ms (the minimal relay's runs: %s ms). ", eachSend, eachRelaySend)+
			"tidegate_source_server_delay_seconds: from the commit time to the send time PostgreSQL writes in each replication message, before tidegate receives anything. "+
			"Its tail here is the walsender waiting for a CPU (runnable, not running, in /proc/<pid>/schedstat) while the two cores are saturated, so it grows with the CPU every process uses at the time, tidegate's included")
	return nil
}

// latencyRun is one latency measure at a rate.
type latencyRun struct {
	q, relay  []float64 // p50, p95, p99 (seconds): tidegate's, the relay's (same buckets)
	sendDelay float64   // PostgreSQL's send delay p99 in tidegate's run (seconds)
	relaySend float64   // the same in the relay's run (exact)
	note      string
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// latencyOnce runs the updates through the minimal relay, then through
// tidegate, and reads tidegate's end-to-end latency histogram over its run.
func latencyOnce(ctx context.Context, o options, rate int, p *process, rl *relay, dsn string, orderItems int64) (latencyRun, error) {
	var run latencyRun
	total := latencyUpdates(o, rate, orderItems)
	step("latency: %d single-row updates at %d/s, through the minimal relay, then through tidegate", total, rate)
	waited, err := esQuiet(ctx, o.search, o.waitTimeout)
	if err != nil {
		return run, err
	}
	relayPG := newPGCPU()
	rr, err := rl.measure(ctx, o, dsn, rate, total)
	if err != nil {
		return run, err
	}
	relayPG.sample()
	fmt.Printf("    minimal relay: %s\n", rr.summary(relayPG.seconds()))
	fmt.Printf("    Elasticsearch quiet (no merge running) after %s\n", waited.Round(time.Millisecond))
	if waited, err = esQuiet(ctx, o.search, o.waitTimeout); err != nil {
		return run, err
	}
	const name = "tidegate_end_to_end_latency_seconds"
	hBefore, err := p.m.histogram(name)
	if err != nil {
		return run, err
	}
	// Where the time goes: the sink's batch writes and its bulk requests.
	parts := []string{"tidegate_source_server_delay_seconds", "tidegate_source_publish_latency_seconds", "tidegate_sink_dequeue_latency_seconds", "tidegate_sink_write_seconds", "tidegate_sink_bulk_duration_seconds"}
	partsBefore := make([]map[float64]float64, len(parts))
	for i, n := range parts {
		if partsBefore[i], err = p.m.histogram(n); err != nil {
			return run, err
		}
	}
	before, err := p.m.sinkEvents()
	if err != nil {
		return run, err
	}
	msgsBefore, _ := p.m.get("tidegate_bus_messages_total") // absent before the first
	gcBefore, gcTimeBefore, err := esYoungGC(ctx, o.search)
	if err != nil {
		return run, err
	}
	pid := p.cmd.Process.Pid
	tgCPU, pgCPU, esCPU := cpuSeconds(pid), newPGCPU(), newESCPU()
	took, rtts, err := pacedUpdates(ctx, dsn, "order_items", rate, total)
	if err != nil {
		return run, err
	}
	if err := p.waitSink(ctx, before+float64(total), o.waitTimeout); err != nil {
		return run, err
	}
	tgUsed := cpuSeconds(pid) - tgCPU
	pgCPU.sample()
	esCPU.sample()
	hAfter, err := p.m.histogram(name)
	if err != nil {
		return run, err
	}
	q, count := quantiles(hBefore, hAfter, 0.5, 0.95, 0.99)
	achieved := float64(total) / took.Seconds()
	run.q = q
	run.relay, _ = quantiles(nil, bucketed(rr.latencies, bounds(hAfter)), 0.5, 0.95, 0.99)
	run.relaySend = rr.sendDelayP99()
	var breakdown []string
	for i, n := range parts {
		after, err := p.m.histogram(n)
		if err != nil {
			return run, err
		}
		pq, pc := quantiles(partsBefore[i], after, 0.5, 0.99)
		if n == "tidegate_source_server_delay_seconds" {
			run.sendDelay = pq[1]
		}
		breakdown = append(breakdown, fmt.Sprintf("%s p50 %.1f ms, p99 %.1f ms (%.0f observations)", strings.TrimPrefix(n, "tidegate_"), pq[0]*1e3, pq[1]*1e3, pc))
	}
	// The database's own commit latency: the end-to-end figure starts at
	// the commit timestamp, before PostgreSQL has flushed the commit.
	if rtts := sorted(rtts); len(rtts) > 0 {
		breakdown = append(breakdown, fmt.Sprintf("UPDATE round trip at the load generator (commit included) p50 %.1f ms, p99 %.1f ms, max %.1f ms",
			exactQuantileMs(rtts, 0.5), exactQuantileMs(rtts, 0.99), exactQuantileMs(rtts, 1)))
	}
	if msgs, err := p.m.get("tidegate_bus_messages_total"); err == nil && msgs > msgsBefore {
		breakdown = append(breakdown, fmt.Sprintf("bus messages published %.0f (%.2f updates per message)", msgs-msgsBefore, float64(total)/(msgs-msgsBefore)))
	}
	breakdown = append(breakdown, fmt.Sprintf("CPU used: tidegate %.1f s (%.0f µs per update), PostgreSQL %.1f s, Elasticsearch %.1f s; tidegate RSS after the run %.0f MiB",
		tgUsed, tgUsed/float64(total)*1e6, pgCPU.seconds(), esCPU.seconds(), mib(procStatus(pid, "VmRSS"))))
	if gcAfter, gcTimeAfter, err := esYoungGC(ctx, o.search); err == nil && gcAfter > gcBefore {
		breakdown = append(breakdown, fmt.Sprintf("Elasticsearch young GC %d times, %.0f ms on average", gcAfter-gcBefore, ms(gcTimeAfter-gcTimeBefore)/float64(gcAfter-gcBefore)))
	}
	fmt.Printf("    %s\n", strings.Join(breakdown, "; "))
	fmt.Printf("    achieved %.0f updates/s; %0.f observations; p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", achieved, count, q[0]*1e3, q[1]*1e3, q[2]*1e3)
	run.note = fmt.Sprintf("tidegate p50 %.1f ms, p95 %.1f ms, p99 %.1f ms; %d updates at %.0f/s achieved (target %d/s), started once Elasticsearch ran no merge (waited %s); %.0f histogram observations; quantiles interpolated within buckets; %s. "+
		"Minimal relay just before: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms from the same buckets; %s.",
		q[0]*1e3, q[1]*1e3, q[2]*1e3, total, achieved, rate, waited.Round(time.Millisecond), count, strings.Join(breakdown, "; "),
		run.relay[0]*1e3, run.relay[1]*1e3, run.relay[2]*1e3, rr.summary(relayPG.seconds()))
	return run, nil
}

// startup: stop the initialised pipeline, make one change, start again
// and time until the sink counter shows it.
func startup(ctx context.Context, o options, pp **process, conn *pgx.Conn, cfgPath, logPath string, res *results) error {
	step("start-up: restart an initialised pipeline with one pending change")
	if err := (*pp).stop(); err != nil {
		return fmt.Errorf("stopping tidegate: %w", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE customers SET name = name || '.' WHERE id = 1"); err != nil {
		return err
	}
	started := time.Now()
	p, err := startTidegate(o.bin, cfgPath, logPath, o.adminAddr)
	if err != nil {
		return err
	}
	*pp = p
	if err := p.waitSink(ctx, 1, 5*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(started)
	fi, err := os.Stat(o.bin)
	if err != nil {
		return err
	}
	fmt.Printf("    first event in the sink %s after start; binary %.1f MiB\n", elapsed.Round(time.Millisecond), mib(fi.Size()))
	res.add("start-up: restart until first event in the sink", "ms", float64(elapsed.Microseconds())/1e3, "", 0, "pipeline already initialised, one change made while stopped")
	res.add("binary size", "MiB", mib(fi.Size()), "", 0, o.bin)
	return nil
}

// esQuiet waits until Elasticsearch runs no merge on any index, so that a
// latency run measures tidegate rather than the cluster merging the
// segments of the millions of writes of the scenarios before it. It
// returns how long it waited.
func esQuiet(ctx context.Context, es *testkit.Search, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		current, err := esMergesRunning(ctx, es)
		if err != nil {
			return 0, err
		}
		if current == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("Elasticsearch still runs %d merges after %s", current, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

// esMergesRunning is the number of merges running on all indexes.
func esMergesRunning(ctx context.Context, es *testkit.Search) (int, error) {
	var stats struct {
		All struct {
			Total struct {
				Merges struct {
					Current int `json:"current"`
				} `json:"merges"`
			} `json:"total"`
		} `json:"_all"`
	}
	if err := es.GetJSON(ctx, "/_stats/merge", &stats); err != nil {
		return 0, fmt.Errorf("reading merge statistics: %w", err)
	}
	return stats.All.Total.Merges.Current, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// esYoungGC returns Elasticsearch's young-generation collections so far
// and the time they took (its JVM stops indexing meanwhile).
func esYoungGC(ctx context.Context, es *testkit.Search) (count int, took time.Duration, err error) {
	var stats struct {
		Nodes map[string]struct {
			JVM struct {
				GC struct {
					Collectors struct {
						Young struct {
							Count  int   `json:"collection_count"`
							TimeMS int64 `json:"collection_time_in_millis"`
						} `json:"young"`
					} `json:"collectors"`
				} `json:"gc"`
			} `json:"jvm"`
		} `json:"nodes"`
	}
	if err := es.GetJSON(ctx, "/_nodes/_local/stats/jvm?filter_path=nodes.*.jvm.gc.collectors.young", &stats); err != nil {
		return 0, 0, fmt.Errorf("reading JVM statistics: %w", err)
	}
	for _, n := range stats.Nodes {
		count += n.JVM.GC.Collectors.Young.Count
		took += time.Duration(n.JVM.GC.Collectors.Young.TimeMS) * time.Millisecond
	}
	return count, took, nil
}
