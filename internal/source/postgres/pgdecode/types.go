package pgdecode

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query; *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it. It
// must be a regular (not a replication) connection. Load closes the rows it
// gets.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Types resolves type OIDs to decoders. Built-in types are known statically;
// others (enums, domains, arrays of those, composite types, ranges,
// extension types such as citext and hstore) are looked up in pg_type by
// Load and cached. An OID that was never loaded decodes as text.
//
// Types is safe for concurrent use: Decode reads an immutable snapshot of
// the cache (no locks on the hot path); Load and Forget replace it.
type Types struct {
	mu  sync.Mutex // serialises Load and Forget
	dyn atomic.Pointer[map[uint32]*typeInfo]
}

// NewTypes returns a Types that knows the built-in types.
func NewTypes() *Types {
	t := &Types{}
	m := map[uint32]*typeInfo{}
	t.dyn.Store(&m)
	return t
}

// lookup returns the type of oid, or nil when it is unknown.
func (t *Types) lookup(oid uint32) *typeInfo {
	if oid < uint32(len(builtinByOID)) {
		if ti := builtinByOID[oid]; ti != nil {
			return ti
		}
	} else if ti := builtinTypes[oid]; ti != nil {
		return ti
	}
	return (*t.dyn.Load())[oid]
}

// builtinByOID indexes the built-in types with small OIDs (nearly every
// column's type) without a map lookup per value.
var builtinByOID = func() (a [4096]*typeInfo) {
	for oid, ti := range builtinTypes {
		if oid < uint32(len(a)) {
			a[oid] = ti
		}
	}
	return a
}()

// Known reports whether oid is a built-in or loaded type.
func (t *Types) Known(oid uint32) bool { return t.lookup(oid) != nil }

// TypeName returns a readable name for error messages and docs: "int8",
// "_text", "mood (enum)", "posint (domain)", "complex (composite)", or
// "oid 16384 (not loaded)" for an OID that Load did not resolve.
func (t *Types) TypeName(oid uint32) string {
	if ti := t.lookup(oid); ti != nil {
		return ti.label
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10) + " (not loaded)"
}

// Forget drops the cached descriptions of the given OIDs (for example after
// ALTER TYPE changed a composite type's attributes, which pgoutput announces
// with a Type/Relation message), so that the next Load looks them up again.
// Built-in types cannot be forgotten.
func (t *Types) Forget(oids ...uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.dyn.Load()
	next := make(map[uint32]*typeInfo, len(cur))
	for k, v := range cur {
		next[k] = v
	}
	for _, oid := range oids {
		delete(next, oid)
	}
	t.dyn.Store(&next)
}

const typeQuery = `SELECT t.oid, t.typname::text, n.nspname::text, t.typtype::text, t.typcategory::text,
       t.typbasetype, t.typelem, t.typdelim::text, t.typrelid
  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE t.oid = ANY($1::pg_catalog.oid[])`

const attrQuery = `SELECT a.attrelid, a.attname::text, a.atttypid
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = ANY($1::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum`

// maxLoadRounds bounds how deep Load follows type dependencies (domain ->
// base, array -> element, composite -> attribute types).
const maxLoadRounds = 32

// Load looks up the given OIDs that are not yet known in pg_type, and the
// types they depend on: domains resolve to their base type, arrays to their
// element type (and delimiter), composite types to their attributes
// (pg_attribute of typrelid). Call it with all column type OIDs of a table
// before decoding its rows; known OIDs cost nothing. OIDs that do not exist
// stay unknown and decode as text.
func (t *Types) Load(ctx context.Context, q Querier, oids ...uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.dyn.Load()
	found := map[uint32]*typeInfo{}
	asked := map[uint32]bool{}
	needed := func(oid uint32) bool {
		return oid != 0 && builtinTypes[oid] == nil && cur[oid] == nil && found[oid] == nil && !asked[oid]
	}
	var pending []uint32
	add := func(oid uint32) {
		if needed(oid) {
			asked[oid] = true
			pending = append(pending, oid)
		}
	}
	for _, oid := range oids {
		add(oid)
	}
	for round := 0; len(pending) > 0; round++ {
		if round == maxLoadRounds {
			return fmt.Errorf("loading types: dependencies nested deeper than %d", maxLoadRounds)
		}
		infos, relids, err := queryTypes(ctx, q, pending)
		if err != nil {
			return err
		}
		pending = pending[:0]
		if len(relids) > 0 {
			if err := queryAttributes(ctx, q, relids); err != nil {
				return err
			}
		}
		for _, ti := range infos {
			found[ti.oid] = ti
		}
		for _, ti := range infos {
			add(ti.base)
			add(ti.elem)
			for _, f := range ti.fieldTypes {
				add(f)
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	next := make(map[uint32]*typeInfo, len(cur)+len(found))
	for k, v := range cur {
		next[k] = v
	}
	for k, v := range found {
		next[k] = v
	}
	t.dyn.Store(&next)
	return nil
}

// queryTypes describes oids from pg_type; relids maps composite types'
// typrelid to their OID.
func queryTypes(ctx context.Context, q Querier, oids []uint32) ([]*typeInfo, map[uint32]*typeInfo, error) {
	rows, err := q.Query(ctx, typeQuery, oids)
	if err != nil {
		return nil, nil, fmt.Errorf("loading types from pg_type: %w", err)
	}
	defer rows.Close()
	var infos []*typeInfo
	relids := map[uint32]*typeInfo{}
	for rows.Next() {
		var (
			oid, base, elem, relid           uint32
			name, nsp, typtype, categ, delim string
		)
		if err := rows.Scan(&oid, &name, &nsp, &typtype, &categ, &base, &elem, &delim, &relid); err != nil {
			return nil, nil, fmt.Errorf("loading types from pg_type: %w", err)
		}
		ti := describe(oid, name, nsp, typtype, categ, base, elem, delim)
		if ti.kind == kindComposite {
			relids[relid] = ti
		}
		infos = append(infos, ti)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("loading types from pg_type: %w", err)
	}
	return infos, relids, nil
}

// describe builds the typeInfo of a pg_type row.
func describe(oid uint32, name, nsp, typtype, categ string, base, elem uint32, delim string) *typeInfo {
	typname := name
	if nsp != "public" && nsp != "pg_catalog" && nsp != "" {
		name = nsp + "." + name
	}
	ti := &typeInfo{oid: oid, name: name, label: name, kind: kindText, delim: ','}
	if len(delim) == 1 {
		ti.delim = delim[0]
	}
	switch typtype {
	case "d":
		ti.kind, ti.base = kindDomain, base
		ti.label = name + " (domain)"
	case "e":
		ti.label = name + " (enum)"
	case "c":
		ti.kind = kindComposite
		ti.label = name + " (composite)"
	case "r":
		ti.label = name + " (range)"
	case "m":
		ti.label = name + " (multirange)"
	case "p":
		ti.label = name + " (pseudo-type)"
	case "b":
		switch {
		case categ == "A" && elem != 0:
			ti.kind, ti.elem = kindArray, elem
		case typname == "hstore":
			ti.kind = kindHstore
		}
		// citext and other extension base types decode as text.
	}
	return ti
}

func queryAttributes(ctx context.Context, q Querier, relids map[uint32]*typeInfo) error {
	ids := make([]uint32, 0, len(relids))
	for id := range relids {
		ids = append(ids, id)
	}
	rows, err := q.Query(ctx, attrQuery, ids)
	if err != nil {
		return fmt.Errorf("loading composite type attributes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var relid, typ uint32
		var name string
		if err := rows.Scan(&relid, &name, &typ); err != nil {
			return fmt.Errorf("loading composite type attributes: %w", err)
		}
		if ti := relids[relid]; ti != nil {
			ti.fieldNames = append(ti.fieldNames, name)
			ti.fieldTypes = append(ti.fieldTypes, typ)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading composite type attributes: %w", err)
	}
	return nil
}
