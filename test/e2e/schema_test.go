package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/source/postgres"
	"github.com/tidegate/tidegate/internal/testkit"
)

// Schema changes while streaming (docs/schema-changes.md): each DDL runs
// while a workload streams; documents take the new shape when their row
// next changes, the mapping follows, each change is one schema version in
// the registry, and a type change the mapping cannot take sends the
// affected event to the DLQ with the cluster's error.
func TestSchemaChangesWhileStreaming(t *testing.T) {
	for flavor, url := range clusters(t) {
		t.Run(flavor, func(t *testing.T) {
			e := newEnv(t, url)
			e.tables = []string{"public.items"}
			testkit.Exec(t, e.conn,
				`CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, name text, qty int, note text)`,
				`INSERT INTO items SELECT i, 0, 'n' || i, i, 'note' || i FROM generate_series(1, 300) i`)
			index := e.index("public.items")
			p := e.start()
			e.waitTableDocs("public.items", convergeTimeout)

			// Rows 1-100 and new rows belong to the workload; 150 is a
			// control row nobody touches; 201+ are changed by the steps.
			w := e.startRowWorkload(func(ctx context.Context, conn *pgx.Conn, i int) error {
				if i%4 == 3 {
					_, err := conn.Exec(ctx, `INSERT INTO items (id, n) VALUES ($1, $2)`, 100000+i, i)
					return err
				}
				_, err := conn.Exec(ctx, `UPDATE items SET n = n + 1 WHERE id = $1`, 1+i%100)
				return err
			})

			// ADD COLUMN without default: the updated row's document has
			// it; the others get it when their row next changes.
			testkit.Exec(t, e.conn, `ALTER TABLE items ADD COLUMN a text`, `UPDATE items SET a = 'A' WHERE id = 201`)
			e.waitRowDoc(index, "items", "201")
			e.assertDocFields(index, "150", []string{"id", "n", "name", "qty", "note"})
			e.assertMappedField(index, "a", "")

			// ADD COLUMN with a default: PostgreSQL does not rewrite (nor
			// log) the existing rows; an update carries the default.
			testkit.Exec(t, e.conn, `ALTER TABLE items ADD COLUMN b text NOT NULL DEFAULT 'dflt'`, `UPDATE items SET n = n + 1 WHERE id = 202`)
			doc := e.waitRowDoc(index, "items", "202")
			if !strings.Contains(string(doc), `"b":"dflt"`) {
				t.Fatalf("row 202 updated after ADD COLUMN b DEFAULT 'dflt': document %s lacks b", doc)
			}
			e.assertDocFields(index, "150", []string{"id", "n", "name", "qty", "note"})

			// DROP COLUMN: the next write of a row replaces its document,
			// without the column.
			testkit.Exec(t, e.conn, `ALTER TABLE items DROP COLUMN note`, `UPDATE items SET n = n + 1 WHERE id = 203`)
			e.waitRowDoc(index, "items", "203")
			e.assertDocFields(index, "203", []string{"id", "n", "name", "qty", "a", "b"})

			// RENAME COLUMN: the new name replaces the old one.
			testkit.Exec(t, e.conn, `ALTER TABLE items RENAME COLUMN name TO title`, `UPDATE items SET n = n + 1 WHERE id = 204`)
			e.waitRowDoc(index, "items", "204")
			e.assertDocFields(index, "204", []string{"id", "n", "title", "qty", "a", "b"})

			// A compatible type change: int -> bigint, a value beyond
			// 2^53 (still "long" in the index).
			testkit.Exec(t, e.conn, `ALTER TABLE items ALTER COLUMN qty TYPE bigint`, `UPDATE items SET qty = 9007199254740993 WHERE id = 205`)
			e.waitRowDoc(index, "items", "205")
			e.assertMappedField(index, "qty", "long")

			// An incompatible one: int -> text. Numeric text is coerced
			// into the long field; other text is refused by the index and
			// goes to the DLQ.
			testkit.Exec(t, e.conn, `ALTER TABLE items ALTER COLUMN qty TYPE text`,
				`UPDATE items SET qty = 'many' WHERE id = 206`, `UPDATE items SET qty = '42' WHERE id = 207`)
			e.waitRowDoc(index, "items", "207")
			e.waitMetric(p, convergeTimeout, 1, "tidegate_events_total", `stage="dlq:search"`)

			w.stop(t)
			// Every row but the refused one written once more: the index
			// then equals the table, documents included that had kept a
			// dropped or renamed column.
			testkit.Exec(t, e.conn, `UPDATE items SET n = n WHERE id <> 206`)
			d := e.waitTableDocsExcept("public.items", []string{"206"}, convergeTimeout)
			if !slices.Contains(d.Different, "206") {
				t.Fatalf("document 206 equals a row the index refused: %v", d.Different)
			}
			p.stop()

			wantDiffs := []postgres.SchemaDiff{
				{}, // the snapshot's version
				{Added: []string{"a"}},
				{Added: []string{"b"}},
				{Dropped: []string{"note"}},
				{Renamed: []string{"name -> title"}},
				{TypeChanged: []string{"qty: integer -> bigint"}},
				{TypeChanged: []string{"qty: bigint -> text"}},
			}
			h := e.schemaHistory("public", "items")
			e.assertSchemaHistory(h, wantDiffs)

			letters := e.storedDeadLetters()
			if len(letters) != 1 {
				t.Fatalf("%d dead letters, want 1 (the update of row 206): %+v", len(letters), letters)
			}
			dl := letters[0]
			ev, err := dl.Event()
			if err != nil {
				t.Fatal(err)
			}
			if id := event.DocumentID(ev.GetKey()); id != "206" || !strings.Contains(dl.Error, "qty") ||
				!(strings.Contains(dl.Error, "mapper_parsing_exception") || strings.Contains(dl.Error, "document_parsing_exception")) {
				t.Fatalf("dead letter for document %s with error %q: want row 206 with the cluster's mapping error naming qty", id, dl.Error)
			}
			if ev.GetSchema().GetVersion() != 7 || ev.GetSchema().GetFingerprint() != h.Versions[6].Fingerprint {
				t.Errorf("the dead letter's event carries schema %v, want version 7 %s", ev.GetSchema(), h.Versions[6].Fingerprint)
			}
			t.Logf("dead letter: %s", dl.Error)

			// A restart with the table unchanged records no new version.
			p = e.start()
			testkit.Exec(t, e.conn, `UPDATE items SET n = n + 1 WHERE id = 208`)
			e.waitRowDoc(index, "items", "208")
			p.stop()
			if h2 := e.schemaHistory("public", "items"); len(h2.Versions) != len(wantDiffs) {
				t.Fatalf("a restart recorded new schema versions: %d, want %d", len(h2.Versions), len(wantDiffs))
			}
		})
	}
}

// A table added to the configuration is snapshotted at the next start
// (through a temporary slot's exported snapshot) and then streamed; changes
// made to it before it was captured, while tidegate was down, and during
// its snapshot all arrive, and the other tables keep their position.
func TestTableAddedToConfig(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	e.tables = []string{"public.items"}
	testkit.Exec(t, e.conn,
		`CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO items SELECT i, 0 FROM generate_series(1, 200) i`,
		`CREATE TABLE extra (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)`,
		`INSERT INTO extra SELECT i, 'v' || i, 0 FROM generate_series(1, 2500) i`)
	p := e.start()
	e.waitTableDocs("public.items", convergeTimeout)
	testkit.Exec(t, e.conn, `UPDATE extra SET v = 'before' WHERE id <= 10`, `DELETE FROM extra WHERE id BETWEEN 11 AND 20`)

	// A workload on both tables runs across the restart.
	w := e.startRowWorkload(func(ctx context.Context, conn *pgx.Conn, i int) error {
		switch i % 4 {
		case 0:
			_, err := conn.Exec(ctx, `UPDATE items SET n = n + 1 WHERE id = $1`, 1+i%200)
			return err
		case 1:
			_, err := conn.Exec(ctx, `INSERT INTO extra (id, v) VALUES ($1, 'new')`, 10000+i)
			return err
		case 2:
			_, err := conn.Exec(ctx, `DELETE FROM extra WHERE id = $1`, 100+i)
			return err
		default:
			_, err := conn.Exec(ctx, `UPDATE extra SET n = n + 1 WHERE id = $1`, 1+(i*7)%2500)
			return err
		}
	})
	w.waitSteps(t, 40)
	p.stop()
	w.waitSteps(t, 40) // changes while tidegate is down
	e.tables = append(e.tables, "public.extra")
	e.writeConfig()
	p = e.start()
	e.waitLogLine(p, "snapshotting tables added to the configuration", convergeTimeout)
	w.waitSteps(t, 80)
	w.stop(t)
	e.waitTableDocs("public.items", convergeTimeout)
	e.waitTableDocs("public.extra", convergeTimeout)
	e.noDeadLetters()
	p.stop()

	var st struct {
		Snapshot struct {
			Tables []struct{ Table string }
		}
		Added any
	}
	e.readStateKey("source."+e.source, &st)
	var covered []string
	for _, ts := range st.Snapshot.Tables {
		covered = append(covered, ts.Table)
	}
	if !slices.Equal(covered, []string{"public.items", "public.extra"}) || st.Added != nil {
		t.Fatalf("stored source state: tables %q, added %v; want [public.items public.extra] and no pending snapshot", covered, st.Added)
	}
	e.assertSchemaHistory(e.schemaHistory("public", "extra"), []postgres.SchemaDiff{{}})

	// The next start snapshots nothing.
	p = e.start()
	testkit.Exec(t, e.conn, `UPDATE extra SET v = 'after' WHERE id = 1`)
	e.waitRowDoc(e.index("public.extra"), "extra", "1")
	p.stop()
	data, _ := os.ReadFile(p.log)
	if strings.Contains(string(data), "snapshot starting") {
		t.Fatal("a restart with no new table took a snapshot")
	}
}

// ---- helpers (schema tests) ----

// waitTableDocs waits until table (key id) equals its index.
func (e *env) waitTableDocs(table string, timeout time.Duration) {
	e.t.Helper()
	e.waitTableDocsExcept(table, nil, timeout)
}

// waitTableDocsExcept waits until table (key id) equals its index except for
// the documents listed (which may differ); it returns the last diff.
func (e *env) waitTableDocsExcept(table string, except []string, timeout time.Duration) testkit.Diff {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		d, err := testkit.CompareTable(ctx, e.conn, table, []string{"id"}, e.search, e.index(table))
		ids := func(s []string) []string {
			var out []string
			for _, x := range s {
				id, _, _ := strings.Cut(x, ":")
				if !slices.Contains(except, id) {
					out = append(out, x)
				}
			}
			return out
		}
		if err == nil && len(d.Missing)+len(d.Extra)+len(ids(d.Different)) == 0 {
			e.t.Logf("verified: %s %d rows = %d documents (except %v)", table, d.Rows, d.Docs, except)
			var diffIDs []string
			for _, x := range d.Different {
				id, _, _ := strings.Cut(x, ":")
				diffIDs = append(diffIDs, id)
			}
			d.Different = diffIDs
			return d
		}
		if time.Now().After(deadline) {
			e.dumpMetrics()
			e.t.Fatalf("%s not converged after %s (err %v):\n%s", table, timeout, err, d)
		}
		time.Sleep(250 * time.Millisecond) // polling a condition
	}
}

// waitRowDoc waits until the document of row id of table equals the row
// rendered as tidegate renders it; it returns the document.
func (e *env) waitRowDoc(index, table, id string) json.RawMessage {
	e.t.Helper()
	ctx := context.Background()
	one := fmt.Sprintf("(SELECT * FROM %s WHERE id = %s) AS row", pgx.Identifier{table}.Sanitize(), id)
	deadline := time.Now().Add(convergeTimeout)
	for {
		var want []byte
		err := testkit.TableRows(ctx, e.conn, one, []string{"id"}, func(_ string, doc []byte) { want = append([]byte(nil), doc...) })
		if err != nil {
			e.t.Fatalf("reading row %s of %s: %v", id, table, err)
		}
		got, gerr := e.search.Get(ctx, index, id)
		if gerr == nil && got != nil && jsonEqualExact(want, got) {
			return got
		}
		if time.Now().After(deadline) {
			e.dumpMetrics()
			e.t.Fatalf("document %s of %s never matched its row:\nwant %s\ngot  %s (%v)", id, index, want, got, gerr)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}

// jsonEqualExact compares two JSON documents, numbers by their exact text.
func jsonEqualExact(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// assertDocFields checks the set of fields of a document.
func (e *env) assertDocFields(index, id string, want []string) {
	e.t.Helper()
	doc, err := e.search.Get(context.Background(), index, id)
	if err != nil || doc == nil {
		e.t.Fatalf("document %s: %s %v", id, doc, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		e.t.Fatalf("document %s: %v", id, err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		e.t.Fatalf("document %s has fields %q, want %q (%s)", id, got, w, doc)
	}
}

// assertMappedField checks that the index mapping has field (of type typ, when
// not empty).
func (e *env) assertMappedField(index, field, typ string) {
	e.t.Helper()
	resp, err := http.Get(e.search.URL + "/" + url.PathEscape(index) + "/_mapping")
	if err != nil {
		e.t.Fatalf("reading the mapping of %s: %v", index, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]struct {
		Mappings struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		e.t.Fatalf("decoding the mapping of %s: %v (%s)", index, err, body)
	}
	f, ok := m[index].Mappings.Properties[field]
	if !ok || (typ != "" && f.Type != typ) {
		e.t.Fatalf("mapping of %s: field %s is %+v (present %v), want type %q: %s", index, field, f, ok, typ, body)
	}
}

// waitLogLine waits until the process log contains s.
func (e *env) waitLogLine(p *proc, s string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(p.log)
		if strings.Contains(string(data), s) {
			return
		}
		if p.exited() || time.Now().After(deadline) {
			p.dumpLog()
			e.t.Fatalf("tidegate never logged %q", s)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}

// openDataBus opens the data directory's bus; tidegate must be stopped.
func (e *env) openDataBus() *bus.Bus {
	e.t.Helper()
	b, err := bus.Open(context.Background(), bus.Config{URL: "embedded", DataDir: e.dataDir})
	if err != nil {
		e.t.Fatalf("opening the bus of %s (is tidegate still running?): %v", e.dataDir, err)
	}
	return b
}

// readStateKey reads a key of the state KV (tidegate must be stopped).
func (e *env) readStateKey(key string, v any) {
	e.t.Helper()
	b := e.openDataBus()
	defer b.Close()
	st, err := b.State(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	found, err := st.Get(context.Background(), key, v)
	if err != nil || !found {
		e.t.Fatalf("state %s: found %v, err %v", key, found, err)
	}
}

// schemaHistory reads a table's schema versions (tidegate must be stopped).
func (e *env) schemaHistory(schema, table string) postgres.SchemaHistory {
	e.t.Helper()
	var h postgres.SchemaHistory
	e.readStateKey(postgres.SchemaKey(e.source, schema, table), &h)
	return h
}

// assertSchemaHistory checks a history: one version per expected diff (the
// first is the initial shape), each diff between consecutive versions as
// expected, distinct fingerprints.
func (e *env) assertSchemaHistory(h postgres.SchemaHistory, want []postgres.SchemaDiff) {
	e.t.Helper()
	if len(h.Versions) != len(want) {
		e.t.Fatalf("%d schema versions of %s, want %d: %+v", len(h.Versions), h.ID, len(want), h.Versions)
	}
	seen := map[string]bool{}
	for i, v := range h.Versions {
		if v.Version != uint32(i+1) || v.Fingerprint == "" || seen[v.Fingerprint] || v.FirstPosition == "" {
			e.t.Errorf("version %d of %s: %+v (numbered %d, fingerprint repeated %v)", i+1, h.ID, v, v.Version, seen[v.Fingerprint])
		}
		seen[v.Fingerprint] = true
		if i == 0 {
			continue
		}
		if got := postgres.DiffSchemas(h.Versions[i-1].Columns, v.Columns); fmt.Sprint(got) != fmt.Sprint(want[i]) {
			e.t.Errorf("version %d of %s changes %+v, want %+v", i+1, h.ID, got, want[i])
		}
	}
}

// storedDeadLetters lists the pipeline's dead letters (tidegate must be stopped).
func (e *env) storedDeadLetters() []bus.StoredDeadLetter {
	e.t.Helper()
	b := e.openDataBus()
	defer b.Close()
	var out []bus.StoredDeadLetter
	err := b.ScanDLQ(context.Background(), e.source, bus.DLQFilter{}, func(d bus.StoredDeadLetter) (bool, error) {
		out = append(out, d)
		return true, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// rowWorkload runs one transaction per step on its own connection until
// stopped; the test owns it (stop, or cleanup).
type rowWorkload struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	steps  atomic.Int64
}

func (e *env) startRowWorkload(step func(ctx context.Context, conn *pgx.Conn, i int) error) *rowWorkload {
	e.t.Helper()
	conn := testkit.Connect(e.t, e.dsn)
	ctx, cancel := context.WithCancel(context.Background())
	w := &rowWorkload{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		pace := time.NewTicker(10 * time.Millisecond) // pacing, not synchronisation
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-pace.C:
			}
			if err := step(ctx, conn, i); err != nil {
				if ctx.Err() == nil {
					w.err = fmt.Errorf("workload step %d: %w", i, err)
				}
				return
			}
			w.steps.Store(int64(i + 1))
		}
	}()
	e.t.Cleanup(func() { w.cancel(); <-w.done })
	return w
}

// stop ends the workload and fails the test if a step failed.
func (w *rowWorkload) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	<-w.done
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.steps.Load() == 0 {
		t.Fatal("the workload made no step: the test did not run what it claims")
	}
	t.Logf("workload: %d transactions", w.steps.Load())
}

// waitSteps waits until the workload made n more transactions.
func (w *rowWorkload) waitSteps(t *testing.T, n int64) {
	t.Helper()
	target := w.steps.Load() + n
	deadline := time.Now().Add(convergeTimeout)
	for w.steps.Load() < target {
		select {
		case <-w.done:
			t.Fatalf("the workload stopped: %v", w.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload made %d of %d transactions in %s", w.steps.Load(), target, convergeTimeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
