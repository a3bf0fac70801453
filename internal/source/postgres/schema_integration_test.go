package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/testkit"
)

// Integration tests of the schema registry and of the snapshot of tables
// added to the configuration: a real PostgreSQL and the real bus KV
// (an embedded JetStream in a temporary directory).

// openBusState opens an embedded bus in a temporary directory and returns
// its state store.
func openBusState(t *testing.T) *bus.State {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Config{URL: "embedded", DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("opening the embedded bus: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	st, err := b.State(context.Background())
	if err != nil {
		t.Fatalf("opening the state bucket: %v", err)
	}
	return st
}

// regEmitter collects events. Snapshot chunks are confirmed at once;
// stream positions only when confirm is set. block, when set, makes Emit
// wait for the run to stop on the event it returns true for.
type regEmitter struct {
	src     *Source
	confirm bool
	block   func(ev *event.Event) bool

	mu      sync.Mutex
	events  []*event.Event
	blocked chan struct{} // closed when Emit blocks
}

func (e *regEmitter) Emit(ctx context.Context, ev *event.Event) error {
	if e.block != nil && e.block(ev) {
		close(e.blocked)
		<-ctx.Done()
		return ctx.Err()
	}
	e.mu.Lock()
	e.events = append(e.events, proto.Clone(ev).(*event.Event)) // Emit must not retain ev
	e.mu.Unlock()
	return nil
}

func (e *regEmitter) Mark(_ context.Context, position any) error {
	if _, ok := position.(pglogrepl.LSN); ok && !e.confirm {
		return nil
	}
	e.src.Durable(position)
	return nil
}

func (e *regEmitter) Flush(context.Context) error { return nil }

func (e *regEmitter) snapshot() []*event.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// waitFor polls until cond holds for the events received.
func (e *regEmitter) waitFor(t *testing.T, r *regRun, what string, cond func(evs []*event.Event) bool) []*event.Event {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		evs := e.snapshot()
		if cond(evs) {
			return evs
		}
		if r.exited() {
			t.Fatalf("the source stopped while waiting for %s: %v\nlog:\n%s", what, r.err, r.log.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%d events)\nlog:\n%s", what, len(evs), r.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// regRun is one run of a source; stop ends it.
type regRun struct {
	src    *Source
	em     *regEmitter
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (r *regRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stop cancels the run and waits for it; it returns the run's error
// unless that is the cancellation.
func (r *regRun) stop() error {
	r.cancel()
	<-r.done
	if r.err != nil && !errors.Is(r.err, context.Canceled) {
		return r.err
	}
	return nil
}

func startRun(t *testing.T, cfg Config, state StateStore, pipeline string, em *regEmitter) *regRun {
	t.Helper()
	logs := &syncBuffer{}
	src, err := New(cfg, Options{
		SourceName: "reg", Pipeline: pipeline, SnapshotMode: SnapshotInitial,
		Emitter: em, State: state, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	em.src = src
	if em.blocked == nil {
		em.blocked = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &regRun{src: src, em: em, log: logs, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); r.err = src.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("source run: %v\nlog:\n%s", err, logs.String())
		}
	})
	return r
}

// waitStreaming polls the stored state until the run streams.
func (r *regRun) waitStreaming(t *testing.T, state StateStore) {
	t.Helper()
	r.em.waitFor(t, r, "streaming", func([]*event.Event) bool {
		var st sourceState
		found, _ := state.Get(context.Background(), r.src.stateKey(), &st)
		return found && st.Streaming && strings.Contains(r.log.String(), "msg=streaming")
	})
}

func findEvent(evs []*event.Event, op event.Op, id string) *event.Event {
	for _, ev := range evs {
		if ev.GetOp() == op && event.DocumentID(ev.GetKey()) == id {
			return ev
		}
	}
	return nil
}

func rowValue(ev *event.Event, col string) *event.Value {
	for _, c := range ev.GetAfter().GetColumns() {
		if c.GetName() == col {
			return c.GetValue()
		}
	}
	return nil
}

func readHistory(t *testing.T, state StateStore, pipeline, table string) SchemaHistory {
	t.Helper()
	var h SchemaHistory
	found, err := state.Get(context.Background(), SchemaKey(pipeline, "public", table), &h)
	if err != nil || !found {
		t.Fatalf("schema history of %s: found %v, err %v", table, found, err)
	}
	return h
}

// Each DDL while streaming records one new version (with the column diff),
// every event carries the version it was decoded with, decoding follows a
// type change, a renamed primary key column keeps the key, and a restart
// that replays the same WAL (nothing was confirmed; the table's key is now
// known by its new name) records nothing new and refers to the same
// versions.
func TestSchemaRegistry(t *testing.T) {
	dsn := testkit.NewDatabase(t)
	conn := testkit.Connect(t, dsn)
	testkit.Exec(t, conn,
		`CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)`,
		`INSERT INTO items SELECT i, 'n' || i, i FROM generate_series(1, 3) i`)
	state := openBusState(t)
	cfg := Config{DSN: dsn, Tables: []string{"public.items"}}
	pipeline := "reg" + testkit.RandomSuffix()

	em := &regEmitter{}
	run := startRun(t, cfg, state, pipeline, em)
	run.waitStreaming(t, state)
	// No snapshot connection is left in a transaction: its locks would
	// block every DDL below (and the application's queries queued behind).
	var open int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'tidegate' AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
		t.Fatalf("%d tidegate connections idle in a transaction after the snapshot (%v)", open, err)
	}

	steps := []struct {
		ddl, insert string
		diff        SchemaDiff
	}{
		{`ALTER TABLE items ADD COLUMN note text`, `INSERT INTO items (id, name, qty, note) VALUES (10, 'a', 1, 'x')`, SchemaDiff{Added: []string{"note"}}},
		{`ALTER TABLE items ADD COLUMN flag boolean NOT NULL DEFAULT true`, `INSERT INTO items (id, qty) VALUES (11, 2)`, SchemaDiff{Added: []string{"flag"}}},
		{`ALTER TABLE items DROP COLUMN name`, `INSERT INTO items (id, qty) VALUES (12, 3)`, SchemaDiff{Dropped: []string{"name"}}},
		{`ALTER TABLE items RENAME COLUMN note TO remark`, `INSERT INTO items (id, qty, remark) VALUES (13, 4, 'r')`, SchemaDiff{Renamed: []string{"note -> remark"}}},
		{`ALTER TABLE items ALTER COLUMN qty TYPE bigint`, `INSERT INTO items (id, qty) VALUES (14, 9007199254740993)`, SchemaDiff{TypeChanged: []string{"qty: integer -> bigint"}}},
		{`ALTER TABLE items ALTER COLUMN qty TYPE text`, `INSERT INTO items (id, qty) VALUES (15, 'many')`, SchemaDiff{TypeChanged: []string{"qty: bigint -> text"}}},
		// The primary key renamed: documents keep their ids.
		{`ALTER TABLE items RENAME COLUMN id TO item_id`, `INSERT INTO items (item_id, qty) VALUES (16, 'key')`, SchemaDiff{Renamed: []string{"id -> item_id"}}},
		{``, `INSERT INTO items (item_id, qty) VALUES (17, 'more')`, SchemaDiff{}}, // no DDL: no new version
	}
	for _, s := range steps {
		if s.ddl != "" {
			testkit.Exec(t, conn, s.ddl)
		}
		testkit.Exec(t, conn, s.insert)
	}
	evs := em.waitFor(t, run, "3 snapshot rows and 8 inserts", func(evs []*event.Event) bool { return len(evs) >= 11 })

	h := readHistory(t, state, pipeline, "items")
	if h.ID != "reg.public.items" {
		t.Errorf("history id %q, want reg.public.items", h.ID)
	}
	if len(h.Versions) != 8 {
		t.Fatalf("%d versions recorded, want 8 (the snapshot's and one per DDL): %+v", len(h.Versions), h.Versions)
	}
	v1 := h.Versions[0]
	wantV1 := []SchemaColumn{{Name: "id", Type: "bigint", TypeOID: 20, TypeMod: -1, Key: true}, {Name: "name", Type: "text", TypeOID: 25, TypeMod: -1}, {Name: "qty", Type: "integer", TypeOID: 23, TypeMod: -1}}
	if !slices.Equal(v1.Columns, wantV1) || v1.Fingerprint != Fingerprint(wantV1) {
		t.Errorf("version 1 = %+v, want columns %+v", v1, wantV1)
	}
	for i, ev := range evs[:3] {
		if ev.GetOp() != event.Op_OP_SNAPSHOT {
			t.Fatalf("event %d is %s, want a snapshot row", i, event.OpName(ev.GetOp()))
		}
		if ref := ev.GetSchema(); ref.GetVersion() != 1 || ref.GetFingerprint() != v1.Fingerprint || ref.GetId() != h.ID {
			t.Errorf("snapshot row %d carries schema %v, want version 1 %s", i, ref, v1.Fingerprint)
		}
	}
	if v1.FirstPosition != evs[0].GetPosition() {
		t.Errorf("version 1 first_position %s, want the snapshot's position %s", v1.FirstPosition, evs[0].GetPosition())
	}
	for i, s := range steps {
		ev := evs[3+i]
		want := uint32(i + 2)
		if s.ddl == "" {
			want = uint32(i + 1)
		}
		if ref := ev.GetSchema(); ref.GetVersion() != want || ref.GetFingerprint() != h.Versions[want-1].Fingerprint {
			t.Errorf("after %q: event carries schema %v, want version %d", s.ddl, ref, want)
		}
		if s.ddl == "" {
			continue
		}
		v := h.Versions[want-1]
		if v.FirstPosition != ev.GetPosition() {
			t.Errorf("version %d first_position %s, want the commit LSN %s of the first transaction using it", want, v.FirstPosition, ev.GetPosition())
		}
		got := DiffSchemas(h.Versions[want-2].Columns, v.Columns)
		if fmt.Sprint(got) != fmt.Sprint(s.diff) {
			t.Errorf("version %d diff = %+v, want %+v", want, got, s.diff)
		}
	}
	// Decoding follows the new types.
	if v := rowValue(evs[7], "qty"); v.GetInt() != 9007199254740993 {
		t.Errorf("qty after the change to bigint = %v, want 9007199254740993", v)
	}
	if v := rowValue(evs[8], "qty"); v.GetText() != "many" {
		t.Errorf("qty after the change to text = %v, want text many", v)
	}
	if got := rowValue(evs[5], "name"); got != nil {
		t.Errorf("the row inserted after DROP COLUMN name still has name = %v", got)
	}
	if id := event.DocumentID(evs[9].GetKey()); id != "16" || evs[9].GetKey()[0].GetName() != "item_id" {
		t.Errorf("after renaming the key column the key is %v (document %s), want item_id 16", evs[9].GetKey(), id)
	}
	if logs := run.log.String(); !strings.Contains(logs, `table=public.items schema_version=5 `) ||
		!strings.Contains(logs, `previous_version=4 renamed="[note -> remark]"`) ||
		!strings.Contains(logs, `type_changed="[qty: integer -> bigint]"`) {
		t.Errorf("the new versions are not logged with their diff:\n%s", run.log.String())
	}
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart: nothing was confirmed, so the whole stream is replayed with
	// the shapes of the time; it maps to the recorded versions.
	em2 := &regEmitter{}
	run2 := startRun(t, cfg, state, pipeline, em2)
	testkit.Exec(t, conn, `INSERT INTO items (item_id, qty) VALUES (18, 'after restart')`)
	evs2 := em2.waitFor(t, run2, "the replayed inserts and one more", func(evs []*event.Event) bool { return findEvent(evs, event.Op_OP_INSERT, "18") != nil })
	for _, ev := range evs[3:] {
		var again *event.Event
		for _, e2 := range evs2 {
			if e2.GetId() == ev.GetId() {
				again = e2
			}
		}
		if again == nil {
			t.Fatalf("event %s was not replayed", ev.GetId())
		}
		if again.GetSchema().GetVersion() != ev.GetSchema().GetVersion() {
			t.Errorf("replayed event %s carries schema version %d, first run %d", ev.GetId(), again.GetSchema().GetVersion(), ev.GetSchema().GetVersion())
		}
	}
	if last := findEvent(evs2, event.Op_OP_INSERT, "18"); last.GetSchema().GetVersion() != 8 {
		t.Errorf("insert after restart carries schema version %d, want 8", last.GetSchema().GetVersion())
	}
	if h2 := readHistory(t, state, pipeline, "items"); len(h2.Versions) != 8 {
		t.Fatalf("the restart recorded new versions: %d, want 8\nlog:\n%s", len(h2.Versions), run2.log.String())
	}
}

// A table added to the configuration of a source that already streams is
// snapshotted through a temporary slot's exported snapshot: a transaction
// open when the snapshot starts is waited for and included; a crash in the
// middle resumes chunk by chunk (under a new snapshot, with a higher
// version); changes to chunks already read are streamed.
func TestAddedTableSnapshot(t *testing.T) {
	dsn := testkit.NewDatabase(t)
	conn := testkit.Connect(t, dsn)
	testkit.Exec(t, conn,
		`CREATE TABLE a (id int PRIMARY KEY, v text, g int GENERATED ALWAYS AS (id * 2) STORED)`,
		`INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 10) i`,
		`CREATE TABLE b (id int PRIMARY KEY, v text)`,
		`INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 1000) i`)
	state := openBusState(t)
	pipeline := "add" + testkit.RandomSuffix()
	cfg := Config{DSN: dsn, Tables: []string{"public.a"}, SnapshotWorkers: 1, SnapshotChunkRows: 100}

	// Run 1 captures a only.
	em1 := &regEmitter{confirm: true}
	run1 := startRun(t, cfg, state, pipeline, em1)
	run1.waitStreaming(t, state)
	testkit.Exec(t, conn, `UPDATE a SET v = 'one' WHERE id = 1`, `UPDATE b SET v = 'uncaptured' WHERE id = 3`)
	evs1 := em1.waitFor(t, run1, "the update of a", func(evs []*event.Event) bool { return findEvent(evs, event.Op_OP_UPDATE, "1") != nil })
	// pgoutput does not replicate generated columns: snapshot rows leave
	// them out too, so both have the same shape and schema version.
	snapRow, update := findEvent(evs1, event.Op_OP_SNAPSHOT, "1"), findEvent(evs1, event.Op_OP_UPDATE, "1")
	for _, ev := range []*event.Event{snapRow, update} {
		if rowValue(ev, "g") != nil || len(ev.GetAfter().GetColumns()) != 2 {
			t.Errorf("%s of a has columns %v, want id and v (not the generated g)", event.OpName(ev.GetOp()), ev.GetAfter().GetColumns())
		}
		if ev.GetSchema().GetVersion() != 1 {
			t.Errorf("%s of a carries schema version %d, want 1 (the stream's shape must equal the snapshot's)", event.OpName(ev.GetOp()), ev.GetSchema().GetVersion())
		}
	}
	if err := run1.stop(); err != nil {
		t.Fatal(err)
	}

	// Run 2 adds b. A transaction open on b holds the temporary slot's
	// creation back; it is committed once the slot exists, so it is in
	// the snapshot. The run is stopped in the middle of b (chunk 5).
	other := testkit.Connect(t, dsn)
	testkit.Exec(t, other, `BEGIN`, `UPDATE b SET v = 'boundary' WHERE id = 1`)
	cfg.Tables = []string{"public.a", "public.b"}
	em2 := &regEmitter{confirm: true, block: func(ev *event.Event) bool {
		return ev.GetOp() == event.Op_OP_SNAPSHOT && event.DocumentID(ev.GetKey()) == "550"
	}}
	run2 := startRun(t, cfg, state, pipeline, em2)
	em2.waitFor(t, run2, "the temporary slot", func([]*event.Event) bool {
		var n int
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE temporary AND slot_name LIKE $1`, run2.src.Slot()+"_add_%").Scan(&n)
		return n == 1
	})
	testkit.Exec(t, other, `COMMIT`)
	select {
	case <-em2.blocked:
	case <-time.After(time.Minute):
		t.Fatalf("the added table's snapshot did not reach row 550\nlog:\n%s", run2.log.String())
	}
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	evs2 := em2.snapshot()
	first := findEvent(evs2, event.Op_OP_SNAPSHOT, "1")
	if first == nil || rowValue(first, "v").GetText() != "boundary" {
		t.Fatalf("snapshot row 1 of b = %v, want the committed value boundary", first)
	}
	if rowValue(findEvent(evs2, event.Op_OP_SNAPSHOT, "3"), "v").GetText() != "uncaptured" {
		t.Error("snapshot row 3 of b lacks the change made before b was captured")
	}
	if first.GetSchema().GetVersion() != 1 || first.GetSchema().GetId() != "reg.public.b" {
		t.Errorf("snapshot row of b carries schema %v, want version 1 of reg.public.b", first.GetSchema())
	}
	version1 := first.GetVersion()
	var st sourceState
	if _, err := state.Get(context.Background(), run2.src.stateKey(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Added == nil || len(st.Added.Tables) != 1 || st.Added.Complete {
		t.Fatalf("stored state after the interrupted added snapshot: %+v", st.Added)
	}
	var done int
	for _, d := range st.Added.Tables[0].Done {
		if d {
			done++
		}
	}
	if done != 5 {
		t.Fatalf("%d chunks of b recorded done, want 5 (rows 1-500)", done)
	}
	// The temporary slot goes away with its connection (the server
	// notices the closed connection a moment later).
	for deadline := time.Now().Add(time.Minute); ; {
		n := -1
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1`, run2.src.Slot()+"_add_%").Scan(&n)
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the temporary slot is still there a minute after its run stopped (%d, %v)", n, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}

	// A change to a chunk already read, made while tidegate is down.
	testkit.Exec(t, conn, `UPDATE b SET v = 'between' WHERE id = 2`)

	em3 := &regEmitter{confirm: true}
	run3 := startRun(t, cfg, state, pipeline, em3)
	run3.waitStreaming(t, state)
	testkit.Exec(t, conn, `UPDATE b SET v = 'streamed' WHERE id = 999`)
	evs3 := em3.waitFor(t, run3, "the streamed update of b", func(evs []*event.Event) bool { return findEvent(evs, event.Op_OP_UPDATE, "999") != nil })
	if !strings.Contains(run3.log.String(), "resuming the snapshot of tables added to the configuration") {
		t.Errorf("run 3 did not resume the added snapshot:\n%s", run3.log.String())
	}
	var snapRows int
	var version2 uint64
	for _, ev := range evs3 {
		if ev.GetOp() == event.Op_OP_SNAPSHOT {
			if ev.GetOrigin().GetTable() != "b" {
				t.Fatalf("run 3 snapshotted %s again", ev.GetOrigin().GetTable())
			}
			snapRows++
			version2 = ev.GetVersion()
			if id, _ := strconv.Atoi(event.DocumentID(ev.GetKey())); id <= 500 {
				t.Fatalf("run 3 read row %d again: its chunk was done", id)
			}
		}
	}
	if snapRows != 500 {
		t.Errorf("run 3 read %d snapshot rows, want 500 (chunks 6-10)", snapRows)
	}
	if version2 <= version1 {
		t.Errorf("the resumed snapshot's version %d is not above the first one's %d", version2, version1)
	}
	between := findEvent(evs3, event.Op_OP_UPDATE, "2")
	if between == nil || between.GetVersion() <= version1 {
		t.Fatalf("the change to row 2 after its chunk was read was not streamed with a version above the chunk's %d: %v", version1, between)
	}
	if streamed := findEvent(evs3, event.Op_OP_UPDATE, "999"); streamed.GetVersion() <= version2 {
		t.Errorf("a change after the snapshot has version %d, not above the snapshot's %d", streamed.GetVersion(), version2)
	}
	st = sourceState{}
	if _, err := state.Get(context.Background(), run3.src.stateKey(), &st); err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, ts := range st.Snapshot.Tables {
		covered = append(covered, ts.Table)
	}
	if st.Added != nil || !slices.Equal(covered, []string{"public.a", "public.b"}) {
		t.Fatalf("after the added snapshot: added %+v, covered %q; want nil and [public.a public.b]", st.Added, covered)
	}
	if err := run3.stop(); err != nil {
		t.Fatal(err)
	}

	// A restart snapshots nothing more.
	em4 := &regEmitter{confirm: true}
	run4 := startRun(t, cfg, state, pipeline, em4)
	run4.waitStreaming(t, state)
	testkit.Exec(t, conn, `UPDATE b SET v = 'last' WHERE id = 5`)
	evs4 := em4.waitFor(t, run4, "the update after restart", func(evs []*event.Event) bool { return findEvent(evs, event.Op_OP_UPDATE, "5") != nil })
	for _, ev := range evs4 {
		if ev.GetOp() == event.Op_OP_SNAPSHOT {
			t.Fatalf("a restart snapshotted %s again", ev.GetOrigin().GetTable())
		}
	}
}
