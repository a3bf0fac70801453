package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tidegate/tidegate/internal/testkit"
)

// toastE2ESchema: two tables whose body (text) and doc (jsonb) hold large,
// incompressible values (md5 chains, > 100 kB), so PostgreSQL stores them
// out of line; one with REPLICA IDENTITY DEFAULT, one with FULL. doc holds
// numbers that a re-encoding would change (1.50, a decimal beyond float64).
const toastE2ESchema = testkit.ToastFunctions + `
CREATE TABLE toast_default (id int PRIMARY KEY, title text NOT NULL, n int NOT NULL, body text, doc jsonb);
CREATE TABLE toast_full (id int PRIMARY KEY, title text NOT NULL, n int NOT NULL, body text, doc jsonb);
ALTER TABLE toast_full REPLICA IDENTITY FULL;
`

var toastTables = []string{"public.toast_default", "public.toast_full"}

// Unchanged TOAST values: an UPDATE of a small column of a row whose large
// text/jsonb values are stored out of line leaves them out of the change
// (REPLICA IDENTITY DEFAULT) or sends them only in the old row (FULL). The
// documents keep the large values, exactly; nothing goes to the DLQ.
func TestUnchangedToast(t *testing.T) {
	for flavor, url := range clusters(t) {
		t.Run(flavor, func(t *testing.T) {
			e := newEnv(t, url)
			testkit.Exec(t, e.conn, toastE2ESchema)
			e.tables = append(e.tables, toastTables...)
			for _, tb := range toastTables {
				testkit.Exec(t, e.conn, `INSERT INTO `+tb+` SELECT i, 'first', 0, md5_chain('body' || i, 3300), md5_doc('doc' || i, 3000) FROM generate_series(1, 3) i`)
			}
			e.assertToasted()

			p := e.start()
			e.waitToastConverged("snapshot")
			steps := []struct {
				name string
				sql  func(tb string) []string
			}{
				{"update a small column", func(tb string) []string {
					return []string{
						`UPDATE ` + tb + ` SET title = 'second', n = n + 1`,
						// Twice in one transaction: both changes lack the values.
						`BEGIN; UPDATE ` + tb + ` SET n = n + 1 WHERE id = 2; UPDATE ` + tb + ` SET n = n + 1 WHERE id = 2; COMMIT`,
					}
				}},
				{"update the large values", func(tb string) []string {
					return []string{
						`UPDATE ` + tb + ` SET body = md5_chain('new body' || id, 3400), doc = md5_doc('new doc' || id, 3100) WHERE id = 2`,
						// A new large value, then a change of a small column
						// that leaves it out, in one transaction.
						`BEGIN; UPDATE ` + tb + ` SET body = md5_chain('newer body' || id, 3300) WHERE id = 1; UPDATE ` + tb + ` SET title = 'after new body' WHERE id = 1; COMMIT`,
					}
				}},
				{"update a small column again", func(tb string) []string {
					return []string{`UPDATE ` + tb + ` SET title = 'third', n = n + 10`}
				}},
				{"delete a row", func(tb string) []string {
					return []string{`DELETE FROM ` + tb + ` WHERE id = 3`}
				}},
			}
			for _, st := range steps {
				for _, tb := range toastTables {
					testkit.Exec(t, e.conn, st.sql(tb)...)
				}
				e.assertToasted()
				e.waitToastConverged(st.name)
				e.noDeadLetters()
			}
			// The DEFAULT table's changes did lack the values: the sink
			// filled them in from the index (the FULL table's came complete).
			filled, err := e.metric("tidegate_sink_toast_documents_total", `outcome="index"`)
			if err != nil || filled < 6 {
				t.Fatalf("%v documents filled in from the index (err %v), want at least 6: the test did not exercise unchanged TOAST values", filled, err)
			}
			p.stop()
		})
	}
}

// assertToasted checks that every large value of the test tables is stored
// out of line: a stored (compressed) size above a page cannot be kept
// inline, and the table's TOAST relation holds chunks.
func (e *env) assertToasted() {
	e.t.Helper()
	ctx := context.Background()
	for _, tb := range toastTables {
		var inline, chunks int64
		err := e.conn.QueryRow(ctx, `SELECT count(*) FROM `+tb+`
			WHERE pg_column_size(body) <= 8192 OR pg_column_size(doc) <= 8192
			   OR octet_length(body) < 100000 OR octet_length(doc::text) < 100000`).Scan(&inline)
		if err != nil {
			e.t.Fatal(err)
		}
		err = e.conn.QueryRow(ctx, `SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', reltoastrelid::regclass), false, true, '')))[1]::text::int8
			FROM pg_class WHERE oid = $1::regclass`, tb).Scan(&chunks)
		if err != nil {
			e.t.Fatal(err)
		}
		if inline != 0 || chunks == 0 {
			e.t.Fatalf("%s: %d rows have a large value not stored out of line (%d TOAST chunks): the test would not exercise TOAST", tb, inline, chunks)
		}
	}
}

// waitToastConverged waits until each test table equals its index, then
// checks the large values byte for byte: body as a string, doc as the
// exact JSON text PostgreSQL prints.
func (e *env) waitToastConverged(step string) {
	e.t.Helper()
	ctx := context.Background()
	for _, tb := range toastTables {
		d, err := testkit.WaitConverged(ctx, e.conn, tb, []string{"id"}, e.search, e.index(tb), convergeTimeout)
		if err != nil {
			e.t.Fatalf("%s: comparing %s: %v", step, tb, err)
		}
		if !d.Empty() {
			e.dumpMetrics()
			e.t.Fatalf("%s: not converged after %s:\n%s", step, convergeTimeout, d)
		}
		docs, err := e.search.AllDocs(ctx, e.index(tb))
		if err != nil {
			e.t.Fatal(err)
		}
		rows, err := e.conn.Query(ctx, `SELECT id, body, doc::text FROM `+tb)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id int
			var body, doc string
			if err := rows.Scan(&id, &body, &doc); err != nil {
				e.t.Fatal(err)
			}
			n++
			stored, ok := docs[fmt.Sprint(id)]
			if !ok {
				e.t.Fatalf("%s: %s row %d has no document", step, tb, id)
			}
			var src struct {
				Body string          `json:"body"`
				Doc  json.RawMessage `json:"doc"`
			}
			if err := json.Unmarshal(stored.Source, &src); err != nil {
				e.t.Fatalf("%s: decoding document %d of %s: %v", step, id, tb, err)
			}
			if src.Body != body {
				e.t.Errorf("%s: %s row %d: body in the index (%d bytes) differs from the database (%d bytes)", step, tb, id, len(src.Body), len(body))
			}
			if string(src.Doc) != doc {
				e.t.Errorf("%s: %s row %d: doc in the index differs from the database's text:\n got %.120s… (%d bytes)\nwant %.120s… (%d bytes)", step, tb, id, src.Doc, len(src.Doc), doc, len(doc))
			}
		}
		if err := rows.Err(); err != nil {
			e.t.Fatal(err)
		}
		e.t.Logf("%s: %s: %d rows = %d documents, large values identical", step, tb, n, len(docs))
	}
}
