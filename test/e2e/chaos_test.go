package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidegate/tidegate/internal/testkit"
)

// Chaos convergence (issue 3, scenario 8). While a randomized workload runs
// (multi-row transactions, the same row updated twice, deletes and
// re-inserts, TOAST-sized values changed or left unchanged, long
// transactions spanning checkpoints, some rolled back), tidegate is killed
// with SIGKILL at random moments — during the snapshot, while streaming,
// while Elasticsearch is down — and Elasticsearch itself is killed or
// stopped and restarted. At the end every table equals its index and
// nothing is in the dead-letter queue.
//
// The run is deterministic in its choices for a seed (not in its timing):
//
//	TIDEGATE_CHAOS_SEED=123 go test ./test/e2e -run TestChaosConvergence -v
//
// TIDEGATE_CHAOS_KILLS (default 20) and TIDEGATE_CHAOS_ES_RESTARTS (default
// 2) size the run; `make soak` runs a long one.
func TestChaosConvergence(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TIDEGATE_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TIDEGATE_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	kills := envInt(t, "TIDEGATE_CHAOS_KILLS", 20)
	esRestarts := envInt(t, "TIDEGATE_CHAOS_ES_RESTARTS", 2)
	t.Logf("chaos seed %d (replay: TIDEGATE_CHAOS_SEED=%d), %d kills, %d Elasticsearch restarts", seed, seed, kills, esRestarts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos seed was %d: replay with TIDEGATE_CHAOS_SEED=%d", seed, seed)
		}
	})
	rnd := rand.New(rand.NewPCG(seed, 1))

	node := testkit.StartESNode(t)
	e := newEnv(t, node.URL())
	ctx := context.Background()
	testkit.Exec(t, e.conn, toastE2ESchema)
	e.tables = append(e.tables, toastTables...)
	for _, tb := range toastTables {
		// Out of line without compression: values of a few kB are TOASTed
		// (as large ones are) while keeping the run's volume modest.
		testkit.Exec(t, e.conn, `ALTER TABLE `+tb+` ALTER COLUMN body SET STORAGE EXTERNAL, ALTER COLUMN doc SET STORAGE EXTERNAL`,
			`INSERT INTO `+tb+` SELECT i, 'first', 0, md5_chain('body' || i, 70 + i % 50 * 4), md5_doc('doc' || i, 70 + i % 40 * 3) FROM generate_series(1, 300) i`)
		var toasted bool
		if err := e.conn.QueryRow(ctx, `SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = $1::regclass`, tb).Scan(&toasted); err != nil || !toasted {
			t.Fatalf("%s: values not stored out of line (err %v): the run would not exercise TOAST", tb, err)
		}
	}
	// Enough rows that the first kills land in the snapshot.
	if err := testkit.LoadShop(ctx, e.conn, 30000); err != nil {
		t.Fatal(err)
	}

	// Elasticsearch restarts happen at random kill rounds.
	restartAt := map[int]bool{}
	for len(restartAt) < min(esRestarts, kills) {
		restartAt[1+rnd.IntN(kills)] = true
	}

	w := startChaosWriters(t, e, seed)
	p := e.start()
	for i := 1; i <= kills; i++ {
		// Every third round waits for tidegate to write something, so that
		// kills do not all land during start-up.
		if i%3 == 0 {
			e.waitMetric(p, convergeTimeout, 1, "tidegate_events_total", `stage="sink:search"`)
		}
		time.Sleep(time.Duration(200+rnd.IntN(2800)) * time.Millisecond) // a random moment
		if p.exited() {
			p.dumpLog()
			t.Fatalf("round %d: tidegate exited by itself", i)
		}
		if restartAt[i] {
			// Elasticsearch goes down (crash or clean stop), tidegate is
			// killed while it is down, and both come back.
			if rnd.IntN(2) == 0 {
				node.Kill()
			} else {
				node.Stop()
			}
			time.Sleep(time.Duration(500+rnd.IntN(3000)) * time.Millisecond) // tidegate runs against a dead sink
			p.kill9()
			p = e.start()
			node.Start()
			t.Logf("round %d: Elasticsearch restarted, tidegate killed while it was down", i)
			continue
		}
		p.kill9()
		if rnd.IntN(3) == 0 {
			time.Sleep(time.Duration(rnd.IntN(1500)) * time.Millisecond) // down for a while: changes pile up in the WAL
		}
		p = e.start()
	}
	stats := w.stop()
	t.Logf("workload: %d transactions committed, %d long ones (%d rolled back), %d checkpoints, %d retried after a lock conflict",
		stats.committed, stats.long, stats.rolledBack, stats.checkpoints, stats.conflicts)

	e.waitConverged(convergeTimeout)
	for _, tb := range toastTables {
		d, err := testkit.WaitConverged(ctx, e.conn, tb, []string{"id"}, e.search, e.index(tb), convergeTimeout)
		if err != nil {
			t.Fatalf("comparing %s: %v", tb, err)
		}
		if !d.Empty() {
			e.dumpMetrics()
			t.Fatalf("%s not converged:\n%s", tb, d)
		}
		t.Logf("verified: %s %d rows = %d documents", tb, d.Rows, d.Docs)
	}
	// Nothing was rejected: replays after the kills were recognized as
	// such (versions), not turned into errors.
	if l := e.dlqList(p); l.Total != 0 {
		t.Fatalf("%d dead letters after the chaos run, want none: %+v", l.Total, l.DeadLetters)
	}
	p.stop()
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return v
}

type chaosStats struct {
	committed, long, rolledBack, checkpoints, conflicts int
}

// chaosWriters are two writers on their own connections: one commits short
// random transactions (shop workload and TOAST-table changes), the other
// runs long transactions that span checkpoints and sometimes roll back.
type chaosWriters struct {
	t     *testing.T
	quit  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
	stats chaosStats
}

func startChaosWriters(t *testing.T, e *env, seed uint64) *chaosWriters {
	w := &chaosWriters{t: t, quit: make(chan struct{})}
	short, long, admin := testkit.Connect(t, e.dsn), testkit.Connect(t, e.dsn), testkit.Connect(t, e.dsn)
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		w.loop(short, seed, 5*time.Millisecond, func(ctx context.Context, rnd *rand.Rand, wl *testkit.Workload) error {
			return pgx.BeginFunc(ctx, short, func(tx pgx.Tx) error {
				if rnd.IntN(10) < 7 {
					return workloadOps(ctx, tx, rnd, wl)
				}
				for range 1 + rnd.IntN(3) {
					if err := toastOp(ctx, tx, rnd); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}()
	go func() {
		defer w.wg.Done()
		w.loop(long, seed+1, 200*time.Millisecond, func(ctx context.Context, rnd *rand.Rand, wl *testkit.Workload) error {
			return w.longTx(ctx, long, admin, rnd, wl)
		})
	}()
	t.Cleanup(w.halt)
	return w
}

// loop runs step every interval until quit; lock conflicts between the two
// writers (deadlocks, serialization) are retried, other errors end it.
func (w *chaosWriters) loop(conn *pgx.Conn, seed uint64, interval time.Duration, step func(context.Context, *rand.Rand, *testkit.Workload) error) {
	rnd := rand.New(rand.NewPCG(seed, 2))
	wl := testkit.NewWorkload(seed)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		err := step(context.Background(), rnd, wl)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			w.count(func(s *chaosStats) { s.committed++ })
		case errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001"):
			w.count(func(s *chaosStats) { s.conflicts++ })
		default:
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
	}
}

func (w *chaosWriters) count(f func(*chaosStats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// longTx makes changes over a few seconds with checkpoints in between, then
// commits, or rolls back one time in four.
func (w *chaosWriters) longTx(ctx context.Context, conn, admin *pgx.Conn, rnd *rand.Rand, wl *testkit.Workload) error {
	rollback := rnd.IntN(4) == 0
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for range 3 + rnd.IntN(6) {
			if err := workloadOps(ctx, tx, rnd, wl); err != nil {
				return err
			}
			if err := toastOp(ctx, tx, rnd); err != nil {
				return err
			}
			if rnd.IntN(2) == 0 {
				if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
					return fmt.Errorf("CHECKPOINT: %w", err)
				}
				w.count(func(s *chaosStats) { s.checkpoints++ })
			}
			select {
			case <-w.quit:
				return nil
			case <-time.After(time.Duration(100+rnd.IntN(400)) * time.Millisecond): // the transaction stays open
			}
		}
		if rollback {
			return errRollback
		}
		return nil
	})
	if errors.Is(err, errRollback) {
		w.count(func(s *chaosStats) { s.long++; s.rolledBack++ })
		return nil
	}
	if err == nil {
		w.count(func(s *chaosStats) { s.long++ })
	}
	return err
}

var errRollback = errors.New("rolled back on purpose")

// workloadOps makes 1 (most often) to 21 shop changes.
func workloadOps(ctx context.Context, tx pgx.Tx, rnd *rand.Rand, wl *testkit.Workload) error {
	n := 1
	if rnd.IntN(4) == 0 {
		n = 2 + rnd.IntN(20)
	}
	for range n {
		if err := wl.Op(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// toastOp changes a row of a TOAST table: a small column only (the large
// values stay unchanged and out of the change), the large values, a delete,
// or an insert (or re-insert) with large values.
func toastOp(ctx context.Context, tx pgx.Tx, rnd *rand.Rand) error {
	tb := toastTables[rnd.IntN(len(toastTables))]
	id := 1 + rnd.IntN(400)
	var sql string
	var args []any
	switch r := rnd.IntN(10); {
	case r < 5:
		sql = `UPDATE ` + tb + ` SET title = $2, n = n + 1 WHERE id = $1`
		args = []any{id, fmt.Sprint("t", rnd.IntN(1000))}
	case r < 7:
		sql = `UPDATE ` + tb + ` SET body = md5_chain($2, $3) WHERE id = $1`
		args = []any{id, fmt.Sprint("b", rnd.Uint64()), 70 + rnd.IntN(250)}
	case r < 8:
		sql = `DELETE FROM ` + tb + ` WHERE id = $1`
		args = []any{id}
	default:
		sql = `INSERT INTO ` + tb + ` VALUES ($1, 'ins', 0, md5_chain($2, $3), md5_doc($2, $4))
			ON CONFLICT (id) DO UPDATE SET title = 'reins', doc = excluded.doc`
		seedText := fmt.Sprint("i", rnd.Uint64())
		args = []any{id, seedText, 70 + rnd.IntN(250), 70 + rnd.IntN(150)}
	}
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

func (w *chaosWriters) halt() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.wg.Wait()
}

// stop stops both writers and fails the test if one failed.
func (w *chaosWriters) stop() chaosStats {
	w.t.Helper()
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.t.Fatalf("chaos workload: %v", w.err)
	}
	return w.stats
}
