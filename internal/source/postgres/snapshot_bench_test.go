package postgres

import (
	"testing"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// BenchmarkSnapshotRow is the per-row work of a snapshot before the bus: a
// row of text values (the shop's customers table) decoded into an event
// and encoded as the emitter does.
func BenchmarkSnapshotRow(b *testing.B) {
	s := &Source{types: pgdecode.NewTypes(), opts: Options{SourceName: "shop"}}
	t := &Table{Schema: "public", Name: "customers", Key: []int{0}, Columns: []Column{
		{Name: "id", TypeOID: 20}, {Name: "email", TypeOID: 25}, {Name: "name", TypeOID: 25},
		{Name: "created_at", TypeOID: 1184}, {Name: "balance", TypeOID: 1700}, {Name: "tags", TypeOID: 1009},
		{Name: "profile", TypeOID: 3802}, {Name: "active", TypeOID: 16},
	}}
	row := [][]byte{
		[]byte("123456"), []byte("user123456@example.com"), []byte("Customer 123456"),
		[]byte("2023-11-05 10:17:32.25+00"), []byte("4567.14"), []byte("{tag1,vip0}"),
		[]byte(`{"age": 42, "city": "City 17", "prefs": ["p0", "x"]}`), []byte("t"),
	}
	origin := &event.Origin{Source: "shop", Kind: "postgres", Database: "shop", Schema: "public", Table: "customers"}
	schema := &event.SchemaRef{Id: "shop.public.customers", Version: 1}
	buf := make([]byte, 0, 4096)
	var rb rowBuilder
	b.ReportAllocs()
	for b.Loop() {
		ev, err := rb.build(s, t, row)
		if err != nil {
			b.Fatal(err)
		}
		ev.Op = event.Op_OP_SNAPSHOT
		ev.Origin = origin
		ev.Schema = schema
		ev.Version = 0x1A2B3C4D
		ev.Position = "0/1A2B3C4D"
		size := ev.SizeVT()
		buf = buf[:size]
		if _, err := ev.MarshalToSizedBufferVT(buf); err != nil {
			b.Fatal(err)
		}
	}
}
