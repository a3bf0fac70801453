package pgdecode_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
	"github.com/tidegate/tidegate/internal/testkit"
)

// External test package: testkit imports pgdecode.
//
// Integration tests against a real PostgreSQL (TIDEGATE_TEST_PG_DSN, see
// testkit.PostgresDSN): every value is written with SQL, read back in text
// format with pgdecode.SessionParams set, decoded and compared with hand-written
// JSON, and random values are cross-checked against PostgreSQL's own
// computations (extract(epoch ...), float8send, array_to_json, to_json).

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pgEnv is one test's connection and private schema (dropped at the end).
type pgEnv struct {
	t      *testing.T
	ctx    context.Context
	conn   *pgx.Conn
	schema string
	types  *pgdecode.Types
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	dsn := testkit.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parsing DSN: %v", err)
	}
	for k, v := range pgdecode.SessionParams {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	e := &pgEnv{t: t, ctx: ctx, conn: conn, types: pgdecode.NewTypes(),
		schema: fmt.Sprintf("pgdecode_%s_%d", strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())), rand.Uint32())}
	if len(e.schema) > 60 {
		e.schema = e.schema[:50] + strconv.FormatUint(uint64(rand.Uint32()), 36)
	}
	e.exec("CREATE SCHEMA " + e.schema)
	e.exec("SET search_path = " + e.schema + ", public")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+e.schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", e.schema, err)
		}
		conn.Close(ctx)
	})
	return e
}

func (e *pgEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.conn.Exec(e.ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// extension creates an extension (in public, left installed: other tests
// may share it) and reports whether it is available.
func (e *pgEnv) extension(name string) bool {
	e.t.Helper()
	var ok bool
	if err := e.conn.QueryRow(e.ctx, "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)", name).Scan(&ok); err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return false
	}
	_, err := e.conn.Exec(e.ctx, "CREATE EXTENSION IF NOT EXISTS "+name+" WITH SCHEMA public")
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42710")) {
		e.t.Fatalf("creating extension %s: %v", name, err)
	}
	return true
}

// result is a query result in text format, copied out of pgx's buffers.
type result struct {
	names []string
	oids  []uint32
	rows  [][][]byte
}

// query runs sql with the text result format and loads the column types.
func (e *pgEnv) query(sql string, args ...any) result {
	e.t.Helper()
	rows, err := e.conn.Query(e.ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	var r result
	for _, fd := range rows.FieldDescriptions() {
		r.names = append(r.names, fd.Name)
		r.oids = append(r.oids, fd.DataTypeOID)
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([][]byte, len(raw))
		for i, b := range raw {
			if b != nil {
				row[i] = append([]byte{}, b...)
			}
		}
		r.rows = append(r.rows, row)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if err := e.types.Load(e.ctx, e.conn, r.oids...); err != nil {
		e.t.Fatalf("loading types: %v", err)
	}
	return r
}

func (e *pgEnv) decode(oid uint32, text []byte) *event.Value {
	e.t.Helper()
	v, err := e.types.Decode(oid, text)
	if err != nil {
		e.t.Fatalf("decoding %q: %v", text, err)
	}
	return v
}

func renderJSON(v *event.Value) string { return string(event.AppendValueJSON(nil, v)) }

// pgCase is one SQL literal of a column type and its expected JSON
// rendering; wantErr expects a decoding error instead.
type pgCase struct {
	literal string
	want    string
	wantErr error
}

// checkColumn stores the cases in a fresh table with one column of typ and
// compares the decoded values.
func (e *pgEnv) checkColumn(table, typ string, cases []pgCase) {
	e.t.Helper()
	e.exec(fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v %s)", table, typ))
	for i, c := range cases {
		e.exec(fmt.Sprintf("INSERT INTO %s VALUES (%d, %s)", table, i, c.literal))
	}
	r := e.query(fmt.Sprintf("SELECT v FROM %s ORDER BY id", table))
	if len(r.rows) != len(cases) {
		e.t.Fatalf("%s: %d rows, want %d", table, len(r.rows), len(cases))
	}
	for i, c := range cases {
		text := r.rows[i][0]
		v, err := e.types.Decode(r.oids[0], text)
		switch {
		case c.wantErr != nil:
			if !errors.Is(err, c.wantErr) {
				e.t.Errorf("%s %s: Decode(%q) = %v, %v; want error %v", typ, c.literal, text, v, err, c.wantErr)
			}
		case err != nil:
			e.t.Errorf("%s %s: Decode(%q): %v", typ, c.literal, text, err)
		default:
			if got := renderJSON(v); got != c.want {
				e.t.Errorf("%s %s: text %q -> %s, want %s", typ, c.literal, text, got, c.want)
			}
		}
	}
}

func TestPostgresScalars(t *testing.T) {
	e := newPGEnv(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	allHex := `'\x` + hex.EncodeToString(all) + `'`
	families := []struct {
		typ   string
		cases []pgCase
	}{
		{"bool", []pgCase{{"true", "true", nil}, {"false", "false", nil}, {"NULL", "null", nil}}},
		{"int2", []pgCase{{"-32768", "-32768", nil}, {"32767", "32767", nil}}},
		{"int4", []pgCase{{"-2147483648", "-2147483648", nil}, {"0", "0", nil}}},
		{"int8", []pgCase{
			{"9223372036854775807", "9223372036854775807", nil},
			{"-9223372036854775808", "-9223372036854775808", nil},
			{"9007199254740993", "9007199254740993", nil},
		}},
		{"oid", []pgCase{{"4294967295", "4294967295", nil}}},
		{"xid8", []pgCase{{"'18446744073709551615'", "18446744073709551615", nil}}},
		{"float4", []pgCase{
			{"'0.1'", "0.1", nil}, {"'-0'", "-0.0", nil}, {"'NaN'", `"NaN"`, nil},
			{"'Infinity'", `"Infinity"`, nil}, {"'-Infinity'", `"-Infinity"`, nil},
			{"'3.4028235e38'", "3.4028235e+38", nil}, {"'1e-45'", "1e-45", nil},
			{"'7.038531e-26'", "7.038530999999999e-26", nil}, // float32 midpoint case, see parseFloat4
			{"'16777217'", "16777216.0", nil},
		}},
		{"float8", []pgCase{
			{"'0.1'", "0.1", nil}, {"'-0'", "-0.0", nil}, {"'NaN'", `"NaN"`, nil},
			{"'Infinity'", `"Infinity"`, nil}, {"'-Infinity'", `"-Infinity"`, nil},
			{"'1.7976931348623157e308'", "1.7976931348623157e+308", nil}, {"'5e-324'", "5e-324", nil},
			{"'1.2345678901234567'", "1.2345678901234567", nil},
		}},
		{"numeric", []pgCase{
			{"'-12.3400'", "-12.3400", nil},
			{"'1234567890123456789012345678901234567890.0123456789'", "1234567890123456789012345678901234567890.0123456789", nil},
			{"'0.000000000000000000000000000001'", "0.000000000000000000000000000001", nil},
			{"'NaN'", `"NaN"`, nil}, {"'Infinity'", `"Infinity"`, nil}, {"'-Infinity'", `"-Infinity"`, nil},
			{"'1e20'", "100000000000000000000", nil},
		}},
		{"numeric(10,2)", []pgCase{{"'3.1'", "3.10", nil}}},
		{"money", []pgCase{
			{"'1234.56'", "1234.56", nil}, {"'-1234.56'", "-1234.56", nil}, {"'0'", "0.00", nil},
			{"'-92233720368547758.08'", "-92233720368547758.08", nil},
			{"'92233720368547758.07'", "92233720368547758.07", nil},
		}},
		{"text", []pgCase{
			{`E'h\u00e9llo "q" \\ \n\t'`, `"héllo \"q\" \\ \n\t"`, nil}, {"''", `""`, nil},
			{`'{"not": "json"}'`, `"{\"not\": \"json\"}"`, nil}, {"'🎉'", `"🎉"`, nil},
		}},
		{"varchar(10)", []pgCase{{"'abc'", `"abc"`, nil}}},
		{"char(5)", []pgCase{{"'ab'", `"ab   "`, nil}}},
		{"name", []pgCase{{"'pg_class'", `"pg_class"`, nil}}},
		{`"char"`, []pgCase{{"'a'", `"a"`, nil}}},
		{"xml", []pgCase{{"'<a x=\"1\">t</a>'", `"<a x=\"1\">t</a>"`, nil}}},
		{"inet", []pgCase{{"'192.168.0.1/24'", `"192.168.0.1/24"`, nil}, {"'::1'", `"::1"`, nil}}},
		{"cidr", []pgCase{{"'10.0.0.0/8'", `"10.0.0.0/8"`, nil}}},
		{"macaddr", []pgCase{{"'08:00:2b:01:02:03'", `"08:00:2b:01:02:03"`, nil}}},
		{"macaddr8", []pgCase{{"'08:00:2b:01:02:03:04:05'", `"08:00:2b:01:02:03:04:05"`, nil}}},
		{"bit(4)", []pgCase{{"B'0101'", `"0101"`, nil}}},
		{"varbit", []pgCase{{"B'101'", `"101"`, nil}}},
		{"tsvector", []pgCase{{"'a fat cat'", `"'a' 'cat' 'fat'"`, nil}}},
		{"tsquery", []pgCase{{"'fat & rat'", `"'fat' & 'rat'"`, nil}}},
		{"pg_lsn", []pgCase{{"'16/B374D848'", `"16/B374D848"`, nil}}},
		{"uuid", []pgCase{{"'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, nil}}},
		{"bytea", []pgCase{
			{allHex, `"` + base64.StdEncoding.EncodeToString(all) + `"`, nil}, {`''`, `""`, nil},
		}},
		{"json", []pgCase{{`'{"b": 1, "a": [1, 2.50]}'`, `{"b": 1, "a": [1, 2.50]}`, nil}}},
		{"jsonb", []pgCase{
			{`'{"b": 1, "a": [1, 2.50, {"c": null, "d": "\u00e9\n"}]}'`, `{"a": [1, 2.50, {"c": null, "d": "é\n"}], "b": 1}`, nil},
			{`'"just a string"'`, `"just a string"`, nil}, {`'null'`, `null`, nil},
		}},
		{"point", []pgCase{{"'(1.5,-2)'", `{"x":1.5,"y":-2.0}`, nil}, {"'(0.1,1e300)'", `{"x":0.1,"y":1e+300}`, nil}}},
		{"line", []pgCase{{"'{1,2,3}'", `"{1,2,3}"`, nil}}},
		{"lseg", []pgCase{{"'[(1,2),(3,4)]'", `"[(1,2),(3,4)]"`, nil}}},
		{"box", []pgCase{{"'((1,2),(3,4))'", `"(3,4),(1,2)"`, nil}}},
		{"path", []pgCase{{"'[(1,2),(3,4)]'", `"[(1,2),(3,4)]"`, nil}}},
		{"polygon", []pgCase{{"'((0,0),(1,1),(1,0))'", `"((0,0),(1,1),(1,0))"`, nil}}},
		{"circle", []pgCase{{"'<(1,2),3>'", `"<(1,2),3>"`, nil}}},
		{"int4range", []pgCase{{"'[1,10)'", `"[1,10)"`, nil}, {"'empty'", `"empty"`, nil}}},
		{"tstzrange", []pgCase{{"'[2024-01-01,2024-02-01)'", `"[\"2024-01-01 00:00:00+00\",\"2024-02-01 00:00:00+00\")"`, nil}}},
		{"int2vector", []pgCase{{"'1 2 3'", "[1,2,3]", nil}}},
	}
	for i, f := range families {
		e.checkColumn(fmt.Sprintf("scalar_%d", i), f.typ, f.cases)
	}
}

func TestPostgresDateTime(t *testing.T) {
	e := newPGEnv(t)
	e.checkColumn("ts_tz", "timestamptz", []pgCase{
		{"'2024-01-02 03:04:05.123456+00'", `"2024-01-02T03:04:05.123456Z"`, nil},
		{"'2024-01-02 03:04:05.123456+05:30'", `"2024-01-01T21:34:05.123456Z"`, nil},
		{"'4713-11-24 00:00:00+00 BC'", `"-004712-11-24T00:00:00Z"`, nil},
		{"'0044-03-15 12:00:00+00 BC'", `"-000043-03-15T12:00:00Z"`, nil},
		{"'0001-12-31 23:59:59.999999+00 BC'", `"0000-12-31T23:59:59.999999Z"`, nil},
		{"'0001-01-01 00:00:00+00'", `"0001-01-01T00:00:00Z"`, nil},
		{"'1969-12-31 23:59:59.999999+00'", `"1969-12-31T23:59:59.999999Z"`, nil},
		{"'10000-01-01 00:00:00+00'", `"+010000-01-01T00:00:00Z"`, nil},
		{"'294247-01-10 04:00:54.775807+00'", `"+294247-01-10T04:00:54.775807Z"`, nil},
		{"'294247-01-10 04:00:54.775808+00'", `"+294247-01-10T04:00:54.775808Z"`, nil},
		{"'294276-12-31 23:59:59.999999+00'", `"+294276-12-31T23:59:59.999999Z"`, nil},
		{"'infinity'", `"infinity"`, nil},
		{"'-infinity'", `"-infinity"`, nil},
		{"NULL", "null", nil},
	})
	e.checkColumn("ts", "timestamp", []pgCase{
		{"'2024-01-02 03:04:05'", `"2024-01-02T03:04:05"`, nil},
		{"'4713-11-24 00:00:00 BC'", `"-004712-11-24T00:00:00"`, nil},
		{"'294276-12-31 23:59:59.999999'", `"+294276-12-31T23:59:59.999999"`, nil},
		{"'2000-02-29 23:59:59.5'", `"2000-02-29T23:59:59.5"`, nil},
		{"'infinity'", `"infinity"`, nil},
	})
	e.checkColumn("ts_p0", "timestamptz(0)", []pgCase{{"'2024-01-02 03:04:05.6+00'", `"2024-01-02T03:04:06Z"`, nil}})
	e.checkColumn("d", "date", []pgCase{
		{"'2000-02-29'", `"2000-02-29"`, nil},
		{"'4714-11-24 BC'", `"-004713-11-24"`, nil},
		{"'0001-01-01 BC'", `"0000-01-01"`, nil},
		{"'5874897-12-31'", `"+5874897-12-31"`, nil},
		{"'infinity'", `"infinity"`, nil},
		{"'-infinity'", `"-infinity"`, nil},
	})
	e.checkColumn("t", "time", []pgCase{
		{"'24:00:00'", `"24:00:00"`, nil}, {"'00:00:00'", `"00:00:00"`, nil},
		{"'12:34:56.789'", `"12:34:56.789"`, nil}, {"'23:59:59.999999'", `"23:59:59.999999"`, nil},
	})
	e.checkColumn("ttz", "timetz", []pgCase{
		{"'12:34:56.789+05:30'", `"12:34:56.789+05:30"`, nil},
		{"'00:00:00+00'", `"00:00:00+00:00"`, nil},
		{"'12:00:00-05:53:28'", `"12:00:00-05:53:28"`, nil},
		{"'23:59:59.999999-15:59'", `"23:59:59.999999-15:59"`, nil},
		{"'24:00:00+01'", `"24:00:00+01:00"`, nil},
	})
	e.checkColumn("iv", "interval", []pgCase{
		{"'1 year 2 mons 3 days 04:05:06.789'", `"P1Y2M3DT4H5M6.789S"`, nil},
		{"'-1 days +02:03:00'", `"P-1DT2H3M"`, nil},
		{"'0'", `"PT0S"`, nil},
		{"'100 hours'", `"PT100H"`, nil},
		{"'-0.5 seconds'", `"PT-0.5S"`, nil},
		{"'-1 year -2 mons +3 days -04:05:06'", `"P-1Y-2M3DT-4H-5M-6S"`, nil},
		{"'1 mon -1 days'", `"P1M-1D"`, nil},
		{"'2562047788:00:54.775807'", `"PT2562047788H54.775807S"`, nil},
		{"'-2562047788:00:54.775807'", `"PT-2562047788H-54.775807S"`, nil},
		{"'-178956970 years -8 mons'", `"P-178956970Y-8M"`, nil},
		{"'178956970 years 7 mons'", `"P178956970Y7M"`, nil},
		{"'-2147483648 days'", `"P-2147483648D"`, nil},
		{"'1 day 1 microsecond'", `"P1DT0.000001S"`, nil},
	})
}

func TestPostgresArrays(t *testing.T) {
	e := newPGEnv(t)
	e.exec("CREATE TYPE mood AS ENUM ('happy', 'sad', 'a,b \"c\"')")
	e.exec("CREATE DOMAIN posnum AS numeric CHECK (VALUE > 0)")
	e.checkColumn("a_int4", "int4[]", []pgCase{
		{"'{1,2,NULL}'", "[1,2,null]", nil},
		{"'{{1,2},{3,4}}'", "[[1,2],[3,4]]", nil},
		{"'{{{1},{2}},{{3},{NULL}}}'", "[[[1],[2]],[[3],[null]]]", nil},
		{"'{}'", "[]", nil},
		{"'[0:1]={1,2}'", "[1,2]", nil},
		{"'[-2:-1][3:4]={{1,2},{3,4}}'", "[[1,2],[3,4]]", nil},
	})
	e.checkColumn("a_text", "text[]", []pgCase{
		{`ARRAY['a b', NULL, 'NULL', 'null', '', 'x"y\z', 'a,b{}', ' lead', 'trail ', 'é', E'tab\there', '\\']`,
			`["a b",null,"NULL","null","","x\"y\\z","a,b{}"," lead","trail ","é","tab\there","\\\\"]`, nil},
		{`'{{"{",b},{"}",NULL}}'`, `[["{","b"],["}",null]]`, nil},
	})
	e.checkColumn("a_box", "box[]", []pgCase{{"'{(3,4),(1,2);(1,1),(0,0)}'", `["(3,4),(1,2)","(1,1),(0,0)"]`, nil}})
	e.checkColumn("a_point", "point[]", []pgCase{{`ARRAY[point(1,2), NULL, point(-0.5,3)]`, `[{"x":1.0,"y":2.0},null,{"x":-0.5,"y":3.0}]`, nil}})
	e.checkColumn("a_float8", "float8[]", []pgCase{{`'{NaN,-Infinity,-0,1.5,1e300}'`, `["NaN","-Infinity",-0.0,1.5,1e+300]`, nil}})
	e.checkColumn("a_float4", "float4[]", []pgCase{{`'{0.1,NULL,Infinity}'`, `[0.1,null,"Infinity"]`, nil}})
	e.checkColumn("a_numeric", "numeric[]", []pgCase{{`'{1.50,NaN,-Infinity,NULL}'`, `[1.50,"NaN","-Infinity",null]`, nil}})
	e.checkColumn("a_tstz", "timestamptz[]", []pgCase{{`'{"2024-01-02 03:04:05+00",infinity,"0044-03-15 12:00:00+00 BC"}'`,
		`["2024-01-02T03:04:05Z","infinity","-000043-03-15T12:00:00Z"]`, nil}})
	e.checkColumn("a_date", "date[]", []pgCase{{`'{2024-01-01,"0044-03-15 BC",-infinity}'`, `["2024-01-01","-000043-03-15","-infinity"]`, nil}})
	e.checkColumn("a_interval", "interval[]", []pgCase{{`ARRAY['1 day 01:00:00'::interval, '-1 days +02:03:00']`, `["P1DT1H","P-1DT2H3M"]`, nil}})
	e.checkColumn("a_jsonb", "jsonb[]", []pgCase{{`ARRAY['{"a": "x,}"}'::jsonb, '[1, 2]', NULL, '"NULL"']`, `[{"a": "x,}"},[1, 2],null,"NULL"]`, nil}})
	e.checkColumn("a_bytea", "bytea[]", []pgCase{{`ARRAY['\x00ff'::bytea, '', NULL]`, `["AP8=","",null]`, nil}})
	e.checkColumn("a_uuid", "uuid[]", []pgCase{{`'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'`, `["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]`, nil}})
	e.checkColumn("a_bool", "bool[]", []pgCase{{`'{t,f,NULL}'`, `[true,false,null]`, nil}})
	e.checkColumn("a_char", "char(3)[]", []pgCase{{`'{a,"b c"}'`, `["a  ","b c"]`, nil}})
	e.checkColumn("a_mood", "mood[]", []pgCase{{`ARRAY['happy', NULL, 'a,b "c"']::mood[]`, `["happy",null,"a,b \"c\""]`, nil}})
	e.checkColumn("a_posnum", "posnum[]", []pgCase{{`ARRAY[1.50, NULL]::posnum[]`, `[1.50,null]`, nil}})
	e.checkColumn("a_int4range", "int4range[]", []pgCase{{`ARRAY['[1,3)'::int4range, 'empty']`, `["[1,3)","empty"]`, nil}})
}

func TestPostgresUserTypes(t *testing.T) {
	e := newPGEnv(t)
	e.exec("CREATE TYPE mood AS ENUM ('happy', 'sad')")
	e.exec("CREATE DOMAIN posnum AS numeric CHECK (VALUE > 0)")
	e.exec("CREATE DOMAIN smallposnum AS posnum CHECK (VALUE < 100)")
	e.exec("CREATE DOMAIN intlist AS int4[]")
	e.exec("CREATE DOMAIN stamp AS timestamptz")
	e.exec("CREATE TYPE complex AS (a int4, b text, c numeric, d text, e text, f mood, g posnum, h int4[], i jsonb, j timestamptz, k bytea)")
	e.exec("CREATE TYPE withdropped AS (a int4, gone text, b text)")
	e.exec("ALTER TYPE withdropped DROP ATTRIBUTE gone")
	e.exec("CREATE TYPE outer_t AS (c complex, list complex[], m mood[])")
	e.exec("CREATE TYPE nothing AS ()")
	e.exec("CREATE TABLE rowtype_src (id int, label text)")

	e.checkColumn("u_enum", "mood", []pgCase{{"'happy'", `"happy"`, nil}, {"NULL", "null", nil}})
	e.checkColumn("u_domain", "posnum", []pgCase{{"42.50", "42.50", nil}})
	e.checkColumn("u_domain2", "smallposnum", []pgCase{{"1.5", "1.5", nil}})
	e.checkColumn("u_domainarr", "intlist", []pgCase{{"'{1,2,NULL}'", "[1,2,null]", nil}})
	e.checkColumn("u_stamp", "stamp", []pgCase{{"'2024-01-01 00:00:00+00'", `"2024-01-01T00:00:00Z"`, nil}})
	e.checkColumn("u_complex", "complex", []pgCase{
		{`ROW(1, 'a b', NULL, '', 'q"\', 'sad', 2.5, '{1,NULL}', '{"k": "v,)"}', '2024-01-02 03:04:05+00', '\x00ff')`,
			`{"a":1,"b":"a b","c":null,"d":"","e":"q\"\\","f":"sad","g":2.5,"h":[1,null],"i":{"k": "v,)"},"j":"2024-01-02T03:04:05Z","k":"AP8="}`, nil},
		{`ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
			`{"a":null,"b":null,"c":null,"d":null,"e":null,"f":null,"g":null,"h":null,"i":null,"j":null,"k":null}`, nil},
	})
	e.checkColumn("u_dropped", "withdropped", []pgCase{{`ROW(1, 'x')`, `{"a":1,"b":"x"}`, nil}})
	e.checkColumn("u_outer", "outer_t", []pgCase{
		{`ROW(ROW(1,'(x)',NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL)::complex, ARRAY[ROW(2,'y,"z"',NULL,NULL,NULL,'happy',NULL,'{}',NULL,NULL,NULL)::complex, NULL], '{sad}')`,
			`{"c":{"a":1,"b":"(x)","c":null,"d":null,"e":null,"f":null,"g":null,"h":null,"i":null,"j":null,"k":null},` +
				`"list":[{"a":2,"b":"y,\"z\"","c":null,"d":null,"e":null,"f":"happy","g":null,"h":[],"i":null,"j":null,"k":null},null],"m":["sad"]}`, nil},
	})
	e.checkColumn("u_nothing", "nothing", []pgCase{{"ROW()", "{}", nil}})
	e.checkColumn("u_rowtype", "rowtype_src", []pgCase{{"ROW(7, 'seven')", `{"id":7,"label":"seven"}`, nil}})

	if e.extension("citext") {
		e.checkColumn("u_citext", "citext", []pgCase{{"'MiXeD'", `"MiXeD"`, nil}})
		e.checkColumn("u_citext_arr", "citext[]", []pgCase{{"'{A,\"b c\"}'", `["A","b c"]`, nil}})
	} else {
		t.Log("citext extension not available: not tested")
	}
	if e.extension("hstore") {
		e.checkColumn("u_hstore", "hstore", []pgCase{
			{`'a=>1, "b c"=>NULL, "q\"\\"=>"x,y"'`, `{"a":"1","b c":null,"q\"\\":"x,y"}`, nil},
			{`''`, `{}`, nil},
		})
	} else {
		t.Log("hstore extension not available: not tested")
	}

	// Result columns of a domain type are described with the base type's
	// OID; the domain's own OID (pgoutput relations, pg_attribute) decodes
	// the same way.
	r := e.query("SELECT NULL::posnum")
	if r.oids[0] != 1700 {
		t.Logf("PostgreSQL describes a posnum result column as OID %d", r.oids[0])
	}
	var oids [5]uint32
	if err := e.conn.QueryRow(e.ctx, "SELECT 'mood'::regtype::oid, 'posnum'::regtype::oid, 'complex'::regtype::oid, '_mood'::regtype::oid, 'smallposnum'::regtype::oid").
		Scan(&oids[0], &oids[1], &oids[2], &oids[3], &oids[4]); err != nil {
		t.Fatal(err)
	}
	if err := e.types.Load(e.ctx, e.conn, oids[:]...); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"mood (enum)", "posnum (domain)", "complex (composite)", "_mood", "smallposnum (domain)"} {
		want = e.schema + "." + want
		if got := e.types.TypeName(oids[i]); got != want {
			t.Errorf("TypeName(%d) = %q, want %q", oids[i], got, want)
		}
	}
	if v := e.decode(oids[4], []byte("12.50")); renderJSON(v) != "12.50" {
		t.Errorf("domain over domain decoded to %s", renderJSON(v))
	}
}

// countingQuerier counts queries, to check that Load caches.
type countingQuerier struct {
	q pgdecode.Querier
	n int
}

func (c *countingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.n++
	return c.q.Query(ctx, sql, args...)
}

func TestPostgresLoad(t *testing.T) {
	e := newPGEnv(t)
	e.exec("CREATE TYPE mood AS ENUM ('happy')")
	e.exec("CREATE TYPE pair AS (m mood, n int4)")
	var moodOID, moodArrOID, pairOID uint32
	if err := e.conn.QueryRow(e.ctx, "SELECT 'mood'::regtype::oid, '_mood'::regtype::oid, 'pair'::regtype::oid").Scan(&moodOID, &moodArrOID, &pairOID); err != nil {
		t.Fatal(err)
	}
	ty := pgdecode.NewTypes()
	cq := &countingQuerier{q: e.conn}
	// Built-ins and non-existent OIDs: no dependency rounds, non-existent stays unknown.
	if err := ty.Load(e.ctx, cq, 20, 25, 1007); err != nil || cq.n != 0 {
		t.Fatalf("Load(built-ins) = %v after %d queries, want no query", err, cq.n)
	}
	if err := ty.Load(e.ctx, cq, moodArrOID, pairOID, 4000000000); err != nil {
		t.Fatal(err)
	}
	if !ty.Known(moodArrOID) || !ty.Known(moodOID) || !ty.Known(pairOID) || ty.Known(4000000000) {
		t.Fatalf("after Load: known mood[]=%v mood=%v pair=%v missing=%v", ty.Known(moodArrOID), ty.Known(moodOID), ty.Known(pairOID), ty.Known(4000000000))
	}
	n := cq.n
	if err := ty.Load(e.ctx, cq, moodArrOID, pairOID, moodOID); err != nil || cq.n != n {
		t.Fatalf("second Load = %v after %d more queries, want cached", err, cq.n-n)
	}
	v, err := ty.Decode(pairOID, []byte("(happy,1)"))
	if err != nil || renderJSON(v) != `{"m":"happy","n":1}` {
		t.Fatalf("Decode(pair) = %v, %v", v, err)
	}

	// A changed composite type: a stale description fails loudly; Forget
	// and Load fix it.
	e.exec("ALTER TYPE pair ADD ATTRIBUTE extra text")
	r := e.query("SELECT ROW('happy', 2, 'x')::pair") // e.types is another cache: loads fresh
	if _, err := ty.Decode(pairOID, r.rows[0][0]); !errors.Is(err, pgdecode.ErrSyntax) {
		t.Fatalf("Decode with a stale type = %v, want pgdecode.ErrSyntax", err)
	}
	ty.Forget(pairOID)
	if err := ty.Load(e.ctx, e.conn, pairOID); err != nil {
		t.Fatal(err)
	}
	if v := e.decodeWith(ty, pairOID, r.rows[0][0]); renderJSON(v) != `{"m":"happy","n":2,"extra":"x"}` {
		t.Fatalf("after Forget+Load: %s", renderJSON(v))
	}

	// Concurrent Decode while Load/Forget replace the cache (run with -race).
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if _, err := ty.Decode(moodArrOID, []byte("{happy,NULL}")); err != nil {
					t.Error(err)
					return
				}
				_ = ty.TypeName(pairOID)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		ty.Forget(moodOID)
		if err := ty.Load(e.ctx, e.conn, moodOID); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func (e *pgEnv) decodeWith(ty *pgdecode.Types, oid uint32, text []byte) *event.Value {
	e.t.Helper()
	v, err := ty.Decode(oid, text)
	if err != nil {
		e.t.Fatalf("decoding %q: %v", text, err)
	}
	return v
}

// TestPostgresRandomDateTime cross-checks decoded date/time values of
// random instants over PostgreSQL's whole range with PostgreSQL's own
// arithmetic (extract(epoch ...), date subtraction), so calendar mistakes
// (leap years, BC years, the year 0, negative epochs) fail.
func TestPostgresRandomDateTime(t *testing.T) {
	e := newPGEnv(t)
	const n = 500
	// Days from 4713-11-24 BC (-2440588) to 294246-12-31 (int64 micros
	// limit for timestamps) and to 5874897-12-31 for dates.
	r := e.query(`
		SELECT ts, (extract(epoch FROM ts) * 1000000)::int8::text,
		       ts::timestamp, (extract(epoch FROM ts::timestamp) * 1000000)::int8::text,
		       d, (d - date '1970-01-01')::text,
		       t, (extract(epoch FROM t) * 1000000)::int8::text
		  FROM (SELECT timestamptz '1970-01-01 00:00:00+00'
		                 + make_interval(days => (-2440588 + floor(random() * (2440588 + 106740000)))::int)
		                 + make_interval(secs => floor(random() * 86400000000) / 1000000) AS ts,
		               date '1970-01-01' + (-2440588 + floor(random() * (2440588 + 2145042906::int8)))::int AS d,
		               time '00:00:00' + make_interval(secs => floor(random() * 86400000000) / 1000000) AS t,
		               g
		          FROM generate_series(1, $1) g) s
		UNION ALL
		SELECT ts, (extract(epoch FROM ts) * 1000000)::int8::text, ts::timestamp,
		       (extract(epoch FROM ts::timestamp) * 1000000)::int8::text, ts::date,
		       (ts::date - date '1970-01-01')::text, ts::time, (extract(epoch FROM ts::time) * 1000000)::int8::text
		  FROM unnest(ARRAY['4713-11-24 00:00:00+00 BC', '0001-01-01 00:00:00+00 BC', '0001-12-31 23:59:59.999999+00 BC',
		                    '0001-01-01 00:00:00+00', '1582-10-15 00:00:00+00', '1600-02-29 12:00:00+00',
		                    '1900-03-01 00:00:00+00', '1969-12-31 23:59:59.999999+00', '2000-02-29 00:00:00+00',
		                    '9999-12-31 23:59:59.999999+00', '10000-01-01 00:00:00+00',
		                    '294246-12-31 23:59:59.999999+00']::timestamptz[]) ts`, n)
	if len(r.rows) != n+12 {
		t.Fatalf("%d rows", len(r.rows))
	}
	for _, row := range r.rows {
		for c := 0; c < 8; c += 2 {
			v := e.decode(r.oids[c], row[c])
			want, err := strconv.ParseInt(string(row[c+1]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			switch c {
			case 0, 2:
				got = v.GetTimestamp().GetUnixMicros()
			case 4:
				got = int64(v.GetDate().GetDays())
			case 6:
				got = v.GetTime().GetMicros()
			}
			if got != want {
				t.Errorf("%s %q decoded to %d, PostgreSQL computes %d", e.types.TypeName(r.oids[c]), row[c], got, want)
			}
		}
	}
}

// TestPostgresRandomIntervals cross-checks intervals built from random
// components (of both signs) with those components.
func TestPostgresRandomIntervals(t *testing.T) {
	e := newPGEnv(t)
	r := e.query(`
		SELECT make_interval(months => m, days => d) + us * interval '1 microsecond', m::text, d::text, us::text
		  FROM (SELECT (floor(random() * 4000) - 2000)::int * (CASE WHEN random() < 0.1 THEN 1000000 ELSE 1 END) AS m,
		               (floor(random() * 80000) - 40000)::int AS d,
		               (floor(random() * 2e15) - 1e15)::int8 * (CASE WHEN random() < 0.3 THEN 0 ELSE 1 END) AS us,
		               g
		          FROM generate_series(1, 400) g) s`)
	for _, row := range r.rows {
		iv := e.decode(r.oids[0], row[0]).GetInterval()
		m, _ := strconv.ParseInt(string(row[1]), 10, 32)
		d, _ := strconv.ParseInt(string(row[2]), 10, 32)
		us, _ := strconv.ParseInt(string(row[3]), 10, 64)
		if int64(iv.GetMonths()) != m || int64(iv.GetDays()) != d || iv.GetMicros() != us {
			t.Errorf("interval %q decoded to (%d,%d,%d), want (%d,%d,%d)", row[0], iv.GetMonths(), iv.GetDays(), iv.GetMicros(), m, d, us)
		}
	}
}

// TestPostgresRandomNumbers compares decoded floats bit for bit with
// float8send/float4send, integers with their text, money with its numeric
// cast.
func TestPostgresRandomNumbers(t *testing.T) {
	e := newPGEnv(t)
	r := e.query(`
		SELECT f8, float8send(f8), f4, float4send(f4), i8, i8::text, m, m::numeric::text
		  FROM (SELECT CASE WHEN random() < 0.5 THEN -1 ELSE 1 END * random() * 10 ^ (floor(random() * 600) - 300) AS f8,
		               (CASE WHEN random() < 0.5 THEN -1 ELSE 1 END * random() * 10 ^ (floor(random() * 76) - 38))::float4 AS f4,
		               (floor(random() * 18446744073709551615::numeric) - 9223372036854775808)::int8 AS i8,
		               ((floor(random() * 18446744073709551615::numeric) - 9223372036854775808)::int8 / 100.0)::numeric::money AS m
		          FROM generate_series(1, 400) g
		        UNION ALL
		        SELECT x, y, NULL, '92233720368547758.07'::money
		          FROM unnest(ARRAY['NaN', 'Infinity', '-Infinity', '-0', '0', '1e-310', '1.7976931348623157e308',
		                            '5e-324', '0.1', '7.038531e-26']::float8[],
		                      ARRAY['NaN', 'Infinity', '-Infinity', '-0', '0', '1e-45', '3.4028235e38',
		                            '1.1754944e-38', '0.1', '7.038531e-26']::float4[]) u(x, y)) s`)
	for _, row := range r.rows {
		f8 := e.decode(r.oids[0], row[0]).GetFloat()
		want8 := binary.BigEndian.Uint64(mustBytea(t, row[1]))
		if math.Float64bits(f8) != want8 && !(math.IsNaN(f8) && math.IsNaN(math.Float64frombits(want8))) {
			t.Errorf("float8 %q decoded to %v (%#x), float8send says %#x", row[0], f8, math.Float64bits(f8), want8)
		}
		f4 := e.decode(r.oids[2], row[2]).GetFloat()
		want4 := binary.BigEndian.Uint32(mustBytea(t, row[3]))
		if math.Float32bits(float32(f4)) != want4 && !(math.IsNaN(f4) && want4&0x7f800000 == 0x7f800000) {
			t.Errorf("float4 %q decoded to %v (%#x), float4send says %#x", row[2], f4, math.Float32bits(float32(f4)), want4)
		}
		if row[4] != nil {
			if got := e.decode(r.oids[4], row[4]).GetInt(); strconv.FormatInt(got, 10) != string(row[5]) {
				t.Errorf("int8 %q decoded to %d", row[4], got)
			}
		}
		if got := e.decode(r.oids[6], row[6]).GetDecimal(); got != string(row[7]) {
			t.Errorf("money %q decoded to %s, numeric cast says %s", row[6], got, row[7])
		}
	}
}

func mustBytea(t *testing.T, text []byte) []byte {
	t.Helper()
	if len(text) < 2 || string(text[:2]) != `\x` {
		t.Fatalf("bytea %q is not in hex format", text)
	}
	b, err := hex.DecodeString(string(text[2:]))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPostgresRandomArraysAndRecords compares random text arrays (quotes,
// backslashes, delimiters, braces, spaces, "NULL" strings, NULLs,
// multi-byte) and records with PostgreSQL's own JSON rendering.
func TestPostgresRandomArraysAndRecords(t *testing.T) {
	e := newPGEnv(t)
	e.exec("CREATE TYPE rec AS (a int4, b text, c numeric, d bool, e text[])")
	r := e.query(`
		WITH words AS (
		  SELECT g, array(SELECT CASE WHEN random() < 0.1 THEN NULL
		                              WHEN random() < 0.05 THEN 'NULL'
		                              ELSE (SELECT coalesce(string_agg(substr(E'ab ,{}"\\\\()NULéx\t', (floor(random() * 16) + 1)::int, 1), ''), '')
		                                      FROM generate_series(1, (floor(random() * 6))::int + g * 0) k) END
		                    FROM generate_series(1, (floor(random() * 5))::int + g * 0) i) AS words
		    FROM generate_series(1, 300) g)
		SELECT words, array_to_json(words)::text,
		       ROW(g, words[1], g / 7.0, g % 2 = 0, words)::rec, to_json(ROW(g, words[1], g / 7.0, g % 2 = 0, words)::rec)::text,
		       ARRAY[words, words], array_to_json(ARRAY[words, words])::text
		  FROM words WHERE cardinality(words) > 0`)
	if len(r.rows) < 100 {
		t.Fatalf("only %d rows", len(r.rows))
	}
	for _, row := range r.rows {
		for c := 0; c < 6; c += 2 {
			got := renderJSON(e.decode(r.oids[c], row[c]))
			var a, b any
			if err := json.Unmarshal([]byte(got), &a); err != nil {
				t.Fatalf("rendering of %q is not JSON: %s", row[c], got)
			}
			if err := json.Unmarshal(row[c+1], &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s %q rendered %s, PostgreSQL's JSON is %s", e.types.TypeName(r.oids[c]), row[c], got, row[c+1])
			}
		}
	}
}
