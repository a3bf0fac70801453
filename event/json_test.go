package event

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestAppendValueJSON(t *testing.T) {
	day := int64(86400 * 1_000_000)
	cases := []struct {
		name string
		v    *Value
		want string
	}{
		{"null", Null(), `null`},
		{"bool", Bool(true), `true`},
		{"int8 beyond 2^53", Int(9007199254740993), `9007199254740993`},
		{"int min", Int(math.MinInt64), `-9223372036854775808`},
		{"uint", Uint(math.MaxUint64), `18446744073709551615`},
		{"float", Float(1.5), `1.5`},
		{"float tiny", Float(1e-300), `1e-300`},
		{"float large plain", Float(16777216), `16777216.0`},
		{"float integral", Float(2), `2.0`},
		{"float integral negative", Float(-3), `-3.0`},
		{"float zero", Float(0), `0.0`},
		{"float max plain", Float(999999999999999900000), `999999999999999900000.0`},
		{"float 1e-6 plain", Float(1e-6), `0.000001`},
		{"float max", Float(math.MaxFloat64), `1.7976931348623157e+308`},
		{"float 1e21", Float(1e21), `1e+21`},
		{"float 1e-7", Float(1e-7), `1e-7`},
		{"negative zero", Float(math.Copysign(0, -1)), `-0.0`},
		{"NaN", Float(math.NaN()), `"NaN"`},
		{"+Inf", Float(math.Inf(1)), `"Infinity"`},
		{"-Inf", Float(math.Inf(-1)), `"-Infinity"`},
		{"decimal", Decimal("-12345678901234567890.0012300"), `-12345678901234567890.0012300`},
		{"decimal NaN", Decimal("NaN"), `"NaN"`},
		{"text escapes", Text("a\"b\\c\n\t\x01é\u2028"), `"a\"b\\c\n\t\u0001é\u2028"`},
		{"invalid utf8", Text("a\xffb"), `"a\ufffdb"`},
		{"bytes", Bytes([]byte{0, 1, 254, 255}), `"AAH+/w=="`},
		{"timestamptz", TimestampValue(&Timestamp{UnixMicros: 1_700_000_000_123_456}), `"2023-11-14T22:13:20.123456Z"`},
		{"timestamp local", TimestampValue(&Timestamp{UnixMicros: 0, Local: true}), `"1970-01-01T00:00:00"`},
		{"timestamp trailing zeros", TimestampValue(&Timestamp{UnixMicros: 500_000}), `"1970-01-01T00:00:00.5Z"`},
		{"timestamp before epoch", TimestampValue(&Timestamp{UnixMicros: -1}), `"1969-12-31T23:59:59.999999Z"`},
		{"timestamp year 10000", TimestampValue(&Timestamp{UnixMicros: 253402300800 * 1_000_000}), `"+010000-01-01T00:00:00Z"`},
		{"timestamp 1 BC", TimestampValue(&Timestamp{UnixMicros: -62167219200 * 1_000_000, Local: true}), `"0000-01-01T00:00:00"`},
		{"timestamp 2 BC", TimestampValue(&Timestamp{UnixMicros: (-62167219200 - 365*86400) * 1_000_000, Local: true}), `"-000001-01-01T00:00:00"`},
		{"timestamp infinity", TimestampValue(&Timestamp{Infinity: 1}), `"infinity"`},
		{"date", DateValue(&Date{Days: 19000}), `"2022-01-08"`},
		{"date leap", DateValue(&Date{Days: int32(951782400 * 1_000_000 / day)}), `"2000-02-29"`},
		{"date -infinity", DateValue(&Date{Infinity: -1}), `"-infinity"`},
		{"time", TimeValue(&Time{Micros: 13*3600e6 + 5*60e6 + 7e6 + 10}), `"13:05:07.00001"`},
		{"timetz", TimeValue(&Time{Micros: 0, HasOffset: true, OffsetSeconds: -(5*3600 + 30*60)}), `"00:00:00-05:30"`},
		{"interval", IntervalValue(&Interval{Months: 14, Days: 3, Micros: 4*3600e6 + 5*60e6 + 6_500_000}), `"P1Y2M3DT4H5M6.5S"`},
		{"interval zero", IntervalValue(&Interval{}), `"PT0S"`},
		{"interval negative", IntervalValue(&Interval{Days: -1, Micros: -1_500_000}), `"P-1DT-1.5S"`},
		{"json", JSON(`{"a":[1,2,{"b":null}]}`), `{"a":[1,2,{"b":null}]}`},
		{"uuid", UUID([]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}), `"12345678-9abc-def0-1234-56789abcdef0"`},
		{"list of floats", ListValue([]*Value{Float(1.5), Float(2), Null(), Float(math.NaN())}), `[1.5,2.0,null,"NaN"]`},
		{"list nested", ListValue([]*Value{ListValue([]*Value{Int(1), Null()}), ListValue(nil)}), `[[1,null],[]]`},
		{"document", DocumentValue(&Row{Columns: []*Column{{Name: "a", Value: Int(1)}, {Name: "b\"", Value: Text("x")}}}), `{"a":1,"b\"":"x"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(AppendValueJSON(nil, c.v))
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("invalid JSON %s", got)
			}
		})
	}
}

func TestDocumentID(t *testing.T) {
	if got := DocumentID([]*Column{{Name: "id", Value: Int(42)}}); got != "42" {
		t.Fatalf("single int key: %q", got)
	}
	if got := DocumentID([]*Column{{Name: "sku", Value: Text("a,b")}}); got != "a,b" {
		t.Fatalf("single text key: %q", got)
	}
	// Composite keys cannot collide whatever the values contain.
	a := DocumentID([]*Column{{Name: "a", Value: Text("x\",\"y")}, {Name: "b", Value: Text("z")}})
	b := DocumentID([]*Column{{Name: "a", Value: Text("x")}, {Name: "b", Value: Text("y\",\"z")}})
	if a == b {
		t.Fatalf("composite keys collide: %s", a)
	}
	if got := DocumentID([]*Column{{Name: "a", Value: Int(7)}, {Name: "b", Value: Text("x")}}); got != `[7,"x"]` {
		t.Fatalf("composite: %q", got)
	}
}

func TestEventJSONDeterministic(t *testing.T) {
	e := &Event{
		Id: "s:0/16B3748:0", Op: Op_OP_UPDATE, Version: 23803720, Position: "0/16B3748", CommitTimeUs: 1_700_000_000_000_000, TxId: "741",
		Origin: &Origin{Source: "s", Kind: "postgres", Database: "d", Schema: "public", Table: "t"},
		Key:    []*Column{{Name: "id", Value: Int(1)}},
		After:  &Row{Columns: []*Column{{Name: "id", Value: Int(1)}}},
		Meta:   map[string]string{"z": "1", "a": "2", "m": "3"},
	}
	first := string(AppendEventJSON(nil, e))
	for range 20 {
		if got := string(AppendEventJSON(nil, e)); got != first {
			t.Fatalf("not deterministic:\n%s\n%s", first, got)
		}
	}
	want := `{"id":"s:0/16B3748:0","op":"update","origin":{"source":"s","kind":"postgres","database":"d","schema":"public","table":"t"},"version":23803720,"position":"0/16B3748","commit_time":"2023-11-14T22:13:20Z","tx_id":"741","key":{"id":1},"after":{"id":1},"meta":{"a":"2","m":"3","z":"1"}}`
	if first != want {
		t.Fatalf("got  %s\nwant %s", first, want)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello")
	f.Add("a\xff\x00\u2028")
	f.Add("0123456789abcdef\"0123456\\89abcdef\x1f")
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON for %q: %s", s, b)
		}
		if want := appendStringByBytes(nil, s); string(b) != string(want) {
			t.Fatalf("%q: got %s, byte by byte %s", s, b, want)
		}
	})
}

// Every byte that needs escaping is found wherever it sits in an
// eight-byte word, next to any other byte: AppendString, which skips plain
// words whole, renders as the byte-by-byte loop does.
func TestAppendStringWords(t *testing.T) {
	special := []byte{0, 0x1f, '"', '\\', 0x7f, 0x80, 0xc3, 0xe2, 0xff, '\n'}
	plain := []byte{' ', '!', '#', '0', 'A', '[', ']', '~', 0x21, 0x5b, 0x5d}
	for _, sp := range special {
		for _, pl := range plain {
			for n := 1; n <= 17; n++ {
				for at := range n {
					buf := bytes.Repeat([]byte{pl}, n)
					buf[at] = sp
					s := string(buf)
					if got, want := AppendString(nil, s), appendStringByBytes(nil, s); string(got) != string(want) {
						t.Fatalf("%q: got %s, byte by byte %s", s, got, want)
					}
				}
			}
		}
	}
	s := "é – \u2028 ok \xff\xfe plain text of some length \"quoted\""
	if got, want := AppendString(nil, s), appendStringByBytes(nil, s); string(got) != string(want) {
		t.Fatalf("%q: got %s, byte by byte %s", s, got, want)
	}
}

// appendStringByBytes is AppendString without the word-at-a-time skip.
func appendStringByBytes(b []byte, s string) []byte { return appendString(b, s, false) }

// TestFloatJSONIsFloatLiteral checks, on random bit patterns and edge
// values, that every finite float renders as a JSON number with a
// fraction or an exponent (so that search engines' dynamic mapping sees a
// floating-point number) that parses back to the same bits.
func TestFloatJSONIsFloatLiteral(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 2, 1e20, 1e21, 1e-6, 1e-7, 123456789, math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, 9007199254740993, 0.1, float64(float32(0.1)), 16777216}
	for range 200000 {
		vals = append(vals, math.Float64frombits(rnd.Uint64()))
		vals = append(vals, float64(rnd.Int64N(1<<53)-1<<52)) // integral values
	}
	for _, f := range vals {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		got := string(AppendValueJSON(nil, Float(f)))
		if !strings.ContainsAny(got, ".e") {
			t.Fatalf("%v renders as %s: no fraction or exponent", f, got)
		}
		if !json.Valid([]byte(got)) {
			t.Fatalf("%v renders as invalid JSON %s", f, got)
		}
		back, err := strconv.ParseFloat(got, 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(f) {
			t.Fatalf("%v (%#x) renders as %s, which parses back as %v (%#x), %v", f, math.Float64bits(f), got, back, math.Float64bits(back), err)
		}
	}
}
