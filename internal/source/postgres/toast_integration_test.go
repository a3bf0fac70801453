package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/testkit"
)

// toastSchema creates two tables with large, incompressible values (md5
// chains, > 100 kB each), stored out of line: one with REPLICA IDENTITY
// DEFAULT, one with FULL.
const toastSchema = testkit.ToastFunctions + `
CREATE TABLE toast_default (id int PRIMARY KEY, title text, body text, doc jsonb);
CREATE TABLE toast_full (id int PRIMARY KEY, title text, body text, doc jsonb);
ALTER TABLE toast_full REPLICA IDENTITY FULL;
`

// PostgreSQL 15 leaves an unchanged out-of-line value out of an UPDATE's
// new tuple ('u'). With REPLICA IDENTITY DEFAULT the event lists it in
// Unchanged and has no value for it; with FULL, the old tuple carries the
// value detoasted and the event is complete (Unchanged empty), also when the
// key changes.
func TestStreamUnchangedToast(t *testing.T) {
	dsn := testkit.NewDatabase(t)
	conn := testkit.Connect(t, dsn)
	testkit.Exec(t, conn, toastSchema)
	em := runToastSource(t, dsn, "public.toast_default", "public.toast_full")

	for _, tb := range []string{"toast_default", "toast_full"} {
		testkit.Exec(t, conn, `INSERT INTO `+tb+` VALUES (1, 'first', md5_chain('`+tb+`', 3200), md5_doc('`+tb+`', 3000))`)
		assertOutOfLine(t, conn, tb)
	}
	testkit.Exec(t, conn,
		`UPDATE toast_default SET title = 'second' WHERE id = 1`,
		`UPDATE toast_full SET title = 'second' WHERE id = 1`,
		`UPDATE toast_full SET id = 2, title = 'moved' WHERE id = 1`,
	)
	events := em.waitFor(t, 6)

	// DEFAULT: the unchanged values are listed, never filled with anything.
	def := events[2]
	if def.GetOrigin().GetTable() != "toast_default" || def.GetOp() != event.Op_OP_UPDATE {
		t.Fatalf("event 2 is %s on %s, want the update of toast_default", event.OpName(def.GetOp()), def.GetOrigin().GetTable())
	}
	if !slices.Equal(def.GetUnchanged(), []string{"body", "doc"}) {
		t.Errorf("REPLICA IDENTITY DEFAULT: unchanged = %q, want [body doc] (PostgreSQL sends 'u' for them)", def.GetUnchanged())
	}
	if got := columnNames(def.GetAfter()); !slices.Equal(got, []string{"id", "title"}) {
		t.Errorf("REPLICA IDENTITY DEFAULT: after has columns %q, want [id title]", got)
	}

	// FULL: complete after row, in table order, equal to the database.
	body, doc := dbValues(t, conn, "toast_full", 2)
	full := events[3]
	if full.GetOrigin().GetTable() != "toast_full" || full.GetOp() != event.Op_OP_UPDATE {
		t.Fatalf("event 3 is %s on %s, want the update of toast_full", event.OpName(full.GetOp()), full.GetOrigin().GetTable())
	}
	assertComplete(t, "update of a small column", full, "second", body, doc)
	if b := columnValue(full.GetBefore(), "body"); b.GetText() != body {
		t.Errorf("before.body (%d bytes) differs from the database value (%d bytes)", len(b.GetText()), len(body))
	}

	// FULL with a key change: the old document is deleted, the new one is
	// complete.
	if e := events[4]; e.GetOp() != event.Op_OP_DELETE || event.DocumentID(e.GetKey()) != "1" {
		t.Errorf("event 4 is %s of %s, want the delete of document 1", event.OpName(e.GetOp()), event.DocumentID(e.GetKey()))
	}
	moved := events[5]
	if event.DocumentID(moved.GetKey()) != "2" {
		t.Fatalf("event 5 is about document %s, want 2", event.DocumentID(moved.GetKey()))
	}
	assertComplete(t, "key change", moved, "moved", body, doc)
}

func assertComplete(t *testing.T, what string, e *event.Event, title, body, doc string) {
	t.Helper()
	if len(e.GetUnchanged()) != 0 {
		t.Errorf("%s with REPLICA IDENTITY FULL: unchanged = %q, want none (the old tuple carries the values)", what, e.GetUnchanged())
	}
	if got := columnNames(e.GetAfter()); !slices.Equal(got, []string{"id", "title", "body", "doc"}) {
		t.Errorf("%s: after has columns %q, want [id title body doc]", what, got)
	}
	if v := columnValue(e.GetAfter(), "title").GetText(); v != title {
		t.Errorf("%s: title = %q, want %q", what, v, title)
	}
	if v := columnValue(e.GetAfter(), "body").GetText(); v != body {
		t.Errorf("%s: body (%d bytes) differs from the database value (%d bytes)", what, len(v), len(body))
	}
	if v := columnValue(e.GetAfter(), "doc").GetJson(); v != doc {
		t.Errorf("%s: doc (%d bytes) differs from the database value (%d bytes)", what, len(v), len(doc))
	}
}

// assertOutOfLine checks that body and doc of every row of table are
// stored out of line: their stored (compressed) size exceeds a page, which
// cannot be kept inline.
func assertOutOfLine(t *testing.T, conn *pgx.Conn, table string) {
	t.Helper()
	var inline int
	err := conn.QueryRow(context.Background(),
		`SELECT count(*) FROM `+table+` WHERE pg_column_size(body) <= 8192 OR pg_column_size(doc) <= 8192 OR octet_length(body) < 100000 OR octet_length(doc::text) < 100000`).Scan(&inline)
	if err != nil {
		t.Fatal(err)
	}
	var toastRows int64
	err = conn.QueryRow(context.Background(),
		`SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', reltoastrelid::regclass), false, true, '')))[1]::text::int8
		   FROM pg_class WHERE oid = $1::regclass`, table).Scan(&toastRows)
	if err != nil {
		t.Fatal(err)
	}
	if inline != 0 || toastRows == 0 {
		t.Fatalf("%s: %d rows have a large value that is not stored out of line (toast relation holds %d chunks): the test would not exercise TOAST", table, inline, toastRows)
	}
}

func dbValues(t *testing.T, conn *pgx.Conn, table string, id int) (body, doc string) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `SELECT body, doc::text FROM `+table+` WHERE id = $1`, id).Scan(&body, &doc)
	if err != nil {
		t.Fatal(err)
	}
	return body, doc
}

func columnNames(r *event.Row) []string {
	var names []string
	for _, c := range r.GetColumns() {
		names = append(names, c.GetName())
	}
	return names
}

func columnValue(r *event.Row, name string) *event.Value {
	for _, c := range r.GetColumns() {
		if c.GetName() == name {
			return c.GetValue()
		}
	}
	return nil
}

// runToastSource runs a source on tables (no snapshot) until the end of the
// test and returns the emitter collecting its events. It returns once the
// source streams, so later changes are captured.
func runToastSource(t *testing.T, dsn string, tables ...string) *toastEmitter {
	t.Helper()
	em := &toastEmitter{}
	state := &toastState{m: map[string][]byte{}}
	src, err := New(Config{DSN: dsn, Tables: tables}, Options{
		SourceName: "toast", Pipeline: "toast", SnapshotMode: SnapshotNever,
		Emitter: em, State: state, Logger: slog.New(slog.NewTextHandler(toastLogWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	em.src = src
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("source: %v", err)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		var st sourceState
		found, _ := state.Get(ctx, src.stateKey(), &st)
		if found && st.Streaming {
			return em
		}
		select {
		case err := <-done:
			t.Fatalf("source stopped before streaming: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not start streaming within a minute")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// toastEmitter collects events; positions are durable at once.
type toastEmitter struct {
	src    *Source
	mu     sync.Mutex
	events []*event.Event
}

func (e *toastEmitter) Emit(_ context.Context, ev *event.Event) error {
	e.mu.Lock()
	e.events = append(e.events, proto.Clone(ev).(*event.Event)) // Emit must not retain ev
	e.mu.Unlock()
	return nil
}

func (e *toastEmitter) Mark(_ context.Context, position any) error {
	e.src.Durable(position)
	return nil
}

func (e *toastEmitter) Flush(context.Context) error { return nil }

// waitFor waits until n events arrived and returns them.
func (e *toastEmitter) waitFor(t *testing.T, n int) []*event.Event {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e.mu.Lock()
		got := slices.Clone(e.events)
		e.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d events within a minute, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// toastState is an in-memory StateStore.
type toastState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *toastState) Get(_ context.Context, key string, v any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

func (s *toastState) Put(_ context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.m[key] = b
	s.mu.Unlock()
	return nil
}

func (s *toastState) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// toastLogWriter sends the source's log lines to the test log.
type toastLogWriter struct{ t *testing.T }

func (w toastLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
