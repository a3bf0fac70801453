package pgdecode

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/event"
)

// Test OIDs of user types (as Load would describe them).
const (
	oidMood      = 90001 // enum
	oidMoodArr   = 90002 // _mood
	oidPosNum    = 90003 // domain over numeric
	oidPosNumArr = 90004 // _posnum
	oidComplex   = 90005 // composite (a int4, b text, c numeric, d text, e text)
	oidPair      = 90006 // composite (tags text[], ts timestamptz, j jsonb, b bytea)
	oidPairArr   = 90007 // _pair
	oidHstore    = 90008
	oidCitext    = 90009
	oidDomArr    = 90010 // domain over int4[]
	oidNested    = 90011 // composite (p pair, n posnum)
	oidEmpty     = 90012 // composite with no attributes
)

func testTypes() *Types {
	ty := NewTypes()
	m := map[uint32]*typeInfo{}
	for _, ti := range []*typeInfo{
		describe(oidMood, "mood", "public", "e", "E", 0, 0, ","),
		describe(oidMoodArr, "_mood", "public", "b", "A", 0, oidMood, ","),
		describe(oidPosNum, "posnum", "public", "d", "N", 1700, 0, ","),
		describe(oidPosNumArr, "_posnum", "public", "b", "A", 0, oidPosNum, ","),
		{oid: oidComplex, name: "complex", label: "complex (composite)", kind: kindComposite, delim: ',',
			fieldNames: []string{"a", "b", "c", "d", "e"}, fieldTypes: []uint32{23, 25, 1700, 25, 25}},
		{oid: oidPair, name: "pair", label: "pair (composite)", kind: kindComposite, delim: ',',
			fieldNames: []string{"tags", "ts", "j", "b"}, fieldTypes: []uint32{1009, 1184, 3802, 17}},
		describe(oidPairArr, "_pair", "public", "b", "A", 0, oidPair, ","),
		describe(oidHstore, "hstore", "ext", "b", "U", 0, 0, ","),
		describe(oidCitext, "citext", "public", "b", "S", 0, 0, ","),
		describe(oidDomArr, "intlist", "public", "d", "A", 1007, 0, ","),
		{oid: oidNested, name: "nested", label: "nested (composite)", kind: kindComposite, delim: ',',
			fieldNames: []string{"p", "n"}, fieldTypes: []uint32{oidPair, oidPosNum}},
		{oid: oidEmpty, name: "nothing", label: "nothing (composite)", kind: kindComposite, delim: ','},
	} {
		m[ti.oid] = ti
	}
	ty.dyn.Store(&m)
	return ty
}

type decodeCase struct {
	name string
	oid  uint32
	in   string
	want string // JSON rendering; "" when an error is expected
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	ty := testTypes()
	arena := &Arena{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := ty.Decode(c.oid, []byte(c.in))
			if c.want == "" {
				if err == nil {
					t.Fatalf("Decode(%s, %q) = %s, want an error", ty.TypeName(c.oid), c.in, event.AppendValueJSON(nil, v))
				}
				var de *DecodeError
				if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "decoding "+ty.TypeName(c.oid)+" value ") {
					t.Fatalf("error %q is not a DecodeError naming the type", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%s, %q): %v", ty.TypeName(c.oid), c.in, err)
			}
			if got := string(event.AppendValueJSON(nil, v)); got != c.want {
				t.Fatalf("Decode(%s, %q) = %s, want %s", ty.TypeName(c.oid), c.in, got, c.want)
			}
			// The same through an arena, used before (values recycled) and
			// again after (this value's memory reused): same result while
			// valid, and the heap-decoded value is unaffected.
			in := []byte(c.in)
			for range 3 {
				arena.Reset()
				av, err := ty.DecodeIn(arena, c.oid, in)
				if err != nil {
					t.Fatalf("DecodeIn(%s, %q): %v", ty.TypeName(c.oid), c.in, err)
				}
				if got := string(event.AppendValueJSON(nil, av)); got != c.want {
					t.Fatalf("DecodeIn(%s, %q) = %s, want %s", ty.TypeName(c.oid), c.in, got, c.want)
				}
				_, _ = ty.DecodeIn(arena, 25, []byte("overwrite the arena's text"))
			}
			if got := string(event.AppendValueJSON(nil, v)); got != c.want {
				t.Fatalf("Decode(%s, %q) changed by arena use: %s, want %s", ty.TypeName(c.oid), c.in, got, c.want)
			}
		})
	}
}

func TestDecodeNull(t *testing.T) {
	ty := NewTypes()
	for _, oid := range []uint32{16, 20, 1009, 12345678} {
		v, err := ty.Decode(oid, nil)
		if err != nil || !v.IsNull() {
			t.Fatalf("Decode(%d, nil) = %v, %v; want NULL", oid, v, err)
		}
	}
	// An empty, non-nil value is not NULL.
	v, err := ty.Decode(25, []byte{})
	if err != nil || v.GetText() != "" || v.IsNull() {
		t.Fatalf("Decode(text, \"\") = %v, %v", v, err)
	}
}

func TestDecodeNumbers(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"bool true", 16, "t", "true"},
		{"bool false", 16, "f", "false"},
		{"bool bad", 16, "x", ""},
		{"int2 min", 21, "-32768", "-32768"},
		{"int4", 23, "2147483647", "2147483647"},
		{"int8 max", 20, "9223372036854775807", "9223372036854775807"},
		{"int8 min", 20, "-9223372036854775808", "-9223372036854775808"},
		{"int8 beyond 2^53", 20, "9007199254740993", "9007199254740993"},
		{"int8 overflow", 20, "9223372036854775808", ""},
		{"int8 underflow", 20, "-9223372036854775809", ""},
		{"int8 syntax", 20, "abc", ""},
		{"int8 empty", 20, "", ""},
		{"int8 sign only", 20, "-", ""},
		{"int8 float text", 20, "1.5", ""},
		{"oid max", 26, "4294967295", "4294967295"},
		{"oid overflow", 26, "4294967296", ""},
		{"oid negative", 26, "-1", ""},
		{"xid", 28, "123", "123"},
		{"xid8", 5069, "18446744073709551615", "18446744073709551615"},
		{"float8", 701, "1.2345678901234567", "1.2345678901234567"},
		{"float8 neg zero", 701, "-0", "-0.0"},
		{"float8 NaN", 701, "NaN", `"NaN"`},
		{"float8 Infinity", 701, "Infinity", `"Infinity"`},
		{"float8 -Infinity", 701, "-Infinity", `"-Infinity"`},
		{"float8 exp", 701, "1e+308", "1e+308"},
		{"float8 tiny", 701, "5e-324", "5e-324"},
		{"float8 bad", 701, "1,5", ""},
		{"float4 0.1", 700, "0.1", "0.1"},
		{"float4 max", 700, "3.4028235e+38", "3.4028235e+38"},
		{"float4 min subnormal", 700, "1e-45", "1e-45"},
		{"float4 neg zero", 700, "-0", "-0.0"},
		{"float4 NaN", 700, "NaN", `"NaN"`},
		{"float4 -Infinity", 700, "-Infinity", `"-Infinity"`},
		{"float4 old 9 digits", 700, "0.100000001", "0.1"},
		{"float4 overflow", 700, "1e+39", ""},
		{"numeric", 1700, "-12.3400", "-12.3400"},
		{"numeric 40 digits", 1700, "1234567890123456789012345678901234567890.0123456789", "1234567890123456789012345678901234567890.0123456789"},
		{"numeric zero", 1700, "0", "0"},
		{"numeric NaN", 1700, "NaN", `"NaN"`},
		{"numeric Infinity", 1700, "Infinity", `"Infinity"`},
		{"numeric -Infinity", 1700, "-Infinity", `"-Infinity"`},
		{"numeric bad", 1700, "1e5", ""},
		{"numeric trailing dot", 1700, "1.", ""},
		{"money", 790, "$1,234.56", "1234.56"},
		{"money negative", 790, "-$1,234.56", "-1234.56"},
		{"money zero", 790, "$0.00", "0.00"},
		{"money min", 790, "-$92,233,720,368,547,758.08", "-92233720368547758.08"},
		{"money other locale", 790, "1.234,56 €", ""},
		{"domain over numeric", oidPosNum, "42.50", "42.50"},
		{"domain over numeric bad", oidPosNum, "x", ""},
	})
}

func TestFloat4RoundTrip(t *testing.T) {
	// Every float32 must come back from float32(v); JSON shows the shortest
	// float32 digits. ±7.038531e-26 are the two float32 values whose shortest
	// decimal's nearest double sits on a float32 rounding midpoint.
	bits := []uint32{363742205, 2511225853, 0x3dcccccd, 0x7f7fffff, 1, 0x80000001, 0x00800000, 0x3f800001}
	for _, b := range bits {
		f := math.Float32frombits(b)
		s := []byte(strconvFloat32(f))
		v, err := parseFloat4(s)
		if err != nil {
			t.Fatalf("parseFloat4(%s): %v", s, err)
		}
		if got := math.Float32bits(float32(v)); got != b {
			t.Fatalf("parseFloat4(%s): float32 bits %#x, want %#x", s, got, b)
		}
	}
}

func TestDecodeText(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"text", 25, "héllo \"world\"\n", `"héllo \"world\"\n"`},
		{"bpchar keeps padding", 1042, "ab   ", `"ab   "`},
		{"varchar", 1043, "x", `"x"`},
		{"name", 19, "pg_class", `"pg_class"`},
		{"char", 18, "a", `"a"`},
		{"xml", 142, "<a>1</a>", `"<a>1</a>"`},
		{"inet", 869, "192.168.0.1/24", `"192.168.0.1/24"`},
		{"cidr", 650, "10.0.0.0/8", `"10.0.0.0/8"`},
		{"macaddr", 829, "08:00:2b:01:02:03", `"08:00:2b:01:02:03"`},
		{"bit", 1560, "0101", `"0101"`},
		{"tsvector", 3614, "'a':1 'b':2", `"'a':1 'b':2"`},
		{"pg_lsn", 3220, "16/B374D848", `"16/B374D848"`},
		{"box", 603, "(3,4),(1,2)", `"(3,4),(1,2)"`},
		{"int4range", 3904, "[1,10)", `"[1,10)"`},
		{"enum", oidMood, "happy", `"happy"`},
		{"citext", oidCitext, "MiXeD", `"MiXeD"`},
		{"unknown oid", 777777, "whatever (1,2)", `"whatever (1,2)"`},
		{"bytea", 17, `\x00ff10`, `"AP8Q"`},
		{"bytea empty", 17, `\x`, `""`},
		{"bytea upper hex", 17, `\xABCD`, `"q80="`},
		{"bytea odd", 17, `\x0`, ""},
		{"bytea bad hex", 17, `\xzz`, ""},
		{"bytea escape format", 17, `a\\b\000\377`, `"YVxiAP8="`},
		{"bytea bad escape", 17, `\q`, ""},
		{"json", 114, `{"a": [1, 2.50, "x"]}`, `{"a": [1, 2.50, "x"]}`},
		{"jsonb", 3802, `{"a": {"b": null}}`, `{"a": {"b": null}}`},
		{"uuid", 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"uuid plain", 2950, "A0EEBC999C0B4EF8BB6D6BB9BD380A11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"uuid short", 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", ""},
		{"uuid misplaced dash", 2950, "a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11", ""},
		{"point", 600, "(1.5,-2)", `{"x":1.5,"y":-2.0}`},
		{"point bad", 600, "(1.5;-2)", ""},
		{"int2vector", 22, "1 2 -3", "[1,2,-3]"},
		{"int2vector empty", 22, "", "[]"},
		{"oidvector", 30, "23 25", "[23,25]"},
		{"hstore", oidHstore, `"a"=>"1", "b c"=>NULL, ""=>"\"q\\"`, `{"a":"1","b c":null,"":"\"q\\"}`},
		{"hstore empty", oidHstore, ``, `{}`},
		{"hstore NULL text", oidHstore, `"k"=>"NULL"`, `{"k":"NULL"}`},
		{"hstore unquoted", oidHstore, `a=>b,c=>NULL`, `{"a":"b","c":null}`},
		{"hstore bad", oidHstore, `"a"=`, ""},
		{"hstore unterminated", oidHstore, `"a"=>"b`, ""},
	})
}

func TestDecodeDateTime(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"timestamptz", 1184, "2024-01-02 03:04:05.123456+00", `"2024-01-02T03:04:05.123456Z"`},
		{"timestamptz no fraction", 1184, "1970-01-01 00:00:00+00", `"1970-01-01T00:00:00Z"`},
		{"timestamptz short fraction", 1184, "2024-01-02 03:04:05.5+00", `"2024-01-02T03:04:05.5Z"`},
		{"timestamptz offset", 1184, "2024-01-02 03:04:05+05:30", `"2024-01-01T21:34:05Z"`},
		{"timestamptz offset seconds", 1184, "1900-01-01 00:00:00-05:53:28", `"1900-01-01T05:53:28Z"`},
		{"timestamptz BC", 1184, "0044-03-15 12:00:00+00 BC", `"-000043-03-15T12:00:00Z"`},
		{"timestamptz 1 BC", 1184, "0001-12-31 23:59:59.999999+00 BC", `"0000-12-31T23:59:59.999999Z"`},
		{"timestamptz min", 1184, "4713-11-24 00:00:00+00 BC", `"-004712-11-24T00:00:00Z"`},
		{"timestamptz 5 digit year", 1184, "12345-06-07 08:09:10+00", `"+012345-06-07T08:09:10Z"`},
		{"timestamptz int64 limit", 1184, "294247-01-10 04:00:54.775807+00", `"+294247-01-10T04:00:54.775807Z"`},
		// After the int64 limit of event.Timestamp: text with the same JSON.
		{"timestamptz beyond int64", 1184, "294247-01-10 04:00:54.775808+00", `"+294247-01-10T04:00:54.775808Z"`},
		{"timestamptz PostgreSQL max", 1184, "294276-12-31 23:59:59.999999+00", `"+294276-12-31T23:59:59.999999Z"`},
		{"timestamptz far offset", 1184, "294277-01-01 00:30:00.5+01", `"+294276-12-31T23:30:00.5Z"`},
		{"timestamptz far offset back", 1184, "294250-03-01 00:00:00+02", `"+294250-02-28T22:00:00Z"`},
		{"timestamptz after PostgreSQL max", 1184, "294276-12-31 23:00:00-02", ""},
		{"timestamptz year 294277", 1184, "294277-01-01 00:00:00+00", ""},
		{"timestamp PostgreSQL max", 1114, "294276-12-31 23:59:59.999999", `"+294276-12-31T23:59:59.999999"`},
		{"timestamp far no fraction", 1114, "294248-02-29 00:00:00", `"+294248-02-29T00:00:00"`},
		{"timestamp far not leap", 1114, "294249-02-29 00:00:00", ""},
		{"timestamptz infinity", 1184, "infinity", `"infinity"`},
		{"timestamptz -infinity", 1184, "-infinity", `"-infinity"`},
		{"timestamptz leap day", 1184, "2000-02-29 00:00:00+00", `"2000-02-29T00:00:00Z"`},
		{"timestamptz not leap", 1184, "1900-02-29 00:00:00+00", ""},
		{"timestamptz month 13", 1184, "2024-13-01 00:00:00+00", ""},
		{"timestamptz hour 24", 1184, "2024-01-01 24:00:00+00", ""},
		{"timestamptz no zone", 1184, "2024-01-01 00:00:00", ""},
		{"timestamptz 7 fraction digits", 1184, "2024-01-01 00:00:00.1234567+00", ""},
		{"timestamptz trailing", 1184, "2024-01-01 00:00:00+00 AD", ""},
		{"timestamptz year 0", 1184, "0000-01-01 00:00:00+00", ""},
		{"timestamp", 1114, "2024-01-02 03:04:05.000001", `"2024-01-02T03:04:05.000001"`},
		{"timestamp BC", 1114, "0001-01-01 00:00:00 BC", `"0000-01-01T00:00:00"`},
		{"timestamp with zone text", 1114, "2024-01-02 03:04:05+00", ""},
		{"timestamp infinity", 1114, "infinity", `"infinity"`},
		{"date", 1082, "2024-02-29", `"2024-02-29"`},
		{"date epoch", 1082, "1970-01-01", `"1970-01-01"`},
		{"date BC", 1082, "0044-03-15 BC", `"-000043-03-15"`},
		{"date min", 1082, "4714-11-24 BC", `"-004713-11-24"`},
		{"date max", 1082, "5874897-12-31", `"+5874897-12-31"`},
		{"date infinity", 1082, "infinity", `"infinity"`},
		{"date -infinity", 1082, "-infinity", `"-infinity"`},
		{"date bad", 1082, "2024-1-01", ""},
		{"date day 32", 1082, "2024-01-32", ""},
		{"time", 1083, "12:34:56.789", `"12:34:56.789"`},
		{"time midnight", 1083, "00:00:00", `"00:00:00"`},
		{"time 24", 1083, "24:00:00", `"24:00:00"`},
		{"time after 24", 1083, "24:00:00.000001", ""},
		{"time minute 60", 1083, "12:60:00", ""},
		{"timetz", 1266, "12:34:56.789+05:30", `"12:34:56.789+05:30"`},
		{"timetz utc", 1266, "00:00:00+00", `"00:00:00+00:00"`},
		{"timetz negative seconds offset", 1266, "12:00:00-05:53:28", `"12:00:00-05:53:28"`},
		{"timetz missing offset", 1266, "12:00:00", ""},
		{"interval full", 1186, "1 year 2 mons 3 days 04:05:06.789", `"P1Y2M3DT4H5M6.789S"`},
		{"interval negative days positive time", 1186, "-1 days +02:03:00", `"P-1DT2H3M"`},
		{"interval zero", 1186, "00:00:00", `"PT0S"`},
		{"interval negative fraction", 1186, "-00:00:00.5", `"PT-0.5S"`},
		{"interval hours over 24", 1186, "100:00:00", `"PT100H"`},
		{"interval all negative", 1186, "-1 years -2 mons +3 days -04:05:06", `"P-1Y-2M3DT-4H-5M-6S"`},
		{"interval mixed signs", 1186, "1 mon -1 days", `"P1M-1D"`},
		{"interval singular", 1186, "1 year 1 mon 1 day", `"P1Y1M1D"`},
		{"interval years only", 1186, "-178956970 years -8 mons", `"P-178956970Y-8M"`},
		{"interval max micros", 1186, "2562047788:00:54.775807", `"PT2562047788H54.775807S"`},
		{"interval min micros", 1186, "-2562047788:00:54.775808", `"PT-2562047788H-54.775808S"`},
		{"interval micros overflow", 1186, "2562047788:00:54.775808", ""},
		{"interval months overflow", 1186, "178956971 years", ""},
		{"interval at style", 1186, "@ 1 day", ""},
		{"interval unknown unit", 1186, "1 week", ""},
		{"interval text after time", 1186, "01:00:00 1 day", ""},
		{"interval empty", 1186, "", ""},
		{"interval double space", 1186, "1 day  01:00:00", ""},
	})
}

func TestParseIntervalFields(t *testing.T) {
	for _, c := range []struct {
		in          string
		months, day int32
		us          int64
	}{
		{"1 year 2 mons 3 days 04:05:06.789", 14, 3, 4*microsPerHour + 5*microsPerMinute + 6789000},
		{"-1 days +02:03:00", 0, -1, 2*microsPerHour + 3*microsPerMinute},
		{"-00:00:00.000001", 0, 0, -1},
		{"-2562047788:00:54.775808", 0, 0, math.MinInt64},
		{"infinity", math.MaxInt32, math.MaxInt32, math.MaxInt64},
		{"-infinity", math.MinInt32, math.MinInt32, math.MinInt64},
		{"-178956970 years -8 mons -2147483648 days", math.MinInt32, math.MinInt32, 0},
	} {
		mon, day, us, err := parseInterval([]byte(c.in))
		if err != nil || mon != c.months || day != c.day || us != c.us {
			t.Errorf("parseInterval(%q) = %d, %d, %d, %v; want %d, %d, %d", c.in, mon, day, us, err, c.months, c.day, c.us)
		}
	}
}

func TestDecodeArrays(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"int4", 1007, "{1,2,3}", "[1,2,3]"},
		{"int4 nulls", 1007, "{NULL,2,null}", "[null,2,null]"},
		{"int4 empty", 1007, "{}", "[]"},
		{"int4 2-D", 1007, "{{1,2},{3,4}}", "[[1,2],[3,4]]"},
		{"int4 3-D", 1007, "{{{1},{2}},{{3},{4}}}", "[[[1],[2]],[[3],[4]]]"},
		{"int4 bounds", 1007, "[0:1]={1,2}", "[1,2]"},
		{"int4 2-D bounds", 1007, "[-1:0][1:1]={{1},{2}}", "[[1],[2]]"},
		{"int4 spaces", 1007, "{ 1 , 2 }", "[1,2]"},
		{"int4 bad element", 1007, "{1,x}", ""},
		{"int4 unterminated", 1007, "{1,2", ""},
		{"int4 trailing", 1007, "{1,2}x", ""},
		{"int4 empty element", 1007, "{1,,2}", ""},
		{"int4 no braces", 1007, "1,2", ""},
		{"int4 bad bounds", 1007, "[0:1]{1,2}", ""},
		{"int8 big", 1016, "{9223372036854775807,-9223372036854775808}", "[9223372036854775807,-9223372036854775808]"},
		{"float8 specials", 1022, "{NaN,-Infinity,-0,1.5}", `["NaN","-Infinity",-0.0,1.5]`},
		{"float4", 1021, "{0.1,NULL}", `[0.1,null]`},
		{"text quoted", 1009, `{"a b",NULL,"NULL","","x\"y\\\\z","a,b{}"}`, `["a b",null,"NULL","","x\"y\\\\z","a,b{}"]`},
		{"text unquoted escape", 1009, `{a\,b,c}`, `["a,b","c"]`},
		{"text 2-D quoted", 1009, `{{"{",b},{"}",NULL}}`, `[["{","b"],["}",null]]`},
		{"text unterminated quote", 1009, `{"abc}`, ""},
		{"text quote in unquoted", 1009, `{ab"c}`, ""},
		{"text unicode", 1009, `{héllo,"wörld 🎉"}`, `["héllo","wörld 🎉"]`},
		{"bpchar padding", 1014, `{"a  ",b}`, `["a  ","b"]`},
		{"box semicolon delimiter", 1020, "{(3,4),(1,2);(1,1),(0,0)}", `["(3,4),(1,2)","(1,1),(0,0)"]`},
		{"point", 1017, `{"(1,2)","(3.5,-4)"}`, `[{"x":1.0,"y":2.0},{"x":3.5,"y":-4.0}]`},
		{"bytea", 1001, `{"\\x00ff",NULL}`, `["AP8=",null]`},
		{"jsonb", 3807, `{"{\"a\": 1}","[1, 2]",NULL}`, `[{"a": 1},[1, 2],null]`},
		{"timestamptz", 1185, `{"2024-01-02 03:04:05+00",infinity}`, `["2024-01-02T03:04:05Z","infinity"]`},
		{"date BC", 1182, `{"0044-03-15 BC",2024-01-01}`, `["-000043-03-15","2024-01-01"]`},
		{"interval", 1187, `{"1 day 01:00:00","-00:00:01"}`, `["P1DT1H","PT-1S"]`},
		{"uuid", 2951, `{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}`, `["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]`},
		{"numeric", 1231, `{1.50,NaN,-Infinity}`, `[1.50,"NaN","-Infinity"]`},
		{"bool", 1000, `{t,f,NULL}`, `[true,false,null]`},
		{"enum", oidMoodArr, `{happy,sad,NULL}`, `["happy","sad",null]`},
		{"domain elements", oidPosNumArr, `{1.5,NULL}`, `[1.5,null]`},
		{"domain over array", oidDomArr, `{1,2}`, `[1,2]`},
		{"int2vector elements", 1006, `{"1 2","3"}`, `[[1,2],[3]]`},
		{"too many dims", 1007, "{{{{{{{1}}}}}}}", ""},
	})
}

func TestDecodeComposite(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{"simple", oidComplex, `(1,"a b",,"","q""\\")`, `{"a":1,"b":"a b","c":null,"d":"","e":"q\"\\"}`},
		{"all null", oidComplex, `(,,,,)`, `{"a":null,"b":null,"c":null,"d":null,"e":null}`},
		{"backslash escapes", oidComplex, `(2,a\,b,1.5,"x\"y",\))`, `{"a":2,"b":"a,b","c":1.5,"d":"x\"y","e":")"}`},
		{"too few", oidComplex, `(1,a)`, ""},
		{"too many", oidComplex, `(1,a,1,b,c,d)`, ""},
		{"bad field", oidComplex, `(x,a,1,b,c)`, ""},
		{"unterminated", oidComplex, `(1,"a`, ""},
		{"no parens", oidComplex, `1,a,1,b,c`, ""},
		{"nested array and jsonb", oidPair,
			`("{a,""b c"",NULL}","2024-01-02 03:04:05+00","{""k"": ""v,)""}","\\x00ff")`,
			`{"tags":["a","b c",null],"ts":"2024-01-02T03:04:05Z","j":{"k": "v,)"},"b":"AP8="}`},
		{"array of composites", oidPairArr,
			`{"(\"{a,\"\"b c\"\",NULL}\",,[1],)",NULL}`,
			`[{"tags":["a","b c",null],"ts":null,"j":[1],"b":null},null]`},
		{"composite in composite", oidNested,
			`("(""{x}"",,,)",7)`,
			`{"p":{"tags":["x"],"ts":null,"j":null,"b":null},"n":7}`},
		{"no attributes", oidEmpty, `()`, `{}`},
	})
}

func TestTypeName(t *testing.T) {
	ty := testTypes()
	for oid, want := range map[uint32]string{
		20: "int8", 1700: "numeric", 1009: "_text", 1020: "_box",
		oidMood: "mood (enum)", oidPosNum: "posnum (domain)", oidComplex: "complex (composite)",
		oidHstore: "ext.hstore", oidMoodArr: "_mood", 4242: "oid 4242 (not loaded)",
	} {
		if got := ty.TypeName(oid); got != want {
			t.Errorf("TypeName(%d) = %q, want %q", oid, got, want)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	ty := NewTypes()
	_, err := ty.Decode(20, []byte("abc"))
	if got, want := err.Error(), `decoding int8 value "abc": invalid syntax: unexpected 'a' in integer`; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrSyntax) {
		t.Fatal("error does not wrap ErrSyntax")
	}
	_, err = ty.Decode(1007, []byte("{1,x}"))
	if got, want := err.Error(), `decoding _int4 value "{1,x}": element 2: decoding int4 value "x": invalid syntax: unexpected 'x' in integer`; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
	_, err = ty.Decode(1184, []byte("294277-01-01 00:00:00+00"))
	if !errors.Is(err, ErrRange) {
		t.Fatalf("error %v does not wrap ErrRange", err)
	}
	_, err = ty.Decode(25+0, nil)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200)
	_, err = ty.Decode(20, []byte(long))
	if de := (*DecodeError)(nil); !errors.As(err, &de) || len(de.Input) != maxErrorInput+3 {
		t.Fatalf("long input not cut: %v", err)
	}
}

// TestDecodeDoesNotRetainInput checks that values do not alias the input
// buffer, which pgx reuses.
func TestDecodeDoesNotRetainInput(t *testing.T) {
	ty := testTypes()
	for _, c := range []struct {
		oid uint32
		in  string
	}{
		{25, "hello"}, {1700, "1.5"}, {3802, `{"a":1}`}, {17, `\x0102`}, {1009, `{a,"b c",d\,e}`},
		{oidComplex, `(1,"a b",,"","q")`}, {oidHstore, `"a"=>"b"`}, {oidMood, "happy"},
	} {
		buf := []byte(c.in)
		v, err := ty.Decode(c.oid, buf)
		if err != nil {
			t.Fatal(err)
		}
		before := string(event.AppendValueJSON(nil, v))
		for i := range buf {
			buf[i] = '#'
		}
		if after := string(event.AppendValueJSON(nil, v)); after != before {
			t.Fatalf("value of %q changed with its input buffer: %s -> %s", c.in, before, after)
		}
	}
}

// TestFarTimestampMatchesJSON checks that the text rendering of timestamps
// after the int64 limit is the one event.AppendTimestamp gives, on the
// range both can render.
func TestFarTimestampMatchesJSON(t *testing.T) {
	from := daysFromCivil(10000, 1, 1)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 100000 {
		days := from + rnd.Int64N(maxDays-from)
		clock := rnd.Int64N(microsPerDay)
		switch i % 4 {
		case 1:
			clock -= clock % microsPerSecond
		case 2:
			clock -= clock % 1000
		}
		if i == 0 {
			days, clock = from, 0
		}
		local := i%2 == 0
		want := string(event.AppendTimestamp(nil, &event.Timestamp{UnixMicros: days*microsPerDay + clock, Local: local}))
		if got := string(farTimestamp(nil, days, clock, local)); got != want {
			t.Fatalf("farTimestamp(%d, %d, %v) = %s, event.AppendTimestamp gives %s", days, clock, local, got, want)
		}
	}
}
