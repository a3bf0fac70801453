package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Table is a captured table's shape as the source knows it.
type Table struct {
	Schema, Name string
	OID          uint32
	Columns      []Column
	// Key holds indexes into Columns of the key columns, in key order.
	Key []int
	// ReplicaIdentity is d (default), f (full), i (index) or n (nothing).
	ReplicaIdentity byte
	// EstimatedRows from pg_class.reltuples (-1 when never analyzed).
	EstimatedRows int64
}

// Column is one column of a table.
type Column struct {
	Name    string
	TypeOID uint32
}

// QualifiedName is schema.table.
func (t *Table) QualifiedName() string { return t.Schema + "." + t.Name }

// quotedName is "schema"."table" for SQL.
func (t *Table) quotedName() string {
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

// ParseTableName splits "schema.table" (schema defaults to public).
func ParseTableName(s string) (schema, table string) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "public", s
}

// errNoKey is returned for a table without a primary key and no configured key.
var errNoKey = errors.New("table has no primary key")

// loadTable reads a table's columns and key. keyCols, when set, overrides
// the primary key (for tables without one).
func loadTable(ctx context.Context, conn *pgx.Conn, name string, keyCols []string) (*Table, error) {
	schema, rel := ParseTableName(name)
	t := &Table{Schema: schema, Name: rel}
	var ident string
	var reltuples float64
	err := conn.QueryRow(ctx, `
		SELECT c.oid, c.relreplident::text, c.reltuples::float8
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`, schema, rel).
		Scan(&t.OID, &ident, &reltuples)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("table %s does not exist (or is not a table): check sources[].postgres.tables and the user's search rights", name)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up table %s: %w", name, err)
	}
	if ident != "" {
		t.ReplicaIdentity = ident[0]
	}
	t.EstimatedRows = int64(reltuples)

	rows, err := conn.Query(ctx, `
		SELECT a.attname, a.atttypid
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, t.OID)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
	}
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.TypeOID); err != nil {
			return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
	}

	if len(keyCols) == 0 {
		rows, err := conn.Query(ctx, `
			SELECT a.attname
			FROM pg_index i
			CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = $1 AND i.indisprimary
			ORDER BY k.ord`, t.OID)
		if err != nil {
			return nil, fmt.Errorf("reading the primary key of %s: %w", name, err)
		}
		keyCols, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("reading the primary key of %s: %w", name, err)
		}
		if len(keyCols) == 0 {
			return nil, fmt.Errorf("%w: %s has no primary key; add one, or configure its key columns in sources[].postgres.keys and set REPLICA IDENTITY FULL (ALTER TABLE %s REPLICA IDENTITY FULL)", errNoKey, name, t.quotedName())
		}
	} else if t.ReplicaIdentity != 'f' && t.ReplicaIdentity != 'i' {
		if !t.hasPrimaryKeyOn(ctx, conn, keyCols) {
			return nil, fmt.Errorf("%s: configured key %v needs REPLICA IDENTITY FULL (or USING INDEX on those columns) so that updates and deletes carry the key: run ALTER TABLE %s REPLICA IDENTITY FULL", name, keyCols, t.quotedName())
		}
	}
	for _, k := range keyCols {
		idx := t.columnIndex(k)
		if idx < 0 {
			return nil, fmt.Errorf("%s: key column %q does not exist", name, k)
		}
		t.Key = append(t.Key, idx)
	}
	return t, nil
}

func (t *Table) hasPrimaryKeyOn(ctx context.Context, conn *pgx.Conn, cols []string) bool {
	var n int
	_ = conn.QueryRow(ctx, `
		SELECT count(*) FROM pg_index i WHERE i.indrelid = $1 AND i.indisprimary
		AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
		     WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) =
		    (SELECT array_agg(x ORDER BY x) FROM unnest($2::text[]) x)`, t.OID, cols).Scan(&n)
	return n > 0
}

func (t *Table) columnIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// keyList is the key columns quoted and comma-separated.
func (t *Table) keyList() string {
	parts := make([]string, len(t.Key))
	for i, k := range t.Key {
		parts[i] = pgx.Identifier{t.Columns[k].Name}.Sanitize()
	}
	return strings.Join(parts, ", ")
}

// columnList is every column quoted and comma-separated.
func (t *Table) columnList() string {
	parts := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		parts[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	return strings.Join(parts, ", ")
}

// typeOIDs returns the distinct column type OIDs.
func (t *Table) typeOIDs() []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, c := range t.Columns {
		if !seen[c.TypeOID] {
			seen[c.TypeOID] = true
			out = append(out, c.TypeOID)
		}
	}
	return out
}
