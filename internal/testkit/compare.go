package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// Diff is the difference between a table and its index.
type Diff struct {
	Table     string
	Rows      int
	Docs      int
	Missing   []string // keys in the table, not in the index
	Extra     []string // documents with no row
	Different []string // documents whose content differs ("id: want ... got ...")
}

// Empty reports whether table and index are equal.
func (d Diff) Empty() bool { return len(d.Missing)+len(d.Extra)+len(d.Different) == 0 }

func (d Diff) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %d rows, %d documents, %d missing, %d extra, %d different", d.Table, d.Rows, d.Docs, len(d.Missing), len(d.Extra), len(d.Different))
	show := func(what string, s []string) {
		for i, x := range s {
			if i == 5 {
				fmt.Fprintf(&sb, "\n  ... %d more %s", len(s)-5, what)
				break
			}
			fmt.Fprintf(&sb, "\n  %s %s", what, x)
		}
	}
	show("missing", d.Missing)
	show("extra", d.Extra)
	show("different", d.Different)
	return sb.String()
}

// CompareTable reads every row of table (schema.table) and every document
// of index and compares them row by row. Rows are rendered through the
// same value mapping tidegate uses (pgdecode + event JSON), whose own
// correctness against PostgreSQL is tested separately, so this checks
// convergence: nothing missing, nothing extra, nothing stale.
func CompareTable(ctx context.Context, conn *pgx.Conn, table string, keyCols []string, s *Search, index string) (Diff, error) {
	d := Diff{Table: table}
	want, err := tableDocs(ctx, conn, table, keyCols)
	if err != nil {
		return d, err
	}
	got, err := s.AllDocs(ctx, index)
	if err != nil {
		return d, err
	}
	d.Rows, d.Docs = len(want), len(got)
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			d.Missing = append(d.Missing, id)
			continue
		}
		if !jsonEqual(w, g.Source) {
			d.Different = append(d.Different, fmt.Sprintf("%s: want %s got %s", id, w, g.Source))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			d.Extra = append(d.Extra, id)
		}
	}
	sort.Strings(d.Missing)
	sort.Strings(d.Extra)
	sort.Strings(d.Different)
	return d, nil
}

// WaitConverged compares until the table equals the index or timeout; it
// returns the last diff. Polling a condition, not sleeping for time.
func WaitConverged(ctx context.Context, conn *pgx.Conn, table string, keyCols []string, s *Search, index string, timeout time.Duration) (Diff, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := CompareTable(ctx, conn, table, keyCols, s, index)
		if err == nil && d.Empty() {
			return d, nil
		}
		if time.Now().After(deadline) {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func tableDocs(ctx context.Context, conn *pgx.Conn, table string, keyCols []string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := TableRows(ctx, conn, table, keyCols, func(id string, doc []byte) {
		out[id] = append(json.RawMessage(nil), doc...)
	})
	return out, err
}

// TableTypes returns table's columns and their types, loaded for
// tidegate's decoding (pgdecode).
func TableTypes(ctx context.Context, conn *pgx.Conn, table string) ([]pgconn.FieldDescription, *pgdecode.Types, error) {
	rows, err := conn.Query(ctx, "SELECT * FROM "+table+" LIMIT 0", pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", table, err)
	}
	fields := slices.Clone(rows.FieldDescriptions())
	rows.Close()
	oids := make([]uint32, len(fields))
	for i, f := range fields {
		oids[i] = f.DataTypeOID
	}
	types := pgdecode.NewTypes()
	if err := types.Load(ctx, conn, oids...); err != nil {
		return nil, nil, fmt.Errorf("loading the types of %s: %w", table, err)
	}
	return fields, types, nil
}

// TableRows calls fn with the document id and the JSON document of every
// row of table, rendered through tidegate's value mapping (pgdecode + event
// JSON). doc is reused between calls. The connection must carry tidegate's
// session settings (ConnectSession, Connect).
func TableRows(ctx context.Context, conn *pgx.Conn, table string, keyCols []string, fn func(id string, doc []byte)) error {
	fields, types, err := TableTypes(ctx, conn, table)
	if err != nil {
		return err
	}
	keyIdx := make([]int, len(keyCols))
	for k, name := range keyCols {
		keyIdx[k] = slices.IndexFunc(fields, func(f pgconn.FieldDescription) bool { return f.Name == name })
		if keyIdx[k] < 0 {
			return fmt.Errorf("%s has no column %s", table, name)
		}
	}
	rows, err := conn.Query(ctx, "SELECT * FROM "+table, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	var buf []byte
	for rows.Next() {
		raw := rows.RawValues()
		cols := make([]*event.Column, len(raw))
		for i, r := range raw {
			v, err := types.Decode(fields[i].DataTypeOID, r)
			if err != nil {
				return fmt.Errorf("decoding %s.%s: %w", table, fields[i].Name, err)
			}
			cols[i] = &event.Column{Name: fields[i].Name, Value: v}
		}
		key := make([]*event.Column, len(keyIdx))
		for i, k := range keyIdx {
			key[i] = cols[k]
		}
		buf = event.AppendRowJSON(buf[:0], &event.Row{Columns: cols})
		fn(event.DocumentID(key), buf)
	}
	return rows.Err()
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
