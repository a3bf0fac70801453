package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/event"
)

// The schema registry: every captured table's column shapes, one version per
// change, kept in the state store under SchemaKey. A version is recorded when
// a snapshot reads a table (its catalog shape) and when pgoutput announces a
// relation (after DDL, and once per replication session) whose fingerprint
// differs from the version in effect. Every event carries a SchemaRef to the
// version it was decoded with. See docs/schema-changes.md.

// MaxSchemaVersions bounds the history kept per table; older versions are
// dropped (version numbers keep growing).
const MaxSchemaVersions = 100

// SchemaColumn is one column of a schema version.
type SchemaColumn struct {
	Name string `json:"name"`
	// Type is PostgreSQL's rendering of the type with its modifier
	// (format_type): "integer", "character varying(20)", "numeric(10,2)".
	Type    string `json:"type"`
	TypeOID uint32 `json:"type_oid"`
	// TypeMod is atttypmod (-1: none).
	TypeMod int32 `json:"typmod"`
	// Key: the column is part of the key tidegate builds document ids from.
	Key bool `json:"key,omitempty"`
}

// SchemaVersion is one recorded shape of a table.
type SchemaVersion struct {
	Version     uint32         `json:"version"`
	Fingerprint string         `json:"fingerprint"`
	Columns     []SchemaColumn `json:"columns"`
	// FirstPosition is the position (LSN) of the first event decoded with
	// this version: the commit LSN of the transaction whose relation
	// message announced it, or the version of the snapshot that read it.
	FirstPosition string    `json:"first_position"`
	RecordedAt    time.Time `json:"recorded_at"`
}

// SchemaHistory is the stored value of a table's registry key: its last
// MaxSchemaVersions versions, oldest first.
type SchemaHistory struct {
	// ID is "<source>.<schema>.<table>", as in event.SchemaRef.id.
	ID       string          `json:"id"`
	Versions []SchemaVersion `json:"versions"`
}

// SchemaKey is the state-store key of a table's schema history:
// "schema.<pipeline>.<schema>.<table>", each part escaped so that any
// identifier gives a valid, distinct KV key (characters other than letters,
// digits, '_' and '-' become "=" and two hex digits per byte).
func SchemaKey(pipeline, schema, table string) string {
	return SchemaKeyPrefix(pipeline) + escapeKeyPart(schema) + "." + escapeKeyPart(table)
}

// SchemaKeyPrefix is the start of every schema key of a pipeline (ending
// with a dot).
func SchemaKeyPrefix(pipeline string) string {
	return "schema." + escapeKeyPart(pipeline) + "."
}

func escapeKeyPart(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteString(hex.EncodeToString([]byte{c}))
		}
	}
	if b.Len() == 0 {
		return "="
	}
	return b.String()
}

// Fingerprint is a hex digest of the columns' names, type OIDs, type
// modifiers and key flags, in order. Type names do not take part: they are
// a rendering of OID and modifier.
func Fingerprint(cols []SchemaColumn) string {
	h := sha256.New()
	var buf []byte
	buf = append(buf, "tidegate-schema-v1\n"...)
	for _, c := range cols {
		buf = append(buf, c.Name...)
		buf = append(buf, 0)
		buf = strconv.AppendUint(buf, uint64(c.TypeOID), 10)
		buf = append(buf, 0)
		buf = strconv.AppendInt(buf, int64(c.TypeMod), 10)
		buf = append(buf, 0)
		if c.Key {
			buf = append(buf, '1')
		} else {
			buf = append(buf, '0')
		}
		buf = append(buf, '\n')
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// SchemaDiff describes how a table's columns changed between two versions.
// Renamed is a guess: pgoutput does not send column numbers, so a column
// that disappeared and one that appeared at the same place with the same
// type look like a rename (it could also be a drop and an add).
type SchemaDiff struct {
	Added       []string `json:"added,omitempty"`
	Dropped     []string `json:"dropped,omitempty"`
	Renamed     []string `json:"renamed,omitempty"`      // "old -> new"
	TypeChanged []string `json:"type_changed,omitempty"` // "col: old -> new"
	KeyChanged  []string `json:"key_changed,omitempty"`  // columns that joined or left the key
	Reordered   bool     `json:"reordered,omitempty"`
}

// Empty reports whether nothing changed.
func (d SchemaDiff) Empty() bool {
	return len(d.Added)+len(d.Dropped)+len(d.Renamed)+len(d.TypeChanged)+len(d.KeyChanged) == 0 && !d.Reordered
}

// DiffSchemas compares the columns of two versions.
func DiffSchemas(old, cur []SchemaColumn) SchemaDiff {
	var d SchemaDiff
	oldIdx := make(map[string]int, len(old))
	for i, c := range old {
		oldIdx[c.Name] = i
	}
	curIdx := make(map[string]int, len(cur))
	for i, c := range cur {
		curIdx[c.Name] = i
	}
	// Pair columns gone from old with new columns at the same position and
	// of the same type: they look renamed.
	renamedFrom := map[string]bool{}
	renamedTo := map[string]bool{}
	for i, c := range cur {
		if _, ok := oldIdx[c.Name]; ok || i >= len(old) {
			continue
		}
		o := old[i]
		if _, still := curIdx[o.Name]; still || !sameType(o, c) {
			continue
		}
		renamedFrom[o.Name], renamedTo[c.Name] = true, true
		d.Renamed = append(d.Renamed, o.Name+" -> "+c.Name)
	}
	for _, c := range old {
		if _, ok := curIdx[c.Name]; !ok && !renamedFrom[c.Name] {
			d.Dropped = append(d.Dropped, c.Name)
		}
	}
	var common []string
	for _, c := range cur {
		i, ok := oldIdx[c.Name]
		if !ok {
			if !renamedTo[c.Name] {
				d.Added = append(d.Added, c.Name)
			}
			continue
		}
		common = append(common, c.Name)
		o := old[i]
		if !sameType(o, c) {
			d.TypeChanged = append(d.TypeChanged, c.Name+": "+typeLabel(o)+" -> "+typeLabel(c))
		}
		if o.Key != c.Key {
			d.KeyChanged = append(d.KeyChanged, c.Name)
		}
	}
	// Columns kept by both, in a different relative order.
	last := -1
	for _, name := range common {
		if i := oldIdx[name]; i < last {
			d.Reordered = true
		} else {
			last = i
		}
	}
	return d
}

func sameType(a, b SchemaColumn) bool { return a.TypeOID == b.TypeOID && a.TypeMod == b.TypeMod }

func typeLabel(c SchemaColumn) string {
	if c.Type != "" {
		return c.Type
	}
	return "oid " + strconv.FormatUint(uint64(c.TypeOID), 10) + " typmod " + strconv.FormatInt(int64(c.TypeMod), 10)
}

// find returns the version a relation with fingerprint fp seen at pos
// belongs to, or nil when it is a new shape. The latest version matches
// whatever the position; otherwise, when a restart replays WAL from before
// the latest version (the source resumes from the last confirmed
// position), the version that was in effect at pos matches.
func (h *SchemaHistory) find(fp string, pos pglogrepl.LSN) *SchemaVersion {
	n := len(h.Versions)
	if n == 0 {
		return nil
	}
	if h.Versions[n-1].Fingerprint == fp {
		return &h.Versions[n-1]
	}
	var inEffect *SchemaVersion
	for i := range h.Versions {
		first, err := pglogrepl.ParseLSN(h.Versions[i].FirstPosition)
		if err == nil && first <= pos {
			inEffect = &h.Versions[i]
		}
	}
	if inEffect != nil && inEffect.Fingerprint == fp {
		return inEffect
	}
	return nil
}

// add appends a version (numbered after the last one) and trims the history.
func (h *SchemaHistory) add(v SchemaVersion) {
	v.Version = 1
	if n := len(h.Versions); n > 0 {
		v.Version = h.Versions[n-1].Version + 1
	}
	h.Versions = append(h.Versions, v)
	if over := len(h.Versions) - MaxSchemaVersions; over > 0 {
		h.Versions = append([]SchemaVersion(nil), h.Versions[over:]...)
	}
}

func (v *SchemaVersion) ref(id string) *event.SchemaRef {
	return &event.SchemaRef{Id: id, Version: v.Version, Fingerprint: v.Fingerprint}
}

// schemaID is the SchemaRef id of a table.
func (s *Source) schemaID(t *Table) string {
	return s.opts.SourceName + "." + t.Schema + "." + t.Name
}

// recordSchema returns the registry version of table t with columns cols
// (Type may be empty) seen at pos, recording a new version when the shape
// differs from the one in effect. Safe for concurrent use (per table).
func (s *Source) recordSchema(ctx context.Context, conn *pgx.Conn, t *Table, cols []SchemaColumn, pos pglogrepl.LSN) (*event.SchemaRef, error) {
	fp := Fingerprint(cols)
	id := s.schemaID(t)
	t.schemaMu.Lock()
	defer t.schemaMu.Unlock()
	if t.schemaHist != nil {
		if v := t.schemaHist.find(fp, pos); v != nil {
			return v.ref(id), nil
		}
	}
	// Not known from memory: read what is stored (another run, or another
	// user of the table, may have recorded it since).
	key := SchemaKey(s.opts.Pipeline, t.Schema, t.Name)
	var h SchemaHistory
	if _, err := s.opts.State.Get(ctx, key, &h); err != nil {
		return nil, fmt.Errorf("reading the schema history of %s: %w", t.QualifiedName(), err)
	}
	h.ID = id
	t.schemaHist = &h
	if v := h.find(fp, pos); v != nil {
		return v.ref(id), nil
	}

	named, err := typeNames(ctx, conn, cols)
	if err != nil {
		return nil, fmt.Errorf("recording a schema version of %s: %w", t.QualifiedName(), err)
	}
	next := h
	next.Versions = append([]SchemaVersion(nil), h.Versions...)
	next.add(SchemaVersion{Fingerprint: fp, Columns: named, FirstPosition: pos.String(), RecordedAt: time.Now().UTC()})
	if err := s.opts.State.Put(ctx, key, &next); err != nil {
		return nil, fmt.Errorf("recording a schema version of %s: %w", t.QualifiedName(), err)
	}
	t.schemaHist = &next
	v := &next.Versions[len(next.Versions)-1]
	attrs := []any{"table", t.QualifiedName(), "schema_version", v.Version, "fingerprint", fp, "position", v.FirstPosition}
	if len(h.Versions) == 0 {
		attrs = append(attrs, "columns", schemaColumnNames(named))
	} else {
		d := DiffSchemas(h.Versions[len(h.Versions)-1].Columns, named)
		attrs = append(attrs, "previous_version", h.Versions[len(h.Versions)-1].Version)
		for _, a := range []struct {
			k string
			v []string
		}{{"added", d.Added}, {"dropped", d.Dropped}, {"renamed", d.Renamed}, {"type_changed", d.TypeChanged}, {"key_changed", d.KeyChanged}} {
			if len(a.v) > 0 {
				attrs = append(attrs, a.k, a.v)
			}
		}
		if d.Reordered {
			attrs = append(attrs, "reordered", true)
		}
	}
	s.log.Info("schema version recorded", attrs...)
	return v.ref(id), nil
}

func schemaColumnNames(cols []SchemaColumn) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// typeNames fills in the Type of each column with format_type (one query).
func typeNames(ctx context.Context, conn *pgx.Conn, cols []SchemaColumn) ([]SchemaColumn, error) {
	out := append([]SchemaColumn(nil), cols...)
	if len(cols) == 0 {
		return out, nil
	}
	oids := make([]uint32, len(cols))
	mods := make([]int32, len(cols))
	for i, c := range cols {
		oids[i], mods[i] = c.TypeOID, c.TypeMod
	}
	rows, err := conn.Query(ctx, `SELECT coalesce(format_type(o, m), '') FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(o, m, n) ORDER BY n`, oids, mods)
	if err != nil {
		return nil, fmt.Errorf("naming column types: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("naming column types: %w", err)
	}
	if len(names) != len(out) {
		return nil, fmt.Errorf("naming column types: got %d names for %d columns", len(names), len(out))
	}
	for i := range out {
		out[i].Type = names[i]
	}
	return out, nil
}

// catalogSchema is the table's shape as read from the catalog (the same
// columns pgoutput announces: loadTable leaves out generated columns).
func (t *Table) catalogSchema() []SchemaColumn {
	key := make(map[int]bool, len(t.Key))
	for _, k := range t.Key {
		key[k] = true
	}
	out := make([]SchemaColumn, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = SchemaColumn{Name: c.Name, TypeOID: c.TypeOID, TypeMod: c.TypeMod, Key: key[i]}
	}
	return out
}

// registerSnapshotSchema records the catalog shape of t for a snapshot
// whose rows carry version pos, and remembers it for the snapshot's events.
func (s *Source) registerSnapshotSchema(ctx context.Context, conn *pgx.Conn, t *Table, pos pglogrepl.LSN) error {
	ref, err := s.recordSchema(ctx, conn, t, t.catalogSchema(), pos)
	if err != nil {
		return err
	}
	t.schemaMu.Lock()
	t.snapshotSchema = ref
	t.schemaMu.Unlock()
	return nil
}

// snapshotSchemaRef is the SchemaRef snapshot rows of t carry.
func (t *Table) snapshotSchemaRef() *event.SchemaRef {
	t.schemaMu.Lock()
	defer t.schemaMu.Unlock()
	return t.snapshotSchema
}
