package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// randomString is a column name or a text: empty, plain, needing JSON
// escapes, invalid UTF-8, or any bytes.
func randomString(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return ""
	case 1:
		return "quote\" backslash\\ newline\n tab\t ctl\x01\x1f del\x7f"
	case 2:
		return "bad \xff\xfe utf8 \xe2\x82 end"
	case 3:
		return "line sep \u2028 para \u2029 é 日本 🙂"
	case 4:
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	default:
		return fmt.Sprint("plain text long enough for the eight-byte loop ", r.Int())
	}
}

// randomValue returns a value of any kind, edge values included; lists and
// documents nest up to depth levels.
func randomValue(r *rand.Rand, depth int) *Value {
	pick := func(n int) int { return r.IntN(n) }
	switch pick(18) {
	case 0:
		return Null()
	case 1:
		return Bool(pick(2) == 0)
	case 2:
		return Int([]int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 53, r.Int64() - r.Int64()}[pick(7)])
	case 3:
		return Uint([]uint64{0, 1, math.MaxUint64, r.Uint64()}[pick(4)])
	case 4:
		return Float([]float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 1e21, 1e-7, 2, -3.5,
			math.MaxFloat64, math.SmallestNonzeroFloat64, r.NormFloat64() * math.Pow(10, float64(pick(50)-25))}[pick(12)])
	case 5:
		return Decimal([]string{"0", "-12.3400", "NaN", "Infinity", "-Infinity", "1e5", "", "01", "1.", "-", "12345678901234567890.5",
			fmt.Sprint(r.IntN(100000), ".", r.IntN(100))}[pick(12)])
	case 6:
		return Text(randomString(r))
	case 7:
		b := make([]byte, pick(20))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return Bytes(b)
	case 8:
		switch pick(4) {
		case 0:
			return TimestampValue(&Timestamp{Infinity: int32(pick(3) - 1)})
		case 1:
			return TimestampValue(&Timestamp{}) // an empty message
		default:
			// Beyond year 9999 and before year 0 too.
			return TimestampValue(&Timestamp{UnixMicros: r.Int64N(1<<60) - 1<<59, Local: pick(2) == 0})
		}
	case 9:
		if pick(3) == 0 {
			return DateValue(&Date{Infinity: int32(pick(3) - 1)})
		}
		return DateValue(&Date{Days: int32(r.IntN(1<<24) - 1<<23)})
	case 10:
		t := &Time{Micros: r.Int64N(86_400_000_001)}
		if pick(2) == 0 {
			t.HasOffset, t.OffsetSeconds = true, int32(pick(100_000)-50_000)
		}
		return TimeValue(t)
	case 11:
		return IntervalValue(&Interval{Months: int32(pick(2000) - 1000), Days: int32(pick(2000) - 1000), Micros: r.Int64() - r.Int64()})
	case 12:
		return JSON([]string{"", `{"a":[1,2,{"b":null}]}`, "[1,2]", "null", `"s"`, "1.5"}[pick(6)])
	case 13:
		b := make([]byte, []int{16, 16, 0, 3}[pick(4)])
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return UUID(b)
	case 14:
		if depth == 0 {
			return Int(0)
		}
		var vs []*Value
		for range pick(5) {
			vs = append(vs, randomValue(r, depth-1)) // nested lists, NULLs
		}
		return ListValue(vs)
	case 15:
		if depth == 0 {
			return Text("")
		}
		return DocumentValue(randomRow(r, depth-1, pick(4) != 0))
	case 16:
		return Text("") // present, though zero
	default:
		return Int(0)
	}
}

// randomRow returns a row of up to 7 columns, named (an empty name now and
// then) or not, some without a value.
func randomRow(r *rand.Rand, depth int, named bool) *Row {
	row := &Row{}
	for range r.IntN(8) {
		c := &Column{Value: randomValue(r, depth)}
		if named && r.IntN(8) != 0 {
			c.Name = randomString(r)
		}
		if r.IntN(12) == 0 {
			c.Value = nil
		}
		row.Columns = append(row.Columns, c)
	}
	return row
}

// renderDecoded is what the sink rendered before the fast path: the
// generated decoding, named as (*Batch).Expand names it.
func renderDecoded(b, enc []byte, names []string) ([]byte, error) {
	row := &Row{}
	if err := row.UnmarshalVT(enc); err != nil {
		return nil, err
	}
	nameColumns(row, names)
	return AppendRowJSON(b, row), nil
}

// checkEncodedRowJSON compares the fast path with renderDecoded on enc,
// after a prefix that must survive. mustRender: enc is an ordinary
// encoding, which the fast path must not refuse.
func checkEncodedRowJSON(t *testing.T, what string, enc []byte, names []string, mustRender bool) {
	t.Helper()
	prefix := []byte(`{"index":{}}` + "\n")
	b := append(make([]byte, 0, len(prefix)+7), prefix...)
	got, ok := AppendEncodedRowJSON(b, enc, names)
	want, err := renderDecoded(bytes.Clone(prefix), enc, names)
	switch {
	case !ok && mustRender:
		t.Fatalf("%s: refused %x (names %q)", what, enc, names)
	case !ok:
		if len(got) != len(prefix) || !bytes.Equal(got, prefix) {
			t.Fatalf("%s: refused, but returned %q, not the prefix", what, got)
		}
	case err != nil:
		t.Fatalf("%s: rendered %q from %x, which the generated decoder refuses: %v", what, got, enc, err)
	case !bytes.Equal(got, want):
		t.Fatalf("%s: %x (names %q):\n got %s\nwant %s", what, enc, names, got, want)
	}
}

// The fast path renders every kind of value, row and naming exactly as
// AppendRowJSON renders the generated decoding, and a damaged encoding
// either the same way or not at all.
func TestAppendEncodedRowJSONMatchesDecoded(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	namesOf := func(n int) []string {
		names := make([]string, n)
		for i := range names {
			names[i] = randomString(r)
		}
		return names
	}
	for i := range 20000 {
		var row *Row
		var names []string
		switch mode := r.IntN(5); mode {
		case 0: // by position, as the emitter encodes a batch's rows
			row = randomRow(r, 3, false)
			names = namesOf(len(row.Columns))
		case 1: // by name, no template
			row = randomRow(r, 3, true)
		case 2: // by name, in a batch with a template (positional if the first name is empty)
			row = randomRow(r, 3, true)
			names = namesOf(len(row.Columns))
		case 3: // no names, a template of another length: the columns keep ""
			row = randomRow(r, 3, false)
			names = namesOf(len(row.Columns) + 1 + r.IntN(2))
		default: // first column unnamed, others named: all take the template's names
			row = randomRow(r, 3, true)
			if len(row.Columns) > 0 {
				row.Columns[0].Name = ""
			}
			names = namesOf(len(row.Columns))
		}
		enc, err := row.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprint("row ", i)
		checkEncodedRowJSON(t, what, enc, names, true)
		// Every string is escaped and the generator's JSON texts are
		// valid, so the rendering is JSON.
		if got, _ := AppendEncodedRowJSON(nil, enc, names); !json.Valid(got) {
			t.Fatalf("%s: invalid JSON %s", what, got)
		}
		if len(enc) > 0 {
			checkEncodedRowJSON(t, what+" cut", enc[:r.IntN(len(enc))], names, false)
			bad := bytes.Clone(enc)
			bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
			checkEncodedRowJSON(t, what+" damaged", bad, names, false)
		}
	}
}

// Shapes MarshalVT does not write but other encoders may: fields out of
// order, an empty column, an empty value, zero values present.
func TestAppendEncodedRowJSONShapes(t *testing.T) {
	varint := func(num protowire.Number, x uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), x)
	}
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), bytes.Join(parts, nil))
	}
	fixed := func(num protowire.Number, x uint64) []byte {
		return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), x)
	}
	str := func(num protowire.Number, s string) []byte { return msg(num, []byte(s)) }
	cases := []struct {
		name  string
		enc   []byte
		names []string
		want  string
	}{
		{"empty row", nil, nil, `{}`},
		{"empty row, template", nil, []string{"a"}, `{}`},
		{"empty column", msg(1), nil, `{"":null}`},
		{"empty column, by position", msg(1), []string{"id"}, `{"id":null}`},
		{"empty value", msg(1, str(1, "a"), msg(2)), nil, `{"a":null}`},
		{"value before name", msg(1, msg(2, varint(2, 2)), str(1, "a")), nil, `{"a":1}`},
		{"zero int present", msg(1, str(1, "a"), msg(2, varint(2, 0))), nil, `{"a":0}`},
		{"empty text present", msg(1, str(1, "a"), msg(2, str(6, ""))), nil, `{"a":""}`},
		{"false present", msg(1, str(1, "a"), msg(2, varint(1, 0))), nil, `{"a":false}`},
		{"bool 2 is true", msg(1, str(1, "a"), msg(2, varint(1, 2))), nil, `{"a":true}`},
		{"zero float present", msg(1, str(1, "a"), msg(2, fixed(4, 0))), nil, `{"a":0.0}`},
		{"empty json is null", msg(1, str(1, "a"), msg(2, str(12, ""))), nil, `{"a":null}`},
		{"empty timestamp", msg(1, str(1, "a"), msg(2, msg(8))), nil, `{"a":"1970-01-01T00:00:00Z"}`},
		{"empty interval", msg(1, str(1, "a"), msg(2, msg(11))), nil, `{"a":"PT0S"}`},
		{"list of empty values", msg(1, str(1, "a"), msg(2, msg(14, msg(1), msg(1, varint(3, 7))))), nil, `{"a":[null,7]}`},
		{"empty document", msg(1, str(1, "a"), msg(2, msg(15))), nil, `{"a":{}}`},
		{"document keeps its names", msg(1, msg(2, msg(15, msg(1, msg(2, varint(2, 4)))))), []string{"d"}, `{"d":{"":2}}`},
		{"empty name is no name", msg(1, str(1, ""), msg(2, varint(2, 2))), []string{"id"}, `{"id":1}`},
		{"named first column", msg(1, str(1, "x")), []string{"id"}, `{"x":null}`},
		{"long varint forms", msg(1, str(1, "a"), msg(2, []byte{2 << 3, 0x82, 0x80, 0x00})), nil, `{"a":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := AppendEncodedRowJSON([]byte("> "), c.enc, c.names)
			if !ok || string(got) != "> "+c.want {
				t.Fatalf("got %q, %v; want %q", got, ok, "> "+c.want)
			}
			checkEncodedRowJSON(t, c.name, c.enc, c.names, true)
		})
	}
}

// What the fast path does not read, it refuses, leaving b as it was: the
// caller then decodes the row.
func TestAppendEncodedRowJSONRefuses(t *testing.T) {
	varint := func(num protowire.Number, x uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), x)
	}
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), bytes.Join(parts, nil))
	}
	column := func(value []byte) []byte { return msg(1, msg(1, []byte("a")), msg(2, value)) }
	good, err := (&Row{Columns: []*Column{{Name: "id", Value: Int(1)}, {Name: "t", Value: TimestampValue(&Timestamp{UnixMicros: 5})}}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		enc      []byte
		accepted bool // by the generated decoder
	}{
		{"truncated", good[:len(good)-1], false},
		{"truncated tag", append(bytes.Clone(good), 0x80), false},
		{"unknown row field", append(bytes.Clone(good), varint(2, 1)...), true},
		{"unknown column field", msg(1, varint(3, 1)), true},
		{"unknown value field", column(varint(16, 1)), true},
		{"unknown timestamp field", column(msg(8, varint(4, 1))), true},
		{"group wire type", append(bytes.Clone(good), protowire.AppendTag(nil, 5, protowire.StartGroupType)...), false},
		{"value with two kinds", column(append(varint(2, 4), msg(6, []byte("x"))...)), true},
		{"int twice", column(append(varint(2, 4), varint(2, 6)...)), true},
		{"timestamp twice", column(append(msg(8, varint(1, 5)), msg(8, varint(2, 1))...)), true},
		{"timestamp field twice", column(msg(8, varint(1, 5), varint(1, 6))), true},
		{"interval field twice", column(msg(11, varint(2, 5), varint(2, 6))), true},
		{"column name twice", msg(1, msg(1, []byte("a")), msg(1, []byte("b"))), true},
		{"column value twice", msg(1, msg(2, varint(2, 4)), msg(2, varint(3, 4))), true},
		{"int as bytes", column(msg(2, []byte{1})), false},
		{"float as varint", column(varint(4, 1)), false},
		{"date as varint", column(varint(9, 1)), false},
		{"row field as varint", varint(1, 1), false},
		{"list with an unknown field", column(msg(14, varint(2, 1))), true},
		{"list value with two kinds", column(msg(14, msg(1, varint(1, 1), varint(2, 2)))), true},
		{"document with two kinds", column(msg(15, column(append(varint(1, 1), varint(2, 2)...)))), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append(make([]byte, 0, 64), "prefix"...)
			got, ok := AppendEncodedRowJSON(b, c.enc, []string{"x"})
			if ok || string(got) != "prefix" {
				t.Fatalf("got %q, %v; want the prefix alone, refused", got, ok)
			}
			if _, err := renderDecoded(nil, c.enc, nil); (err == nil) != c.accepted {
				t.Fatalf("generated decoder: error %v, accepted %v expected", err, c.accepted)
			}
		})
	}
}

// The usual kinds render without allocating.
func TestAppendEncodedRowJSONAllocs(t *testing.T) {
	enc, names := benchRow()
	kinds, err := (&Row{Columns: []*Column{
		{Name: "d", Value: DateValue(&Date{Days: 19000})}, {Name: "t", Value: TimeValue(&Time{Micros: 5, HasOffset: true, OffsetSeconds: 3600})},
		{Name: "i", Value: IntervalValue(&Interval{Months: 3, Micros: 7})}, {Name: "u", Value: UUID(make([]byte, 16))},
		{Name: "b", Value: Bytes([]byte("abc"))}, {Name: "l", Value: ListValue([]*Value{Int(1), Null(), ListValue(nil)})},
		{Name: "doc", Value: DocumentValue(&Row{Columns: []*Column{{Name: "n", Value: Uint(2)}}})}, {Name: "n"},
	}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	for _, c := range []struct {
		enc   []byte
		names []string
	}{{enc, names}, {kinds, nil}} {
		var ok bool
		if allocs := testing.AllocsPerRun(100, func() { _, ok = AppendEncodedRowJSON(buf, c.enc, c.names) }); allocs != 0 || !ok {
			t.Errorf("%.0f allocations (ok %v), want none", allocs, ok)
		}
	}
}

func FuzzAppendEncodedRowJSON(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 20 {
		row := randomRow(r, 2, r.IntN(2) == 0)
		enc, _ := row.MarshalVT()
		f.Add(enc, uint8(len(row.Columns)))
	}
	enc, _ := benchRow()
	f.Add(enc, uint8(8))
	// names: the first n%8 of a template (none for 0), so that the fuzzer
	// finds rows encoded by position for it.
	template := []string{"id", "email", "", "quo\"te", "bad\xff", "f", "g", "h"}
	f.Fuzz(func(t *testing.T, enc []byte, n uint8) {
		var names []string
		if n%8 != 0 {
			names = template[:n%8]
		}
		checkEncodedRowJSON(t, "fuzz", enc, names, false)
	})
}

// benchRow is a row of a users table as a snapshot publishes it: by
// position, the names in the batch.
func benchRow() ([]byte, []string) {
	names := []string{"id", "email", "name", "created_at", "balance", "score", "active", "prefs"}
	row := &Row{Columns: []*Column{
		{Value: Int(123456789)},
		{Value: Text("jane.doe@example.com")},
		{Value: Text("Jane \"JD\" Doe")},
		{Value: TimestampValue(&Timestamp{UnixMicros: 1_700_000_000_123_456})},
		{Value: Decimal("1234.50")},
		{Value: Float(0.875)},
		{Value: Bool(true)},
		{Value: JSON(`{"theme":"dark","lang":"en"}`)},
	}}
	enc, err := row.MarshalVT()
	if err != nil {
		panic(err)
	}
	return enc, names
}

func BenchmarkAppendEncodedRowJSON(b *testing.B) {
	enc, names := benchRow()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		if buf, ok = AppendEncodedRowJSON(buf[:0], enc, names); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkAppendRowJSONDecoded renders the row as the sink did before:
// decoded by the generated decoder, or by a reused Decoder in a batch of
// 256 such rows (an op is the batch; ns/row is per row), then AppendRowJSON.
func BenchmarkAppendRowJSONDecoded(b *testing.B) {
	enc, names := benchRow()
	b.Run("generated", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			row := &Row{}
			if err := row.UnmarshalVT(enc); err != nil {
				b.Fatal(err)
			}
			nameColumns(row, names)
			buf = AppendRowJSON(buf[:0], row)
		}
	})
	b.Run("decoder", func(b *testing.B) {
		const rows = 256
		batch := &Batch{Columns: names}
		for range rows {
			row := &Row{}
			if err := row.UnmarshalVT(enc); err != nil {
				b.Fatal(err)
			}
			batch.Events = append(batch.Events, &Event{Op: Op_OP_SNAPSHOT, After: row})
		}
		data, err := batch.MarshalVT()
		if err != nil {
			b.Fatal(err)
		}
		var d Decoder
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			bt, err := d.Decode(data)
			if err != nil {
				b.Fatal(err)
			}
			bt.Expand()
			for _, ev := range bt.Events {
				buf = AppendRowJSON(buf[:0], ev.After)
			}
			d.Reset()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	})
}
