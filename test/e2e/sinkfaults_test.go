package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/testkit"
)

// faultTimeout bounds convergence under injected faults (retries back off
// up to retry_max, 2 s in the e2e config).
const faultTimeout = 3 * time.Minute

// hotSchema is a table whose few rows are updated many times, in every
// transaction shape: a write applied out of order would leave an older n.
const hotSchema = `CREATE TABLE hot (id int PRIMARY KEY, n bigint NOT NULL, note text NOT NULL);
INSERT INTO hot SELECT g, 0, 'init' FROM generate_series(1, 20) g`

const hotRows = 20

// Sink faults (issue scenario 6): tidegate writes to the real Elasticsearch
// through an HTTP proxy that answers bulk items with 429 and 500 (retry),
// answers every item of chosen documents with a synthetic 400
// mapper_parsing_exception (dead-letter), resets connections before and
// after forwarding, and delays answers — during the snapshot and a
// streaming workload that updates the same rows many times.
//
// Proved: every document not chosen for the 400 equals its row (so
// retried items never let an older write win: the hot rows, updated 48
// times each, end at the database's last write); the dead-letter stream
// holds exactly the rejected (document, version) pairs, each with the
// cluster's error text, its attempt count and the original event, and for
// every rejected document the newest dead letter is the row's current
// state; nothing else went to the DLQ (no 429, 500 or reset did).
func TestSinkFaultsBulkItemsResetsDelays(t *testing.T) {
	esURL := testkit.ElasticURL(t)
	e := newEnv(t, esURL)
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 3000); err != nil {
		t.Fatal(err)
	}
	testkit.Exec(t, e.conn, hotSchema)
	e.tables = append(e.tables, "public.hot")

	// Documents whose every write the "cluster" rejects: two hot rows, three
	// customers, one order item (composite key). All exist at the snapshot.
	rejected := map[string][]string{
		"public.hot":         {"7", "13"},
		"public.customers":   {"50", "100", "150"},
		"public.order_items": {"[5,1]"},
	}
	poisoned := map[[2]string]bool{}
	for table, ids := range rejected {
		for _, id := range ids {
			poisoned[[2]string{e.index(table), id}] = true
		}
	}
	proxy := testkit.NewHTTPFaultProxy(t, esURL, testkit.HTTPFaults{
		Seed:        6,
		Item429:     0.05,
		Item500:     0.05,
		Reject:      func(index, id string) bool { return poisoned[[2]string{index, id}] },
		ResetBefore: 0.04,
		ResetAfter:  0.04,
		Delay:       0.10,
		MaxDelay:    1500 * time.Millisecond, // well below request_timeout (60 s)
		// Each request-level fault at least once, whatever the draws.
		First: []testkit.RequestFault{testkit.FaultResetBefore, testkit.FaultDelay, testkit.FaultResetAfter},
	})
	e.searchURL = proxy.URL()
	tables := append(slices.Clone(testkit.ShopTables), struct {
		Name string
		Key  []string
	}{"public.hot", []string{"id"}})
	p := e.start()
	// The snapshot, under faults (so every rejected document had an event).
	for _, tb := range tables {
		e.waitConvergedExcept(p, tb.Name, tb.Key, rejected[tb.Name], faultTimeout)
	}
	// Streaming, under faults.
	w := testkit.NewWorkload(6)
	for round := range 40 {
		e.workload(w, 8)
		e.hotRound(round)
	}
	// Fence 1: the last transaction, on a hot row that is not rejected;
	// convergence below includes it.
	testkit.Exec(t, e.conn, `UPDATE hot SET n = n + 1, note = 'fence 1' WHERE id = 1`)
	for _, tb := range tables {
		e.waitConvergedExcept(p, tb.Name, tb.Key, rejected[tb.Name], faultTimeout)
	}
	// Fence 2: the sink consumes batches strictly one after the other
	// (write, dead-letter, acknowledge), so once a later transaction is
	// applied, the batch holding fence 1 — and every rejected event before
	// it — is settled: the DLQ is complete.
	testkit.Exec(t, e.conn, `UPDATE hot SET n = n + 1, note = 'fence 2' WHERE id = 2`)
	e.waitConvergedExcept(p, "public.hot", []string{"id"}, rejected["public.hot"], faultTimeout)

	// The faults really happened, and tidegate saw them.
	c := proxy.Counts()
	t.Logf("injected: %s", c)
	if c.Item429 == 0 || c.Item500 == 0 || c.Item400 == 0 || c.ResetBefore == 0 || c.ResetAfter == 0 || c.Delay == 0 {
		t.Errorf("some fault kind was never injected (%s): the test did not exercise what it claims; raise its rate", c)
	}
	if c.ProxyErrors != 0 || c.UpstreamErrors != 0 {
		t.Errorf("the fault proxy failed on its own (%s): see testkit.HTTPFaultProxy", c)
	}
	for _, reason := range []string{"connection", "item"} {
		if v, err := e.metric("tidegate_sink_retries_total", `reason="`+reason+`"`); err != nil || v == 0 {
			t.Errorf("tidegate_sink_retries_total{reason=%q} = %v (%v): tidegate did not retry what the proxy injected", reason, v, err)
		}
	}
	p.stop()

	// The dead-letter stream: exactly the rejected (document, version)
	// pairs, with error text, attempts and the original event.
	want := map[testkit.BulkItemRef]bool{}
	for _, r := range proxy.Rejected() {
		want[r] = true
	}
	dead := readDeadLetters(t, e)
	got := map[testkit.BulkItemRef]bool{}
	newest := map[[2]string][]deadLetter{} // per document: the dead letters of its highest version
	for _, d := range dead {
		ref := d.ref(e)
		if !want[ref] {
			t.Errorf("dead letter %s (%s) was not rejected by the proxy: error %q", d.ev.GetId(), refString(ref), d.err)
			continue
		}
		got[ref] = true
		switch {
		case !strings.Contains(d.err, "mapper_parsing_exception") || !strings.Contains(d.err, testkit.InjectedMarker):
			t.Errorf("dead letter %s: error %q, want the cluster's mapper_parsing_exception text", d.ev.GetId(), d.err)
		case d.attempts < 1:
			t.Errorf("dead letter %s: attempts %d, want >= 1", d.ev.GetId(), d.attempts)
		}
		k := [2]string{ref.Index, ref.ID}
		if n := newest[k]; len(n) == 0 || n[0].ev.GetVersion() < d.ev.GetVersion() {
			newest[k] = []deadLetter{d}
		} else if n[0].ev.GetVersion() == d.ev.GetVersion() {
			newest[k] = append(n, d)
		}
	}
	for r := range want {
		if !got[r] {
			t.Errorf("rejected %s is not in the dead-letter stream: an event was lost", refString(r))
		}
	}
	t.Logf("dead letters: %d messages, %d distinct (document, version) pairs rejected by the proxy", len(dead), len(want))

	// Payload: for every rejected document, a dead letter of its newest
	// version is the row as it is now (or its delete).
	for table, ids := range rejected {
		key := []string{"id"}
		for _, tb := range tables {
			if tb.Name == table {
				key = tb.Key
			}
		}
		rows := map[string][]byte{}
		err := testkit.TableRows(ctx, e.conn, table, key, func(id string, doc []byte) {
			if slices.Contains(ids, id) {
				rows[id] = slices.Clone(doc)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			cands := newest[[2]string{e.index(table), id}]
			if len(cands) == 0 {
				t.Errorf("%s %s: no dead letter, but every write to it was rejected", table, id)
				continue
			}
			if !slices.ContainsFunc(cands, func(d deadLetter) bool { return d.matches(rows[id]) }) {
				t.Errorf("%s %s: the newest dead letter (version %d) is not the row's current state %s: %s",
					table, id, cands[0].ev.GetVersion(), rows[id], cands[0].ev)
			}
		}
	}
}

// hotRound updates the hot rows in several transaction shapes: all rows in
// one transaction, single rows, and one row twice in one transaction.
func (e *env) hotRound(round int) {
	e.t.Helper()
	testkit.Exec(e.t, e.conn,
		fmt.Sprintf(`UPDATE hot SET n = n + 1, note = 'round %d all'`, round),
		fmt.Sprintf(`UPDATE hot SET n = n + 1, note = 'round %d single' WHERE id = %d`, round, 1+round%hotRows),
		fmt.Sprintf(`UPDATE hot SET n = n + 1, note = 'round %d single' WHERE id = %d`, round, 1+(round*7)%hotRows),
		fmt.Sprintf(`BEGIN; UPDATE hot SET n = n + 1, note = 'round %d first' WHERE id = %d; UPDATE hot SET n = n + 1, note = 'round %d second' WHERE id = %d; COMMIT`,
			round, 1+(round*3)%hotRows, round, 1+(round*3)%hotRows),
	)
}

// waitConvergedExcept waits until table equals its index, except for the
// documents skip (their writes are rejected on purpose).
func (e *env) waitConvergedExcept(p *proc, table string, key, skip []string, timeout time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		d, err := testkit.CompareTable(ctx, e.conn, table, key, e.search, e.index(table))
		if err == nil {
			keep := func(s []string) []string {
				return slices.DeleteFunc(s, func(x string) bool {
					id, _, _ := strings.Cut(x, ": want ")
					return slices.Contains(skip, id)
				})
			}
			d.Missing, d.Extra, d.Different = keep(d.Missing), keep(d.Extra), keep(d.Different)
			if d.Empty() {
				e.t.Logf("verified: %s %d rows = %d documents (%d rejected documents not compared)", table, d.Rows, d.Docs, len(skip))
				return
			}
		}
		if p.exited() {
			p.dumpLog()
			e.t.Fatalf("tidegate exited while waiting for %s to converge", table)
		}
		if time.Now().After(deadline) {
			e.dumpMetrics()
			e.t.Fatalf("%s not converged after %s (error %v):\n%s", table, timeout, err, d)
		}
		time.Sleep(250 * time.Millisecond) // polling a condition
	}
}

// deadLetter is one message of a pipeline's dead-letter stream.
type deadLetter struct {
	ev       *event.Event
	err      string
	attempts int
}

func (d deadLetter) ref(e *env) testkit.BulkItemRef {
	o := d.ev.GetOrigin()
	return testkit.BulkItemRef{
		Index:   e.index(o.GetSchema() + "." + o.GetTable()),
		ID:      event.DocumentID(d.ev.GetKey()),
		Version: int64(d.ev.GetVersion()),
	}
}

// matches reports whether the dead letter's event leaves the document as
// row (nil: deleted).
func (d deadLetter) matches(row []byte) bool {
	if row == nil {
		return d.ev.GetOp() == event.Op_OP_DELETE
	}
	if d.ev.GetOp() == event.Op_OP_DELETE || d.ev.GetAfter() == nil {
		return false
	}
	return sameJSON(event.AppendRowJSON(nil, d.ev.GetAfter()), row)
}

// readDeadLetters reads the DLQ stream of the pipeline from tidegate's data
// directory, by opening its embedded bus (tidegate must be stopped). It
// checks each message's headers against its body.
func readDeadLetters(t *testing.T, e *env) []deadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{URL: "embedded", DataDir: e.dataDir})
	if err != nil {
		t.Fatalf("opening the embedded bus in %s to read the DLQ (is tidegate still running?): %v", e.dataDir, err)
	}
	defer b.Close()
	name := bus.DLQStreamName(e.source)
	s, err := b.JetStream().Stream(ctx, name)
	if err != nil {
		t.Fatalf("opening DLQ stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("reading DLQ stream %s: %v", name, err)
	}
	var out []deadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("reading DLQ message %d of %s: %v", seq, name, err)
		}
		ev := &event.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil || ev.GetId() != m.Header.Get(bus.HeaderEventID) {
			t.Fatalf("DLQ message %d: the body is not the event %q of its %s header (one marshaled event.Event expected): %v",
				seq, m.Header.Get(bus.HeaderEventID), bus.HeaderEventID, err)
		}
		if m.Subject != bus.DLQSubject(e.source, "search") || m.Header.Get(bus.HeaderSink) != "search" || m.Header.Get(bus.HeaderOriginalSubject) == "" {
			t.Errorf("DLQ message %d (%s): subject %s, sink %q, original subject %q", seq, ev.GetId(), m.Subject,
				m.Header.Get(bus.HeaderSink), m.Header.Get(bus.HeaderOriginalSubject))
		}
		attempts, err := strconv.Atoi(m.Header.Get(bus.HeaderAttempts))
		if err != nil {
			t.Errorf("DLQ message %d (%s): %s header %q is not a number", seq, ev.GetId(), bus.HeaderAttempts, m.Header.Get(bus.HeaderAttempts))
		}
		out = append(out, deadLetter{ev: ev, err: m.Header.Get(bus.HeaderError), attempts: attempts})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ev.GetVersion() < out[j].ev.GetVersion() })
	return out
}

func refString(r testkit.BulkItemRef) string {
	return fmt.Sprintf("%s/%s@%d", r.Index, r.ID, r.Version)
}

func sameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

// Elasticsearch restarted mid-stream (issue scenario 6): a private node is
// stopped gracefully while a workload streams, stays down for 10 s, and
// starts again on the same data; then it is killed (kill -9) and started
// again. tidegate retries (connection errors are counted), the index
// converges to the tables, and nothing goes to the DLQ.
func TestSinkElasticsearchRestartMidStream(t *testing.T) {
	node := testkit.StartESNode(t)
	e := newEnv(t, node.URL())
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 3000); err != nil {
		t.Fatal(err)
	}
	p := e.start()
	e.waitConverged(convergeTimeout)

	// A workload streams in the background on its own connection, paced so
	// that the backlog of the outage stays modest.
	wl := startBackgroundWorkload(t, e, 7, 20*time.Millisecond)
	applied := func() float64 {
		v, _ := e.metric("tidegate_events_total", `stage="sink:search"`)
		return v
	}
	e.waitMetric(p, convergeTimeout, applied()+200, "tidegate_events_total", `stage="sink:search"`)

	node.Stop()
	down := time.Now()
	// The sink notices the outage...
	e.waitMetric(p, convergeTimeout, 1, "tidegate_sink_retries_total", `reason="connection"`)
	if d := 10*time.Second - time.Since(down); d > 0 {
		time.Sleep(d) // ...which lasts 10 s by design
	}
	node.Start()
	// ...and streaming goes on after the restart.
	e.waitMetric(p, convergeTimeout, applied()+200, "tidegate_events_total", `stage="sink:search"`)

	// A crash of Elasticsearch (kill -9) mid-stream: what it acknowledged
	// is durable (translog), what it did not is retried.
	node.Kill()
	node.Start()
	e.waitMetric(p, convergeTimeout, applied()+200, "tidegate_events_total", `stage="sink:search"`)
	steps := wl.stop()
	t.Logf("background workload: %d transactions", steps)

	e.waitConverged(convergeTimeout)
	e.noDeadLetters()
	p.stop()
}

// backgroundWorkload runs testkit.Workload steps in a goroutine until stop.
type backgroundWorkload struct {
	t     *testing.T
	quit  chan struct{}
	done  chan struct{}
	steps int
	err   error
}

// startBackgroundWorkload starts one transaction per interval on its own
// connection. The test must call stop (it is also stopped at cleanup).
func startBackgroundWorkload(t *testing.T, e *env, seed uint64, interval time.Duration) *backgroundWorkload {
	conn := testkit.Connect(t, e.dsn)
	b := &backgroundWorkload{t: t, quit: make(chan struct{}), done: make(chan struct{})}
	w := testkit.NewWorkload(seed)
	go func() {
		defer close(b.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-b.quit:
				return
			case <-tick.C:
			}
			if err := w.Step(context.Background(), conn); err != nil {
				b.err = err
				return
			}
			b.steps++
		}
	}()
	t.Cleanup(func() { b.halt() })
	return b
}

func (b *backgroundWorkload) halt() {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	<-b.done
}

// stop stops the workload, fails the test if it failed, and returns the
// number of transactions it committed.
func (b *backgroundWorkload) stop() int {
	b.t.Helper()
	b.halt()
	if b.err != nil {
		b.t.Fatalf("background workload: %v", b.err)
	}
	return b.steps
}
