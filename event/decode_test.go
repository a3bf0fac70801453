package event

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// randomBatch builds a batch with every kind of value, rows with and
// without names, keys in and out of the rows, and the fields only the
// generated decoder reads (origin, meta, message-valued values).
func randomBatch(r *rand.Rand) *Batch {
	var value func() *Value
	value = func() *Value {
		switch r.IntN(16) {
		case 0:
			return Bool(r.IntN(2) == 0)
		case 1:
			return Int(r.Int64() - r.Int64())
		case 2:
			return &Value{Kind: &Value_Uint{Uint: r.Uint64()}}
		case 3:
			return &Value{Kind: &Value_Float{Float: r.NormFloat64()}}
		case 4:
			return Decimal(fmt.Sprint(r.IntN(100000), ".", r.IntN(100)))
		case 5:
			return Text(fmt.Sprint("text ", r.Int()))
		case 6:
			return &Value{Kind: &Value_Bytes{Bytes: []byte{byte(r.IntN(256)), 0, 1}}}
		case 7:
			return &Value{Kind: &Value_Json{Json: `{"a":1}`}}
		case 8:
			return &Value{Kind: &Value_Uuid{Uuid: []byte("0123456789abcdef")}}
		case 9:
			switch r.IntN(6) {
			case 4:
				return &Value{Kind: &Value_Time{Time: &Time{Micros: r.Int64N(86_400_000_000)}}}
			case 5:
				return &Value{Kind: &Value_Time{Time: &Time{Micros: r.Int64N(86_400_000_000), HasOffset: true, OffsetSeconds: int32(r.IntN(100_000) - 50_000)}}}
			case 0:
				return &Value{Kind: &Value_Timestamp{Timestamp: &Timestamp{UnixMicros: r.Int64N(1<<50) - 1<<49, Local: r.IntN(2) == 0}}}
			case 1:
				return &Value{Kind: &Value_Timestamp{Timestamp: &Timestamp{Infinity: int32(r.IntN(3) - 1)}}}
			case 2:
				return &Value{Kind: &Value_Date{Date: &Date{Days: int32(r.IntN(1<<20) - 1<<19)}}}
			default:
				return &Value{Kind: &Value_Date{Date: &Date{Infinity: int32(r.IntN(3) - 1)}}}
			}
		case 10:
			// Arrays: empty, with NULLs, nested (multi-dimensional), of
			// any kind.
			l := &List{}
			for range r.IntN(5) {
				l.Values = append(l.Values, value())
			}
			return &Value{Kind: &Value_List{List: l}}
		case 11:
			return &Value{Kind: &Value_Interval{Interval: &Interval{Months: int32(r.IntN(2000) - 1000), Days: int32(r.IntN(2000) - 1000), Micros: r.Int64() - r.Int64()}}}
		case 12:
			return Null()
		case 13:
			return Text("")
		default:
			return &Value{Kind: &Value_Document{Document: &Row{Columns: []*Column{{Name: "n", Value: Int(2)}}}}}
		}
	}
	names := []string{"id", "line", "body", "note", "price"}
	row := func(named bool) *Row {
		if r.IntN(10) == 0 {
			return &Row{}
		}
		cols := make([]*Column, 1+r.IntN(len(names)))
		for i := range cols {
			cols[i] = &Column{Value: value()}
			if named {
				cols[i].Name = names[i]
			}
			if r.IntN(20) == 0 {
				cols[i].Value = nil
			}
		}
		return &Row{Columns: cols}
	}
	b := &Batch{}
	if r.IntN(2) == 0 {
		b.Shared = &Event{Origin: &Origin{Source: "s", Schema: "public", Table: "t"}, Version: r.Uint64(), Position: "0/1"}
		b.Columns = names
		b.KeyColumns = []uint32{0, 1}
	}
	for range r.IntN(40) {
		ev := &Event{Op: Op(r.IntN(7))}
		if r.IntN(2) == 0 {
			ev.Id = fmt.Sprint("id-", r.Int())
		}
		if r.IntN(3) != 0 {
			ev.After = row(r.IntN(2) == 0)
		}
		if r.IntN(3) == 0 {
			ev.Before = row(r.IntN(2) == 0)
		}
		if r.IntN(2) == 0 {
			ev.Key = row(true).GetColumns()
		}
		if r.IntN(8) == 0 {
			ev.Unchanged = []string{"body", "note"}
		}
		if r.IntN(8) == 0 {
			ev.Origin = &Origin{Table: "other"}
		}
		if r.IntN(4) == 0 {
			// A later transaction's event in a batch of several.
			ev.Version, ev.Position, ev.CommitTimeUs, ev.TxId = r.Uint64(), "0/2", r.Int64()-r.Int64(), "7"
		}
		if r.IntN(16) == 0 {
			ev.Meta = map[string]string{"k": "v"}
		}
		b.Events = append(b.Events, ev)
	}
	return b
}

// UnmarshalBatch reads exactly what the generated decoder reads.
func TestUnmarshalBatchMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		data, err := randomBatch(r).MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		checkSameDecoding(t, fmt.Sprint("batch ", i), data)
		// Damaged copies: cut short, one byte changed.
		if len(data) > 0 {
			checkSameDecoding(t, fmt.Sprint("batch ", i, " cut"), data[:r.IntN(len(data))])
			bad := append([]byte{}, data...)
			bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
			checkSameDecoding(t, fmt.Sprint("batch ", i, " damaged"), bad)
		}
	}
}

// A reused Decoder decodes as the generated decoder does: several batches
// between Resets (all still correct once the last is decoded, so no two
// share memory), and batches after a Reset (nothing left over from the
// memory's previous use).
func TestDecoderReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var d Decoder
	for i := range 500 {
		var datas [][]byte
		var got []*Batch
		for range 1 + r.IntN(3) {
			data, err := randomBatch(r).MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			b, err := d.Decode(data)
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			datas, got = append(datas, data), append(got, b)
		}
		for j, data := range datas {
			want := &Batch{}
			if err := want.UnmarshalVT(data); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got[j], want) {
				t.Fatalf("round %d, batch %d: decoded differently:\n got %v\nwant %v", i, j, got[j], want)
			}
		}
		d.Reset()
	}
}

func FuzzUnmarshalBatch(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		data, _ := randomBatch(r).MarshalVT()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkSameDecoding(t, "fuzz", data) })
}

func checkSameDecoding(t *testing.T, what string, data []byte) {
	t.Helper()
	want := &Batch{}
	wantErr := want.UnmarshalVT(data)
	got, err := UnmarshalBatch(data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s: error %v, the generated decoder's %v", what, err, wantErr)
	}
	if err == nil && !proto.Equal(got, want) {
		t.Fatalf("%s: decoded differently:\n got %v\nwant %v", what, got, want)
	}
}

func BenchmarkUnmarshalBatch(b *testing.B) {
	data := snapshotBatch()
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var bt Batch
			if err := bt.UnmarshalVT(data); err != nil {
				b.Fatal(err)
			}
			bt.Expand()
		}
	})
	b.Run("slabs", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bt, err := UnmarshalBatch(data)
			if err != nil {
				b.Fatal(err)
			}
			bt.Expand()
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.ReportAllocs()
		var d Decoder
		for b.Loop() {
			bt, err := d.Decode(data)
			if err != nil {
				b.Fatal(err)
			}
			bt.Expand()
			d.Reset()
		}
	})
}

// snapshotBatch is 512 positional order_items rows, as the emitter
// publishes a snapshot.
func snapshotBatch() []byte {
	b := &Batch{Shared: &Event{Origin: &Origin{Source: "s", Schema: "public", Table: "order_items"}, Version: 7, Position: "0/7"},
		Columns: []string{"order_id", "line", "sku", "qty", "unit_price"}, KeyColumns: []uint32{0, 1}}
	for i := range 512 {
		b.Events = append(b.Events, &Event{Op: Op_OP_SNAPSHOT, After: &Row{Columns: []*Column{
			{Value: Int(int64(i))}, {Value: Int(3)}, {Value: Text(fmt.Sprint("SKU-", i))}, {Value: Int(2)}, {Value: Decimal("12.50")}}}})
	}
	data, _ := b.MarshalVT()
	return data
}

// A batch of one small event (a streamed transaction), decoded by a
// reused Decoder as the sink does, costs less than the generated decoder:
// slab chunks start small, and come back after Reset.
func TestUnmarshalBatchSmall(t *testing.T) {
	data, err := (&Batch{Shared: &Event{Version: 1}, Columns: []string{"id", "v"}, KeyColumns: []uint32{0},
		Events: []*Event{{Op: Op_OP_UPDATE, Id: "x", After: &Row{Columns: []*Column{{Value: Int(1)}, {Value: Text("a")}}}}}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	allocated := func(f func()) (bytes uint64, allocs float64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs = testing.AllocsPerRun(100, f)
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / 101, allocs
	}
	var d Decoder
	bytes, allocs := allocated(func() { _, _ = d.Decode(data); d.Reset() })
	genBytes, genAllocs := allocated(func() { _ = (&Batch{}).UnmarshalVT(data) })
	if bytes > genBytes/2 || allocs > genAllocs/2 {
		t.Errorf("one-event batch: %d bytes allocated (%.0f allocations), the generated decoder %d (%.0f)", bytes, allocs, genBytes, genAllocs)
	}
	// Once: chunks from 1 item up, not hundreds.
	bytes, _ = allocated(func() { _, _ = UnmarshalBatch(data) })
	if bytes > genBytes*2 {
		t.Errorf("one-event batch, once: %d bytes allocated, the generated decoder %d", bytes, genBytes)
	}
}

// Timestamps and dates on the fast path decode as the generated decoder
// does, also in shapes it merges or does not know: a message field given
// twice (merged), an unknown field inside, another kind before it.
func TestUnmarshalBatchTimestampEdges(t *testing.T) {
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		var inner []byte
		for _, p := range parts {
			inner = append(inner, p...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), inner)
	}
	varint := func(num protowire.Number, x uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), x)
	}
	batchOf := func(value []byte) []byte {
		// Batch.events[0].after.columns[0].value
		return msg(1, msg(10, msg(1, msg(2, value))))
	}
	cases := map[string][]byte{
		"timestamp":                    msg(8, varint(1, 1700000000000000), varint(2, 1)),
		"negative timestamp":           msg(8, varint(1, uint64(1<<64-5))),
		"infinite timestamp":           msg(8, varint(3, uint64(1<<64-1))),
		"date":                         msg(9, varint(1, uint64(1<<64-719000))),
		"infinite date":                msg(9, varint(2, 1)),
		"empty timestamp":              msg(8),
		"timestamp twice (merged)":     append(msg(8, varint(1, 5)), msg(8, varint(2, 1))...),
		"date then timestamp":          append(msg(9, varint(1, 3)), msg(8, varint(1, 5))...),
		"int then date":                append(varint(2, 4), msg(9, varint(1, 3))...),
		"unknown field in a timestamp": msg(8, varint(1, 5), varint(9, 1)),
		"wrong wire type in a date":    msg(9, msg(1)),
		"32-bit overflow in a date":    msg(9, varint(1, 1<<40+7)),
	}
	for name, value := range cases {
		checkSameDecoding(t, name, batchOf(value))
	}
}
