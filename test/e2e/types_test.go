package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/testkit"
)

// The type test: one column per PostgreSQL built-in type family, four
// rows of values (typical, maxima, minima, specials) and an all-NULL row,
// through the real binary into Elasticsearch and OpenSearch, by the
// snapshot and by the replication stream. Every expected value below is
// written by hand from docs/types.md: nothing here renders values with
// tidegate's own code.

// typeCell is one value of a column in one row.
type typeCell struct {
	sql  string // SQL literal
	json string // the document's value, as docs/types.md says
	// ignored says where the index keeps the value in _source without
	// indexing it (listed in _ignored, index.mapping.ignore_malformed):
	// "" nowhere, "both" the column on both products, "es" the column on
	// Elasticsearch only, or a list of field paths, each optionally
	// prefixed with "es:" ("c_point.y", "es:c_composite.ts").
	ignored string
}

type typeColumn struct {
	name, typ string
	// cells in the variants' order: typical, max, min, special. The first
	// row is the typical one, so dynamic mapping gives each field its
	// natural type (date, float, long, object) before the edge values come.
	cells [4]typeCell
}

var typeVariants = [4]string{"typical", "max", "min", "special"}

const typesSchema = `
CREATE TYPE tg_mood AS ENUM ('sad', 'ok', 'happy', 'not so "ok", really');
CREATE DOMAIN tg_posint AS int4 CHECK (VALUE > 0);
CREATE TYPE tg_pair AS (n int4, t text, ts timestamptz, tags text[]);`

var typeColumns = []typeColumn{
	{"c_bool", "bool", [4]typeCell{
		{"true", `true`, ""},
		{"false", `false`, ""},
		{"'f'", `false`, ""},
		{"'yes'", `true`, ""},
	}},
	{"c_int2", "int2", [4]typeCell{
		{"12", `12`, ""},
		{"32767", `32767`, ""},
		{"-32768", `-32768`, ""},
		{"0", `0`, ""},
	}},
	{"c_int4", "int4", [4]typeCell{
		{"123456", `123456`, ""},
		{"2147483647", `2147483647`, ""},
		{"-2147483648", `-2147483648`, ""},
		{"0", `0`, ""},
	}},
	{"c_int8", "int8", [4]typeCell{
		{"42", `42`, ""},
		{"9223372036854775807", `9223372036854775807`, ""},
		{"-9223372036854775808", `-9223372036854775808`, ""},
		{"9007199254740993", `9007199254740993`, ""}, // 2^53+1: exact
	}},
	{"c_numeric", "numeric", [4]typeCell{
		{"12.3400", `12.3400`, ""},
		{"123456789012345678901234567890.123456789012345678901234567890", `123456789012345678901234567890.123456789012345678901234567890`, ""},
		{"'-Infinity'", `"-Infinity"`, "both"},
		{"'NaN'", `"NaN"`, "both"},
	}},
	{"c_decimal", "numeric(10,2)", [4]typeCell{
		{"1.5", `1.50`, ""},
		{"99999999.99", `99999999.99`, ""},
		{"-99999999.99", `-99999999.99`, ""},
		{"0", `0.00`, ""},
	}},
	{"c_float4", "float4", [4]typeCell{
		{"0.1", `0.1`, ""},
		{"3.4028235e38", `3.4028235e+38`, ""},
		{"'-0'", `-0.0`, ""},
		{"'NaN'", `"NaN"`, "both"},
	}},
	{"c_float8", "float8", [4]typeCell{
		{"1.5", `1.5`, ""},
		{"'Infinity'", `"Infinity"`, "both"},
		{"'-Infinity'", `"-Infinity"`, "both"},
		{"'NaN'", `"NaN"`, "both"},
	}},
	{"c_float8b", "float8", [4]typeCell{
		{"2", `2.0`, ""},
		{"1e300", `1e+300`, "both"}, // beyond the float32 of a dynamic `float` field
		{"5e-324", `5e-324`, ""},
		{"'-0'", `-0.0`, ""},
	}},
	{"c_text", "text", [4]typeCell{
		{"'héllo wörld'", `"héllo wörld"`, ""},
		{`E'😀 "quoted" \\back\\slash \u2028 ünïcödé'`, `"😀 \"quoted\" \\back\\slash \u2028 ünïcödé"`, ""},
		{"''", `""`, ""},
		{`E'line1\nline2\ttab\x01ctl'`, `"line1\nline2\ttab\u0001ctl"`, ""},
	}},
	{"c_varchar", "varchar(10)", [4]typeCell{
		{"'abc'", `"abc"`, ""},
		{"'0123456789'", `"0123456789"`, ""},
		{"''", `""`, ""},
		{`'a,b{c}"d'`, `"a,b{c}\"d"`, ""},
	}},
	{"c_char", "char(5)", [4]typeCell{
		{"'ab'", `"ab   "`, ""},
		{"'abcde'", `"abcde"`, ""},
		{"''", `"     "`, ""},
		{"'é'", `"é    "`, ""},
	}},
	{"c_name", "name", [4]typeCell{
		{"'tidegate'", `"tidegate"`, ""},
		{"'" + strings.Repeat("n", 63) + "'", `"` + strings.Repeat("n", 63) + `"`, ""},
		{"''", `""`, ""},
		{"'Ünï'", `"Ünï"`, ""},
	}},
	{"c_qchar", `"char"`, [4]typeCell{
		{"'x'", `"x"`, ""},
		{"'é'", `"\\303"`, ""}, // a byte with the high bit set: PostgreSQL 15 writes \ooo
		{"''", `""`, ""},
		{`'\'`, `"\\"`, ""},
	}},
	{"c_bytea", "bytea", [4]typeCell{
		{`'\x68656c6c6f'`, `"aGVsbG8="`, ""},
		{`'\x00ff80c328fe7f0a'`, `"AP+Awyj+fwo="`, ""}, // not UTF-8, with \x00
		{`''`, `""`, ""},
		{`'\x00'`, `"AA=="`, ""},
	}},
	{"c_uuid", "uuid", [4]typeCell{
		{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, ""},
		{"'ffffffff-ffff-ffff-ffff-ffffffffffff'", `"ffffffff-ffff-ffff-ffff-ffffffffffff"`, ""},
		{"'00000000-0000-0000-0000-000000000000'", `"00000000-0000-0000-0000-000000000000"`, ""},
		{"'A0EEBC999C0B4EF8BB6D6BB9BD380A11'", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, ""},
	}},
	{"c_json", "json", [4]typeCell{
		{`'{"a": [1, 2], "b": {"c": "x"}}'`, `{"a": [1, 2], "b": {"c": "x"}}`, ""},
		{`E'{"a": [3],\n "b": {"c": "ünï 😀 \\u00e9 \\"q\\""}, "d": 1.50}'`, `{"a": [3], "b": {"c": "ünï 😀 é \"q\""}, "d": 1.50}`, ""},
		{`'{}'`, `{}`, ""},
		{`'{"a": [], "b": {"c": "nul\u0000byte"}, "e": null}'`, `{"a": [], "b": {"c": "nul\u0000byte"}, "e": null}`, ""},
	}},
	{"c_jsonb", "jsonb", [4]typeCell{
		{`'{"b": 1, "a": "x"}'`, `{"a": "x", "b": 1}`, ""},
		{`'{"a": "ünï 😀", "b": 12345678901234567890, "n": {"d": [{"e": true}]}}'`, `{"a": "ünï 😀", "b": 12345678901234567890, "n": {"d": [{"e": true}]}}`, "c_jsonb.b"},
		{`'{}'`, `{}`, ""},
		{`'{"a": "\u00e9", "b": -0, "c": 1.000}'`, `{"a": "é", "b": 0, "c": 1.000}`, ""},
	}},
	{"c_jsonb2", "jsonb", [4]typeCell{
		{`'"text"'`, `"text"`, ""},
		{`'"ünï"'`, `"ünï"`, ""},
		{`'null'`, `null`, ""}, // JSON null: the same as SQL NULL in the document
		{`'["a", null, "b"]'`, `["a", null, "b"]`, ""},
	}},
	{"c_date", "date", [4]typeCell{
		{"'2024-01-02'", `"2024-01-02"`, ""},
		{"'5874897-12-31'", `"+5874897-12-31"`, "es"},
		{"'4713-01-01 BC'", `"-004712-01-01"`, "es"},
		{"'infinity'", `"infinity"`, "both"},
	}},
	{"c_date_arr", "date[]", [4]typeCell{
		{"'{2024-01-02}'", `["2024-01-02"]`, ""},
		{"'{-infinity,infinity}'", `["-infinity", "infinity"]`, "both"},
		{"'{4714-11-24 BC,0001-01-01 BC}'", `["-004713-11-24", "0000-01-01"]`, "es"},
		{"'{}'", `[]`, ""},
	}},
	{"c_time", "time", [4]typeCell{
		{"'12:34:56.789'", `"12:34:56.789"`, ""},
		{"'24:00:00'", `"24:00:00"`, ""},
		{"'00:00:00'", `"00:00:00"`, ""},
		{"'23:59:59.999999'", `"23:59:59.999999"`, ""},
	}},
	{"c_timetz", "timetz", [4]typeCell{
		{"'12:34:56.789+05:30'", `"12:34:56.789+05:30"`, ""},
		{"'24:00:00-15:59'", `"24:00:00-15:59"`, ""},
		{"'00:00:00+00'", `"00:00:00+00:00"`, ""},
		{"'12:00:00-05:53:28'", `"12:00:00-05:53:28"`, ""},
	}},
	{"c_ts", "timestamp", [4]typeCell{
		{"'2024-01-02 03:04:05.123456'", `"2024-01-02T03:04:05.123456"`, ""},
		{"'294276-12-31 23:59:59.999999'", `"+294276-12-31T23:59:59.999999"`, "es"},
		{"'4714-11-24 00:00:00 BC'", `"-004713-11-24T00:00:00"`, "es"},
		{"'-infinity'", `"-infinity"`, "both"},
	}},
	{"c_tstz", "timestamptz", [4]typeCell{
		{"'2024-01-02 03:04:05.5+05:30'", `"2024-01-01T21:34:05.5Z"`, ""},
		{"'294276-12-31 23:59:59.999999+00'", `"+294276-12-31T23:59:59.999999Z"`, "es"},
		{"'4713-01-01 00:00:00+00 BC'", `"-004712-01-01T00:00:00Z"`, "es"},
		{"'infinity'", `"infinity"`, "both"},
	}},
	{"c_tstz_arr", "timestamptz[]", [4]typeCell{
		{`'{"2024-01-02 03:04:05+00"}'`, `["2024-01-02T03:04:05Z"]`, ""},
		{`'{"10000-01-01 00:00:00+00",infinity}'`, `["+010000-01-01T00:00:00Z", "infinity"]`, "both"},
		{`'{"0001-06-15 12:00:00+00 BC",-infinity}'`, `["0000-06-15T12:00:00Z", "-infinity"]`, "both"},
		{`'{NULL,"1970-01-01 00:00:00+00"}'`, `[null, "1970-01-01T00:00:00Z"]`, ""},
	}},
	{"c_interval", "interval", [4]typeCell{
		{"'1 year 2 mons 3 days 04:05:06.789'", `"P1Y2M3DT4H5M6.789S"`, ""},
		{"'178956970 years 7 mons 2147483647 days 2562047788:00:54.775807'", `"P178956970Y7M2147483647DT2562047788H54.775807S"`, ""},
		{"'-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807'", `"P-178956970Y-8M-2147483648DT-2562047788H-54.775807S"`, ""},
		{"'-1 days +02:03:00'", `"P-1DT2H3M"`, ""},
	}},
	{"c_interval0", "interval", [4]typeCell{
		{"'00:00:00'", `"PT0S"`, ""},
		{"'-0.000001 seconds'", `"PT-0.000001S"`, ""},
		{"'1 mon -1 days'", `"P1M-1D"`, ""},
		{"'100 hours'", `"PT100H"`, ""},
	}},
	{"c_inet", "inet", [4]typeCell{
		{"'192.168.0.1/24'", `"192.168.0.1/24"`, ""},
		{"'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'", `"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"`, ""},
		{"'0.0.0.0/0'", `"0.0.0.0/0"`, ""},
		{"'::ffff:10.0.0.1'", `"::ffff:10.0.0.1"`, ""},
	}},
	{"c_cidr", "cidr", [4]typeCell{
		{"'10.0.0.0/8'", `"10.0.0.0/8"`, ""},
		{"'2001:db8::/32'", `"2001:db8::/32"`, ""},
		{"'0.0.0.0/0'", `"0.0.0.0/0"`, ""},
		{"'192.168.1.1'", `"192.168.1.1/32"`, ""},
	}},
	{"c_macaddr", "macaddr", [4]typeCell{
		{"'08:00:2b:01:02:03'", `"08:00:2b:01:02:03"`, ""},
		{"'ff:ff:ff:ff:ff:ff'", `"ff:ff:ff:ff:ff:ff"`, ""},
		{"'00:00:00:00:00:00'", `"00:00:00:00:00:00"`, ""},
		{"'08-00-2B-01-02-03'", `"08:00:2b:01:02:03"`, ""},
	}},
	{"c_macaddr8", "macaddr8", [4]typeCell{
		{"'08:00:2b:01:02:03:04:05'", `"08:00:2b:01:02:03:04:05"`, ""},
		{"'ff:ff:ff:ff:ff:ff:ff:ff'", `"ff:ff:ff:ff:ff:ff:ff:ff"`, ""},
		{"'00:00:00:00:00:00:00:00'", `"00:00:00:00:00:00:00:00"`, ""},
		{"'08:00:2b:01:02:03'", `"08:00:2b:ff:fe:01:02:03"`, ""},
	}},
	{"c_money", "money", [4]typeCell{
		{"1234.56", `1234.56`, ""},
		{"'92233720368547758.07'", `92233720368547758.07`, ""},
		{"'-92233720368547758.08'", `-92233720368547758.08`, ""},
		{"0", `0.00`, ""},
	}},
	{"c_bit", "bit(4)", [4]typeCell{
		{"B'1010'", `"1010"`, ""},
		{"B'1111'", `"1111"`, ""},
		{"B'0000'", `"0000"`, ""},
		{"B'0101'", `"0101"`, ""},
	}},
	{"c_varbit", "varbit", [4]typeCell{
		{"B'1'", `"1"`, ""},
		{"B'1010101010101010101'", `"1010101010101010101"`, ""},
		{"B''", `""`, ""},
		{"B'0'", `"0"`, ""},
	}},
	{"c_tsvector", "tsvector", [4]typeCell{
		{"'a fat cat'", `"'a' 'cat' 'fat'"`, ""},
		{`$$'ünï':1A 'wörd':2B,3C$$`, `"'wörd':2B,3C 'ünï':1A"`, ""},
		{"''", `""`, ""},
		{`$$'it''s' 'a\\b'$$`, `"'a\\\\b' 'it''s'"`, ""},
	}},
	{"c_tsquery", "tsquery", [4]typeCell{
		{"'fat & (rat | cat)'", `"'fat' & ( 'rat' | 'cat' )"`, ""},
		{"'!a <-> b:*'", `"!'a' <-> 'b':*"`, ""},
		{"'a:AB'", `"'a':AB"`, ""},
		{`$$'it''s' & x$$`, `"'it''s' & 'x'"`, ""},
	}},
	{"c_point", "point", [4]typeCell{
		{"'(1.5,-2)'", `{"x": 1.5, "y": -2.0}`, ""},
		{"'(1.7976931348623157e308,Infinity)'", `{"x": 1.7976931348623157e+308, "y": "Infinity"}`, "c_point.x c_point.y"},
		{"'(-0,-Infinity)'", `{"x": -0.0, "y": "-Infinity"}`, "c_point.y"},
		{"'(NaN,0)'", `{"x": "NaN", "y": 0.0}`, "c_point.x"},
	}},
	{"c_line", "line", [4]typeCell{
		{"'{1,-1,0}'", `"{1,-1,0}"`, ""},
		{"'{1.5,0,-3}'", `"{1.5,0,-3}"`, ""},
		{"'{0,-1,0}'", `"{0,-1,0}"`, ""},
		{"'{1,0,NaN}'", `"{1,0,NaN}"`, ""},
	}},
	{"c_lseg", "lseg", [4]typeCell{
		{"'[(0,0),(1,1.5)]'", `"[(0,0),(1,1.5)]"`, ""},
		{"'((1e300,-1e300),(0,0))'", `"[(1e+300,-1e+300),(0,0)]"`, ""},
		{"'[(0,0),(0,0)]'", `"[(0,0),(0,0)]"`, ""},
		{"'[(-0,0),(1,1)]'", `"[(-0,0),(1,1)]"`, ""},
	}},
	{"c_box", "box", [4]typeCell{
		{"'(0,0),(1,1)'", `"(1,1),(0,0)"`, ""},
		{"'(1e300,1e300),(-1e300,-1e300)'", `"(1e+300,1e+300),(-1e+300,-1e+300)"`, ""},
		{"'(0,0),(0,0)'", `"(0,0),(0,0)"`, ""},
		{"'(2.5,3),(1,-1)'", `"(2.5,3),(1,-1)"`, ""},
	}},
	{"c_path", "path", [4]typeCell{
		{"'((0,0),(1,1),(2,0))'", `"((0,0),(1,1),(2,0))"`, ""},
		{"'[(0,0),(1,1)]'", `"[(0,0),(1,1)]"`, ""},
		{"'[(0,0)]'", `"[(0,0)]"`, ""},
		{"'((0.5,0.25),(1,1))'", `"((0.5,0.25),(1,1))"`, ""},
	}},
	{"c_polygon", "polygon", [4]typeCell{
		{"'((0,0),(1,1),(1,0))'", `"((0,0),(1,1),(1,0))"`, ""},
		{"'((0,0),(1e300,0),(0,1e300))'", `"((0,0),(1e+300,0),(0,1e+300))"`, ""},
		{"'((0,0))'", `"((0,0))"`, ""},
		{"'((-1.5,-1.5),(1.5,1.5),(0,0))'", `"((-1.5,-1.5),(1.5,1.5),(0,0))"`, ""},
	}},
	{"c_circle", "circle", [4]typeCell{
		{"'<(0,0),1.5>'", `"<(0,0),1.5>"`, ""},
		{"'<(1e300,-1e300),1e300>'", `"<(1e+300,-1e+300),1e+300>"`, ""},
		{"'<(0,0),0>'", `"<(0,0),0>"`, ""},
		{"'<(0.1,0.2),0.3>'", `"<(0.1,0.2),0.3>"`, ""},
	}},
	{"c_int4range", "int4range", [4]typeCell{
		{"'[1,10)'", `"[1,10)"`, ""},
		{"'(,)'", `"(,)"`, ""},
		{"'empty'", `"empty"`, ""},
		{"'[1,1]'", `"[1,2)"`, ""},
	}},
	{"c_numrange", "numrange", [4]typeCell{
		{"'[1.5,2.5]'", `"[1.5,2.5]"`, ""},
		{"'[-Infinity,Infinity]'", `"[-Infinity,Infinity]"`, ""},
		{"'empty'", `"empty"`, ""},
		{"'(0.10,)'", `"(0.10,)"`, ""},
	}},
	{"c_tsrange", "tsrange", [4]typeCell{
		{`'["2024-01-01 00:00:00","2024-02-01 00:00:00")'`, `"[\"2024-01-01 00:00:00\",\"2024-02-01 00:00:00\")"`, ""},
		{"'[2024-01-01,infinity)'", `"[\"2024-01-01 00:00:00\",infinity)"`, ""},
		{"'empty'", `"empty"`, ""},
		{"'(,2024-01-01 12:00:00.5]'", `"(,\"2024-01-01 12:00:00.5\"]"`, ""},
	}},
	{"c_tstzrange", "tstzrange", [4]typeCell{
		{"'[2024-01-01 00:00:00+05,2024-02-01)'", `"[\"2023-12-31 19:00:00+00\",\"2024-02-01 00:00:00+00\")"`, ""},
		{"'[-infinity,infinity]'", `"[-infinity,infinity]"`, ""},
		{"'empty'", `"empty"`, ""},
		{"'[0044-03-15 12:00:00+00 BC,)'", `"[\"0044-03-15 12:00:00+00 BC\",)"`, ""},
	}},
	{"c_daterange", "daterange", [4]typeCell{
		{"'[2024-01-01,2024-02-01)'", `"[2024-01-01,2024-02-01)"`, ""},
		{"'[2024-01-01,2024-01-31]'", `"[2024-01-01,2024-02-01)"`, ""},
		{"'empty'", `"empty"`, ""},
		{"'(,infinity)'", `"(,infinity)"`, ""},
	}},
	{"c_int4multirange", "int4multirange", [4]typeCell{
		{"'{[1,3),[5,7)}'", `"{[1,3),[5,7)}"`, ""},
		{"'{[1,2],[2,3)}'", `"{[1,3)}"`, ""},
		{"'{}'", `"{}"`, ""},
		{"'{(,)}'", `"{(,)}"`, ""},
	}},
	{"c_datemultirange", "datemultirange", [4]typeCell{
		{"'{[2024-01-01,2024-02-01)}'", `"{[2024-01-01,2024-02-01)}"`, ""},
		{"'{[2024-01-01,2024-01-05],[2024-03-01,)}'", `"{[2024-01-01,2024-01-06),[2024-03-01,)}"`, ""},
		{"'{}'", `"{}"`, ""},
		{"'{[4713-01-01 BC,0001-01-01)}'", `"{[\"4713-01-01 BC\",0001-01-01)}"`, ""}, // bounds with a space are quoted
	}},
	{"c_int_arr", "int4[]", [4]typeCell{
		{"'{1,2,3}'", `[1, 2, 3]`, ""},
		{"'{2147483647,-2147483648}'", `[2147483647, -2147483648]`, ""},
		{"'{}'", `[]`, ""},
		{"'{1,NULL,3}'", `[1, null, 3]`, ""},
	}},
	{"c_int_2d", "int4[][]", [4]typeCell{
		{"'{{1,2},{3,4}}'", `[[1, 2], [3, 4]]`, ""},
		{"'{{{1}},{{2}}}'", `[[[1]], [[2]]]`, ""},
		{"'{}'", `[]`, ""},
		{"'[0:1][1:2]={{NULL,1},{2,NULL}}'", `[[null, 1], [2, null]]`, ""},
	}},
	{"c_text_arr", "text[]", [4]typeCell{
		{"'{a,b}'", `["a", "b"]`, ""},
		{`'{"with \"quotes\"","a,comma","{braces}","back\\slash"," spaced ","NULL",""}'`, `["with \"quotes\"", "a,comma", "{braces}", "back\\slash", " spaced ", "NULL", ""]`, ""},
		{"'{}'", `[]`, ""},
		{`'{NULL,null,"",x}'`, `[null, null, "", "x"]`, ""},
	}},
	{"c_float_arr", "float8[]", [4]typeCell{
		{"'{1.5,2}'", `[1.5, 2.0]`, ""},
		{"'{Infinity,1e300}'", `["Infinity", 1e+300]`, "both"},
		{"'{-0,-Infinity}'", `[-0.0, "-Infinity"]`, "both"},
		{"'{NaN,NULL,0.1}'", `["NaN", null, 0.1]`, "both"},
	}},
	{"c_numeric_arr", "numeric(8,2)[]", [4]typeCell{
		{"'{1.5,2}'", `[1.50, 2.00]`, ""},
		{"'{999999.99}'", `[999999.99]`, ""},
		{"'{}'", `[]`, ""},
		{"'{NULL,-0.5}'", `[null, -0.50]`, ""},
	}},
	{"c_bytea_arr", "bytea[]", [4]typeCell{
		{`'{"\\x68656c6c6f"}'`, `["aGVsbG8="]`, ""},
		{`'{"\\x00ff",NULL,"\\x"}'`, `["AP8=", null, ""]`, ""},
		{"'{}'", `[]`, ""},
		{`ARRAY['\xc328'::bytea]`, `["wyg="]`, ""},
	}},
	{"c_oid", "oid", [4]typeCell{
		{"12345", `12345`, ""},
		{"4294967295", `4294967295`, ""},
		{"0", `0`, ""},
		{"1", `1`, ""},
	}},
	{"c_pg_lsn", "pg_lsn", [4]typeCell{
		{"'16/B374D848'", `"16/B374D848"`, ""},
		{"'FFFFFFFF/FFFFFFFF'", `"FFFFFFFF/FFFFFFFF"`, ""},
		{"'0/0'", `"0/0"`, ""},
		{"'0/1'", `"0/1"`, ""},
	}},
	{"c_xml", "xml", [4]typeCell{
		{`'<a b="1">x &amp; y</a>'`, `"<a b=\"1\">x &amp; y</a>"`, ""},
		{"'<r>ünï 😀 &lt;&gt;</r>'", `"<r>ünï 😀 &lt;&gt;</r>"`, ""},
		{"''", `""`, ""},
		{"'plain text'", `"plain text"`, ""},
	}},
	{"c_enum", "tg_mood", [4]typeCell{
		{"'ok'", `"ok"`, ""},
		{"'happy'", `"happy"`, ""},
		{"'sad'", `"sad"`, ""},
		{`'not so "ok", really'`, `"not so \"ok\", really"`, ""},
	}},
	{"c_enum_arr", "tg_mood[]", [4]typeCell{
		{"'{ok,happy}'", `["ok", "happy"]`, ""},
		{`'{"not so \"ok\", really"}'`, `["not so \"ok\", really"]`, ""},
		{"'{}'", `[]`, ""},
		{"'{NULL,sad}'", `[null, "sad"]`, ""},
	}},
	{"c_domain", "tg_posint", [4]typeCell{
		{"1", `1`, ""},
		{"2147483647", `2147483647`, ""},
		{"1", `1`, ""},
		{"7", `7`, ""},
	}},
	{"c_composite", "tg_pair", [4]typeCell{
		{"ROW(1, 'a b', '2024-01-02 03:04:05+00', '{x,y}')",
			`{"n": 1, "t": "a b", "ts": "2024-01-02T03:04:05Z", "tags": ["x", "y"]}`, ""},
		{`ROW(2147483647, E'q"uote,comma(paren)\\back', '294276-12-31 23:59:59.999999+00', '{"a,b","{c}"}')`,
			`{"n": 2147483647, "t": "q\"uote,comma(paren)\\back", "ts": "+294276-12-31T23:59:59.999999Z", "tags": ["a,b", "{c}"]}`, "es:c_composite.ts"},
		{"ROW(NULL, NULL, NULL, NULL)",
			`{"n": null, "t": null, "ts": null, "tags": null}`, ""},
		{"ROW(0, '', 'infinity', '{}')",
			`{"n": 0, "t": "", "ts": "infinity", "tags": []}`, "c_composite.ts"},
	}},
	{"c_composite_arr", "tg_pair[]", [4]typeCell{
		{"ARRAY[ROW(1, 'a', '2024-01-02 03:04:05+00', '{x}')::tg_pair]",
			`[{"n": 1, "t": "a", "ts": "2024-01-02T03:04:05Z", "tags": ["x"]}]`, ""},
		{"ARRAY[ROW(2, 'b', NULL, '{}')::tg_pair, NULL, ROW(3, 'c,\"d\"', '1970-01-01 00:00:00+00', '{NULL}')::tg_pair]",
			`[{"n": 2, "t": "b", "ts": null, "tags": []}, null, {"n": 3, "t": "c,\"d\"", "ts": "1970-01-01T00:00:00Z", "tags": [null]}]`, ""},
		{"'{}'", `[]`, ""},
		{"ARRAY[ROW(NULL, NULL, NULL, NULL)::tg_pair]",
			`[{"n": null, "t": null, "ts": null, "tags": null}]`, ""},
	}},
}

// typeRows are the row kinds: variant v (0-3) of typeColumns, or -1 for
// all columns NULL.
var typeRows = []int{0, 1, 2, 3, -1}

func typeRowLabel(v int) string {
	if v < 0 {
		return "all NULL"
	}
	return typeVariants[v]
}

// typeValues returns the column list and SQL values of variant v.
func typeValues(v int) (cols, vals []string) {
	for _, c := range typeColumns {
		cols = append(cols, c.name)
		if v < 0 {
			vals = append(vals, "NULL")
		} else {
			vals = append(vals, c.cells[v].sql)
		}
	}
	return cols, vals
}

func typeInsert(id, v int) string {
	cols, vals := typeValues(v)
	return fmt.Sprintf("INSERT INTO tg_types (id, %s) VALUES (%d, %s)", strings.Join(cols, ", "), id, strings.Join(vals, ", "))
}

func typeUpdate(id, v int) string {
	cols, vals := typeValues(v)
	return fmt.Sprintf("UPDATE tg_types SET (%s) = (%s) WHERE id = %d", strings.Join(cols, ", "), strings.Join(vals, ", "), id)
}

// typeWant is the expected document of a row of variant v on flavor.
func typeWant(id, v int, path, flavor string) typeWantDoc {
	w := typeWantDoc{
		label:  fmt.Sprintf("%s row, by %s", typeRowLabel(v), path),
		fields: map[string]string{"id": fmt.Sprint(id)},
		order:  []string{"id"},
	}
	for _, c := range typeColumns {
		w.order = append(w.order, c.name)
		if v < 0 {
			w.fields[c.name] = "null"
			continue
		}
		cell := c.cells[v]
		w.fields[c.name] = cell.json
		for _, tok := range strings.Fields(cell.ignored) {
			switch {
			case tok == "both":
				w.ignored = append(w.ignored, c.name)
			case tok == "es":
				if flavor == "elasticsearch" {
					w.ignored = append(w.ignored, c.name)
				}
			case strings.HasPrefix(tok, "es:"):
				if flavor == "elasticsearch" {
					w.ignored = append(w.ignored, strings.TrimPrefix(tok, "es:"))
				}
			default:
				w.ignored = append(w.ignored, tok)
			}
		}
	}
	slices.Sort(w.ignored)
	return w
}

// TestTypesRoundTrip: every type family reaches Elasticsearch and
// OpenSearch exactly as docs/types.md says, identically by the snapshot,
// by streamed inserts and by streamed updates, and no event is
// dead-lettered. Indexes use dynamic mapping with
// index.mapping.ignore_malformed, the setting docs/types.md recommends:
// values a field cannot index (NaN in a float field, year 294276 in an
// Elasticsearch date field) are kept in _source and listed in _ignored,
// which the test checks value by value.
func TestTypesRoundTrip(t *testing.T) {
	for flavor, url := range clusters(t) {
		t.Run(flavor, func(t *testing.T) {
			e := newEnv(t, url)
			testkit.Exec(t, e.conn, typesSchema, typesTable())
			e.tables = []string{"public.tg_types"}
			e.sinkExtra = `      index_settings: {"index.mapping.ignore_malformed": true}` + "\n"

			// Snapshot: rows 1-5 (one per row kind); rows 201-204 are
			// NULL and 205 typical, to be updated while streaming.
			// The typical row is inserted first: the snapshot reads it
			// first, so it decides the dynamic mapping.
			want := map[string]typeWantDoc{}
			snap := map[string]typeWantDoc{}
			for i, v := range typeRows {
				testkit.Exec(t, e.conn, typeInsert(1+i, v))
				want[fmt.Sprint(1+i)] = typeWant(1+i, v, "snapshot", flavor)
				snap[fmt.Sprint(1+i)] = want[fmt.Sprint(1+i)]
			}
			for i, v := range typeRows {
				before := -1 // NULL, updated to v while streaming
				if v < 0 {
					before = 0 // typical, updated to NULL
				}
				testkit.Exec(t, e.conn, typeInsert(201+i, before))
				snap[fmt.Sprint(201+i)] = typeWant(201+i, before, "snapshot", flavor)
			}
			p := e.start()
			e.waitMetric(p, convergeTimeout, 1, "tidegate_snapshot_progress_ratio")
			e.waitTypeDocs(p, "public.tg_types", snap, flavor)

			// Streaming: the same rows inserted (101-105), and rows
			// 201-205 updated to them in one transaction.
			var upd []string
			for i, v := range typeRows {
				testkit.Exec(t, e.conn, typeInsert(101+i, v))
				want[fmt.Sprint(101+i)] = typeWant(101+i, v, "streamed insert", flavor)
				upd = append(upd, typeUpdate(201+i, v))
				want[fmt.Sprint(201+i)] = typeWant(201+i, v, "streamed update", flavor)
			}
			testkit.Exec(t, e.conn, "BEGIN", strings.Join(upd, ";\n"), "COMMIT")
			docs := e.waitTypeDocs(p, "public.tg_types", want, flavor)

			// The three paths give the same bytes, not only the same values.
			for i := range typeRows {
				base, err := withoutIDColumn(docs[fmt.Sprint(1+i)].Source)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range []int{101 + i, 201 + i} {
					other, err := withoutIDColumn(docs[fmt.Sprint(id)].Source)
					if err != nil {
						t.Fatal(err)
					}
					if string(other) != string(base) {
						t.Errorf("doc %d (%s) differs from doc %d (snapshot) beyond its id:\n  snapshot %s\n  %d       %s",
							id, want[fmt.Sprint(id)].label, 1+i, base, id, other)
					}
				}
			}
			e.noDeadLetters()
			p.stop()
		})
	}
}

func typesTable() string {
	var sb strings.Builder
	sb.WriteString("CREATE TABLE tg_types (id int PRIMARY KEY")
	for _, c := range typeColumns {
		fmt.Fprintf(&sb, ", %s %s", c.name, c.typ)
	}
	sb.WriteString(")")
	return sb.String()
}

// waitTypeDocs polls the table's index until it holds exactly the
// expected documents (fails at once when an event is dead-lettered) and
// returns them.
func (e *env) waitTypeDocs(p *proc, table string, want map[string]typeWantDoc, flavor string) map[string]typeStoredDoc {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(convergeTimeout)
	for {
		docs, err := searchTypeDocs(ctx, e.searchURL, e.index(table))
		var diffs []string
		if err != nil {
			diffs = append(diffs, err.Error())
		} else {
			diffs = typeDiffs(want, docs)
		}
		if len(diffs) == 0 {
			return docs
		}
		if dead, _ := e.metric("tidegate_events_total", `stage="dlq:search"`); dead > 0 {
			p.dumpLog()
			e.t.Fatalf("%v events went to the dead-letter queue (%s rejected a document: see the log above); documents now:\n%s",
				dead, flavor, strings.Join(diffs, "\n"))
		}
		if p.exited() {
			p.dumpLog()
			e.t.Fatalf("tidegate exited while waiting for the documents")
		}
		if time.Now().After(deadline) {
			e.dumpMetrics()
			e.t.Fatalf("%s: documents not as docs/types.md says after %s (%d differences):\n%s",
				flavor, convergeTimeout, len(diffs), strings.Join(diffs, "\n"))
		}
		time.Sleep(250 * time.Millisecond) // polling a condition
	}
}

func typeDiffs(want map[string]typeWantDoc, docs map[string]typeStoredDoc) []string {
	var diffs []string
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		got, ok := docs[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("doc %s (%s): missing", id, want[id].label))
			continue
		}
		diffs = append(diffs, diffTypeDoc(id, want[id], got, true)...)
	}
	for id := range docs {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("doc %s: not expected", id))
		}
	}
	return diffs
}

// TestTypesRejectedWithoutIgnoreMalformed: with plain dynamic mapping
// (index.mapping.ignore_malformed false, the cluster default), a value the
// field's mapped type cannot hold makes the cluster reject the whole
// document. No JSON rendering can avoid it without losing the value (a
// float field cannot hold NaN; Elasticsearch's default date format has no
// year before 0 or after 9999), so such events go to the dead-letter queue
// with the cluster's error: nothing is dropped silently. The test pins
// exactly which values those are (docs/types.md lists them), and that
// float arrays mixing integral and fractional values are accepted.
func TestTypesRejectedWithoutIgnoreMalformed(t *testing.T) {
	rows := []struct {
		sql      string // VALUES of (id, f, d, ts, n, na, j, fa)
		rejected string // "both", "es" or "" (accepted)
	}{
		{`(1, 1.5, '2024-01-02', '2024-01-02 03:04:05+00', 1.5, NULL, '{"a": 1}', NULL)`, ""}, // decides the mapping
		{`(2, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL)`, "both"},
		{`(3, 1e300, NULL, NULL, NULL, NULL, NULL, NULL)`, "both"}, // float32 overflow of a dynamic `float`
		{`(4, NULL, '4713-01-01 BC', NULL, NULL, NULL, NULL, NULL)`, "es"},
		{`(5, NULL, NULL, 'infinity', NULL, NULL, NULL, NULL)`, "both"},
		{`(6, NULL, NULL, '294276-12-31 23:59:59.999999+00', NULL, NULL, NULL, NULL)`, "es"},
		{`(7, NULL, NULL, NULL, 'NaN', NULL, NULL, NULL)`, "both"},
		{`(8, NULL, NULL, NULL, NULL, '{1.5,2}', NULL, NULL)`, "both"},         // numeric digits as PostgreSQL writes them: [1.5,2]
		{`(9, NULL, NULL, NULL, NULL, NULL, '{"b": [1, 2.5]}', NULL)`, "both"}, // json as stored
		{`(10, NULL, NULL, NULL, NULL, NULL, NULL, '{1.5,2}')`, ""},            // float8: [1.5,2.0]
		{`(11, '-0', '0001-01-01 BC', '1970-01-01 00:00:00+00', -12.50, NULL, '{"a": 2}', '{-0}')`, ""},
	}
	accepted := map[string]map[string]string{ // id -> column -> JSON (docs/types.md)
		"1":  {"f": `1.5`, "d": `"2024-01-02"`, "ts": `"2024-01-02T03:04:05Z"`, "n": `1.5`, "na": `null`, "j": `{"a": 1}`, "fa": `null`},
		"4":  {"f": `null`, "d": `"-004712-01-01"`, "ts": `null`, "n": `null`, "na": `null`, "j": `null`, "fa": `null`},
		"6":  {"f": `null`, "d": `null`, "ts": `"+294276-12-31T23:59:59.999999Z"`, "n": `null`, "na": `null`, "j": `null`, "fa": `null`},
		"10": {"f": `null`, "d": `null`, "ts": `null`, "n": `null`, "na": `null`, "j": `null`, "fa": `[1.5, 2.0]`},
		"11": {"f": `-0.0`, "d": `"0000-01-01"`, "ts": `"1970-01-01T00:00:00Z"`, "n": `-12.50`, "na": `null`, "j": `{"a": 2}`, "fa": `[-0.0]`},
	}
	for flavor, url := range clusters(t) {
		t.Run(flavor, func(t *testing.T) {
			e := newEnv(t, url)
			testkit.Exec(t, e.conn, `CREATE TABLE tg_reject (id int PRIMARY KEY, f float8, d date, ts timestamptz, n numeric, na numeric[], j json, fa float8[])`)
			e.tables = []string{"public.tg_reject"}
			e.sinkExtra = `      index_settings: {"index.mapping.ignore_malformed": false}` + "\n"
			want := map[string]typeWantDoc{}
			var dead float64
			for _, r := range rows {
				testkit.Exec(t, e.conn, "INSERT INTO tg_reject (id, f, d, ts, n, na, j, fa) VALUES "+r.sql)
				id := strings.TrimPrefix(strings.SplitN(r.sql, ",", 2)[0], "(")
				if r.rejected == "both" || (r.rejected == "es" && flavor == "elasticsearch") {
					dead++
					continue
				}
				w := typeWantDoc{label: "row " + id, fields: map[string]string{"id": id}, order: []string{"id", "f", "d", "ts", "n", "na", "j", "fa"}}
				for col, v := range accepted[id] {
					w.fields[col] = v
				}
				want[id] = w
			}
			p := e.start()
			ctx := context.Background()
			deadline := time.Now().Add(convergeTimeout)
			for {
				got, _ := e.metric("tidegate_events_total", `stage="dlq:search"`)
				docs, err := searchTypeDocs(ctx, e.searchURL, e.index("public.tg_reject"))
				var diffs []string
				if err != nil {
					diffs = []string{err.Error()}
				} else {
					for id, w := range want {
						if d, ok := docs[id]; !ok {
							diffs = append(diffs, fmt.Sprintf("doc %s: missing", id))
						} else {
							diffs = append(diffs, diffTypeDoc(id, w, d, false)...)
						}
					}
					for id := range docs {
						if _, ok := want[id]; !ok {
							diffs = append(diffs, fmt.Sprintf("doc %s: indexed, but %s should reject it", id, flavor))
						}
					}
				}
				if got > dead {
					p.dumpLog()
					t.Fatalf("%v events went to the dead-letter queue, want %v (documents: %v)", got, dead, diffs)
				}
				if got == dead && len(diffs) == 0 {
					break
				}
				if time.Now().After(deadline) {
					p.dumpLog()
					t.Fatalf("after %s: %v dead letters, want %v; documents:\n%s", convergeTimeout, got, dead, strings.Join(diffs, "\n"))
				}
				time.Sleep(250 * time.Millisecond) // polling a condition
			}
			p.stop()
		})
	}
}
