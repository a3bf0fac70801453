package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	rows, err := conn.Query(ctx, "SELECT * FROM "+table, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	types := pgdecode.NewTypes()
	oids := make([]uint32, len(fields))
	for i, f := range fields {
		oids[i] = f.DataTypeOID
	}
	// Load needs the connection, which is busy with rows: use a second query first.
	rows.Close()
	if err := types.Load(ctx, conn, oids...); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, "SELECT * FROM "+table, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	defer rows.Close()
	keyIdx := make([]int, len(keyCols))
	for i, k := range keyCols {
		keyIdx[i] = -1
		for j, f := range fields {
			if f.Name == k {
				keyIdx[i] = j
			}
		}
		if keyIdx[i] < 0 {
			return nil, fmt.Errorf("%s has no column %s", table, k)
		}
	}
	out := map[string]json.RawMessage{}
	for rows.Next() {
		raw := rows.RawValues()
		cols := make([]*event.Column, len(raw))
		for i, r := range raw {
			v, err := types.Decode(fields[i].DataTypeOID, r)
			if err != nil {
				return nil, err
			}
			cols[i] = &event.Column{Name: fields[i].Name, Value: v}
		}
		key := make([]*event.Column, len(keyIdx))
		for i, k := range keyIdx {
			key[i] = cols[k]
		}
		out[event.DocumentID(key)] = event.AppendRowJSON(nil, &event.Row{Columns: cols})
	}
	return out, rows.Err()
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
