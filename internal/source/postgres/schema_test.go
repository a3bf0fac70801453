package postgres

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

func cols(spec ...any) []SchemaColumn {
	var out []SchemaColumn
	for i := 0; i < len(spec); i += 3 {
		c := SchemaColumn{Name: spec[i].(string), TypeOID: uint32(spec[i+1].(int)), TypeMod: -1, Key: spec[i+2].(bool)}
		out = append(out, c)
	}
	return out
}

// The fingerprint depends on every column's name, type OID, type modifier,
// key flag and position, and on nothing else (not the type's rendering).
func TestFingerprint(t *testing.T) {
	base := cols("id", 20, true, "name", 25, false, "qty", 23, false)
	fp := Fingerprint(base)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q is not 32 hex digits", fp)
	}
	if again := Fingerprint(cols("id", 20, true, "name", 25, false, "qty", 23, false)); again != fp {
		t.Fatalf("same columns, different fingerprints: %s %s", fp, again)
	}
	named := slices.Clone(base)
	named[2].Type = "integer"
	if Fingerprint(named) != fp {
		t.Error("the type name changed the fingerprint: it must depend on OID and modifier only")
	}
	variants := map[string]func(c []SchemaColumn) []SchemaColumn{
		"renamed": func(c []SchemaColumn) []SchemaColumn { c[1].Name = "title"; return c },
		"retyped": func(c []SchemaColumn) []SchemaColumn { c[2].TypeOID = 20; return c },
		"typmod":  func(c []SchemaColumn) []SchemaColumn { c[1].TypeMod = 24; return c },
		"key":     func(c []SchemaColumn) []SchemaColumn { c[1].Key = true; return c },
		"added": func(c []SchemaColumn) []SchemaColumn {
			return append(c, SchemaColumn{Name: "x", TypeOID: 25, TypeMod: -1})
		},
		"dropped":      func(c []SchemaColumn) []SchemaColumn { return c[:2] },
		"reordered":    func(c []SchemaColumn) []SchemaColumn { c[1], c[2] = c[2], c[1]; return c },
		"name/type ab": func(c []SchemaColumn) []SchemaColumn { c[1].Name = "name2"; c[1].TypeOID = 5; return c },
	}
	seen := map[string]string{fp: "base"}
	for name, f := range variants {
		got := Fingerprint(f(slices.Clone(base)))
		if prev, dup := seen[got]; dup {
			t.Errorf("%s has the same fingerprint as %s", name, prev)
		}
		seen[got] = name
	}
	// Separators keep names and numbers apart: "a1"+oid 5 is not "a"+oid 15.
	if Fingerprint([]SchemaColumn{{Name: "a1", TypeOID: 5}}) == Fingerprint([]SchemaColumn{{Name: "a", TypeOID: 15}}) {
		t.Error("ambiguous encoding: a1/5 and a/15 collide")
	}
}

func TestDiffSchemas(t *testing.T) {
	base := cols("id", 20, true, "name", 25, false, "qty", 23, false)
	tests := []struct {
		name string
		cur  []SchemaColumn
		want SchemaDiff
	}{
		{"same", base, SchemaDiff{}},
		{"add column", cols("id", 20, true, "name", 25, false, "qty", 23, false, "note", 25, false), SchemaDiff{Added: []string{"note"}}},
		{"drop column", cols("id", 20, true, "qty", 23, false), SchemaDiff{Dropped: []string{"name"}}},
		{"rename column", cols("id", 20, true, "title", 25, false, "qty", 23, false), SchemaDiff{Renamed: []string{"name -> title"}}},
		{"type change", cols("id", 20, true, "name", 25, false, "qty", 20, false), SchemaDiff{TypeChanged: []string{"qty: oid 23 typmod -1 -> oid 20 typmod -1"}}},
		{"rename to a different type is drop + add", cols("id", 20, true, "title", 1043, false, "qty", 23, false), SchemaDiff{Added: []string{"title"}, Dropped: []string{"name"}}},
		{"key change", cols("id", 20, true, "name", 25, true, "qty", 23, false), SchemaDiff{KeyChanged: []string{"name"}}},
		{"drop and add at the end", cols("id", 20, true, "qty", 23, false, "name2", 25, false), SchemaDiff{Added: []string{"name2"}, Dropped: []string{"name"}}},
		{"reordered", cols("id", 20, true, "qty", 23, false, "name", 25, false), SchemaDiff{Reordered: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DiffSchemas(base, tt.cur)
			if !slices.Equal(got.Added, tt.want.Added) || !slices.Equal(got.Dropped, tt.want.Dropped) ||
				!slices.Equal(got.Renamed, tt.want.Renamed) || !slices.Equal(got.TypeChanged, tt.want.TypeChanged) ||
				!slices.Equal(got.KeyChanged, tt.want.KeyChanged) || got.Reordered != tt.want.Reordered {
				t.Fatalf("diff = %+v, want %+v", got, tt.want)
			}
			if got.Empty() != (tt.name == "same") {
				t.Fatalf("Empty() = %v", got.Empty())
			}
		})
	}
	named := DiffSchemas([]SchemaColumn{{Name: "qty", TypeOID: 23, TypeMod: -1, Type: "integer"}}, []SchemaColumn{{Name: "qty", TypeOID: 25, TypeMod: -1, Type: "text"}})
	if !slices.Equal(named.TypeChanged, []string{"qty: integer -> text"}) {
		t.Fatalf("type change with names = %q", named.TypeChanged)
	}
}

func lsn(n uint64) string { return pglogrepl.LSN(n).String() }

// A history numbers versions, keeps the last MaxSchemaVersions, and
// matches a shape to the latest version or, when WAL from before the
// latest version is replayed, to the version in effect at that position.
func TestSchemaHistory(t *testing.T) {
	var h SchemaHistory
	if h.find("a", 10) != nil {
		t.Fatal("empty history matched")
	}
	h.add(SchemaVersion{Fingerprint: "a", FirstPosition: lsn(100)})
	h.add(SchemaVersion{Fingerprint: "b", FirstPosition: lsn(200)})
	h.add(SchemaVersion{Fingerprint: "c", FirstPosition: lsn(300)})
	check := func(fp string, pos uint64, want uint32) {
		t.Helper()
		v := h.find(fp, pglogrepl.LSN(pos))
		var got uint32
		if v != nil {
			got = v.Version
		}
		if got != want {
			t.Errorf("find(%s, %d) = version %d, want %d", fp, pos, got, want)
		}
	}
	check("c", 50, 3)  // the latest matches anywhere
	check("c", 350, 3) // ordinary streaming
	check("a", 150, 1) // replay: a was in effect at 150
	check("b", 250, 2) // replay: b was in effect at 250
	check("a", 250, 0) // a was not in effect at 250: a new shape (b -> a again)
	check("b", 350, 0) // after c, b again is a new version
	check("d", 150, 0)

	for i := range 2 * MaxSchemaVersions {
		h.add(SchemaVersion{Fingerprint: "x" + strconv.Itoa(i), FirstPosition: lsn(uint64(400 + i))})
	}
	if len(h.Versions) != MaxSchemaVersions {
		t.Fatalf("history holds %d versions, want %d", len(h.Versions), MaxSchemaVersions)
	}
	if last := h.Versions[len(h.Versions)-1].Version; last != 3+2*MaxSchemaVersions {
		t.Fatalf("last version = %d, want %d (numbers keep growing after trimming)", last, 3+2*MaxSchemaVersions)
	}
	for i := 1; i < len(h.Versions); i++ {
		if h.Versions[i].Version != h.Versions[i-1].Version+1 {
			t.Fatalf("versions not consecutive at %d: %d after %d", i, h.Versions[i].Version, h.Versions[i-1].Version)
		}
	}
}

// Keys are valid NATS KV keys and distinct for distinct names.
func TestSchemaKey(t *testing.T) {
	valid := regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	names := [][3]string{
		{"p", "public", "orders"},
		{"p", "public", "Orders"},
		{"p", "public.x", "y"},
		{"p", "public", "x.y"},
		{"p", "public", "x=2ey"},
		{"p", "public", "weird name"},
		{"p", "public", "ü"},
		{"p.q", "public", "orders"},
		{"p", "", "t"},
	}
	seen := map[string][3]string{}
	for _, n := range names {
		k := SchemaKey(n[0], n[1], n[2])
		if !valid.MatchString(k) || regexp.MustCompile(`\.\.|^\.|\.$`).MatchString(k) {
			t.Errorf("%q: key %q is not a valid KV key", n, k)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("%q and %q share key %q", n, prev, k)
		}
		seen[k] = n
	}
	if k := SchemaKey("shop", "public", "orders"); k != "schema.shop.public.orders" {
		t.Errorf("plain names: key %q, want schema.shop.public.orders", k)
	}
}

// The catalog shape flags tidegate's key columns, in table order.
func TestCatalogSchema(t *testing.T) {
	tb := &Table{Schema: "public", Name: "t", Columns: []Column{{"a", 23, -1}, {"b", 1043, 24}, {"c", 25, -1}}, Key: []int{2, 0}}
	got := tb.catalogSchema()
	want := []SchemaColumn{{Name: "a", TypeOID: 23, TypeMod: -1, Key: true}, {Name: "b", TypeOID: 1043, TypeMod: 24}, {Name: "c", TypeOID: 25, TypeMod: -1, Key: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("catalogSchema = %+v, want %+v", got, want)
	}
	rel := &relation{cols: tb.Columns, key: []int{2, 0}}
	if Fingerprint(rel.schemaColumns()) != Fingerprint(got) {
		t.Fatal("the stream's and the catalog's shape of the same table have different fingerprints: every restart would record a new version")
	}
}

// Configured tables not in the stored snapshot are to be added; tables no
// longer configured leave the covered list (so adding one back snapshots it
// again).
func TestUncoveredTables(t *testing.T) {
	s := &Source{}
	for _, n := range []string{"a", "b", "c"} {
		s.tables = append(s.tables, &Table{Schema: "public", Name: n})
	}
	st := &sourceState{Snapshot: &snapshotState{Complete: true, Tables: []*tableSnapshot{{Table: "public.a"}, {Table: "public.gone"}, {Table: "public.c"}}}}
	added, changed := s.uncoveredTables(st)
	if !slices.Equal(added, []string{"public.b"}) || !changed {
		t.Fatalf("added %q changed %v, want [public.b] true", added, changed)
	}
	var covered []string
	for _, ts := range st.Snapshot.Tables {
		covered = append(covered, ts.Table)
	}
	if !slices.Equal(covered, []string{"public.a", "public.c"}) {
		t.Fatalf("covered %q, want [public.a public.c]", covered)
	}
	if added, changed := s.uncoveredTables(&sourceState{Snapshot: &snapshotState{Tables: []*tableSnapshot{{Table: "public.a"}, {Table: "public.b"}, {Table: "public.c"}}}}); len(added) != 0 || changed {
		t.Fatalf("all covered: added %q changed %v", added, changed)
	}
}

// Key columns are found by name, or, for a renamed primary key column, by
// pgoutput's key flags in table order; anything else is a setup error.
func TestStreamKey(t *testing.T) {
	rc := func(spec ...any) []*pglogrepl.RelationMessageColumn {
		var out []*pglogrepl.RelationMessageColumn
		for i := 0; i < len(spec); i += 2 {
			c := &pglogrepl.RelationMessageColumn{Name: spec[i].(string), DataType: 23}
			if spec[i+1].(bool) {
				c.Flags = 1
			}
			out = append(out, c)
		}
		return out
	}
	// Table (a, x, b) with primary key (b, a): key order differs from table order.
	pk := &Table{Schema: "public", Name: "t", Columns: []Column{{"a", 23, -1}, {"x", 23, -1}, {"b", 23, -1}}, Key: []int{2, 0}, KeyIsPrimary: true}
	configured := &Table{Schema: "public", Name: "t", Columns: pk.Columns, Key: []int{2, 0}}
	tests := []struct {
		name string
		t    *Table
		cols []*pglogrepl.RelationMessageColumn
		want []int
	}{
		{"by name", pk, rc("a", true, "x", false, "b", true), []int{2, 0}},
		{"by name, new column first", pk, rc("n", false, "a", true, "x", false, "b", true), []int{3, 1}},
		{"renamed key column", pk, rc("a2", true, "x", false, "b", true), []int{2, 0}},
		{"both renamed, a column dropped", pk, rc("a2", true, "b2", true), []int{1, 0}},
		{"configured key by name", configured, rc("a", true, "x", true, "b", true), []int{2, 0}},
		{"configured key renamed", configured, rc("a2", true, "x", true, "b", true), nil},
		{"key dropped", pk, rc("x", false, "b", true), nil},
		{"flags do not match the key", pk, rc("a2", true, "x", true, "b", true), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.t.streamKey(tt.cols)
			if tt.want == nil {
				if err == nil || !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "public.t") {
					t.Fatalf("key %v, err %v: want a setup error naming the table", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("key %v, err %v; want %v", got, err, tt.want)
			}
		})
	}
}
