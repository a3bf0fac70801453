package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/event"
)

// Table is a captured table's shape as the source knows it.
type Table struct {
	Schema, Name string
	OID          uint32
	Columns      []Column
	// Key holds indexes into Columns of the key columns, in key order.
	Key []int
	// KeyIsPrimary: Key is the primary key (not configured in
	// sources[].postgres.keys).
	KeyIsPrimary bool
	// ReplicaIdentity is d (default), f (full), i (index) or n (nothing).
	ReplicaIdentity byte
	// EstimatedRows from pg_class.reltuples (-1 when never analyzed).
	EstimatedRows int64

	// schemaMu guards the schema registry state of the table: schemaHist
	// (the stored history as last read or written; nil until first used)
	// and snapshotSchema (the version snapshot rows carry).
	schemaMu       sync.Mutex
	schemaHist     *SchemaHistory
	snapshotSchema *event.SchemaRef
}

// Column is one column of a table.
type Column struct {
	Name    string
	TypeOID uint32
	// TypeMod is the type modifier (atttypmod; -1 when none).
	TypeMod int32
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

	// Generated columns are left out: pgoutput does not replicate them
	// (PostgreSQL < 18, or publish_generated_columns off), so snapshot rows
	// and streamed rows have the same columns.
	rows, err := conn.Query(ctx, `
		SELECT a.attname, a.atttypid, a.atttypmod
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, t.OID)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
	}
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod); err != nil {
			return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
	}

	if len(keyCols) == 0 {
		t.KeyIsPrimary = true
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

// streamKey maps the key columns to the columns of a pgoutput relation
// message: by name, or, when a primary key column has another name there
// (renamed while streaming, or WAL from before a rename replayed after a
// restart), by the key flags pgoutput sets on the primary key columns
// under REPLICA IDENTITY DEFAULT. Both lists are in column order, so the
// n-th flagged column is the key column n-th in table order.
func (t *Table) streamKey(cols []*pglogrepl.RelationMessageColumn) ([]int, error) {
	key := make([]int, 0, len(t.Key))
	for _, k := range t.Key {
		name := t.Columns[k].Name
		idx := slices.IndexFunc(cols, func(c *pglogrepl.RelationMessageColumn) bool { return c.Name == name })
		if idx < 0 {
			key = nil
			break
		}
		key = append(key, idx)
	}
	if key != nil {
		return key, nil
	}
	var flagged []int
	for i, c := range cols {
		if c.Flags&1 != 0 {
			flagged = append(flagged, i)
		}
	}
	if !t.KeyIsPrimary || len(flagged) != len(t.Key) {
		var missing []string
		for _, k := range t.Key {
			name := t.Columns[k].Name
			if !slices.ContainsFunc(cols, func(c *pglogrepl.RelationMessageColumn) bool { return c.Name == name }) {
				missing = append(missing, name)
			}
		}
		return nil, fmt.Errorf("%w: key column(s) %v of %s are gone from the replication stream (dropped, renamed, or the key changed); "+
			"give the table a primary key (or configure sources[].postgres.keys to existing columns) and restart tidegate", ErrSetup, missing, t.QualifiedName())
	}
	inTableOrder := slices.Clone(t.Key)
	slices.Sort(inTableOrder)
	for _, k := range t.Key {
		key = append(key, flagged[slices.Index(inTableOrder, k)])
	}
	return key, nil
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

// keyRange is the condition "(key columns) op ($n+1, $n+2, ...)" and the
// type OIDs of its parameters, for key ranges given as text.
func (t *Table) keyRange(op string, n int) (string, []uint32) {
	ph := make([]string, len(t.Key))
	oids := make([]uint32, len(t.Key))
	for i, k := range t.Key {
		ph[i] = "$" + strconv.Itoa(n+i+1)
		oids[i] = t.Columns[k].TypeOID
	}
	return "(" + t.keyList() + ") " + op + " (" + strings.Join(ph, ", ") + ")", oids
}
