package pgdecode_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// The binary format of the types snapshot readers ask for in binary
// decodes to exactly the value their text format does, over PostgreSQL's
// whole range: for timestamps and dates infinities, BC, leap days,
// fractions, the days past event.Timestamp's range and random instants;
// integer limits; both booleans.
func TestBinaryMatchesText(t *testing.T) {
	e := newPGEnv(t)
	cases := map[string][]string{
		"timestamptz": {"infinity", "-infinity", "1970-01-01 00:00:00+00", "1999-12-31 23:59:59.999999+00",
			"2000-01-01 00:00:00+00", "2000-02-29 12:00:00.5+05:30", "4713-01-01 00:00:00+00 BC", "0001-01-01 00:00:00+00",
			"1969-12-31 23:59:59.999999+00", "294276-12-31 23:59:59.999999+00", "294247-01-10 04:00:54.775807+00"},
		"timestamp": {"infinity", "-infinity", "1970-01-01 00:00:00", "2000-01-01 00:00:00.000001", "1900-02-28 23:59:59",
			"4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999"},
		"date": {"infinity", "-infinity", "1970-01-01", "2000-01-01", "1999-12-31", "2000-02-29", "4713-01-01 BC",
			"0001-01-01", "5874897-12-31"},
		"int2":    {"0", "-1", "32767", "-32768"},
		"int4":    {"0", "-1", "2147483647", "-2147483648", "123456"},
		"int8":    {"0", "-1", "9223372036854775807", "-9223372036854775808", "4294967296"},
		"boolean": {"true", "false"},
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		us := r.Int64N(2_000_000_000_000_000) - 1_000_000_000_000_000 // ±31,000 years around 2000
		cases["timestamptz"] = append(cases["timestamptz"], fmt.Sprintf("epoch %d", us))
		cases["timestamp"] = append(cases["timestamp"], fmt.Sprintf("epoch %d", us))
		cases["date"] = append(cases["date"], fmt.Sprintf("epoch %d", us))
	}
	oids := map[string]uint32{"timestamptz": 1184, "timestamp": 1114, "date": 1082, "int2": 21, "int4": 23, "int8": 20, "boolean": 16}
	for typ, lits := range cases {
		oid := oids[typ]
		if !pgdecode.Binary(oid) {
			t.Fatalf("%s is not read in binary", typ)
		}
		for _, lit := range lits {
			sql := "SELECT '" + lit + "'::" + typ
			if n, ok := epoch(lit); ok {
				sql = fmt.Sprintf("SELECT (to_timestamp(0) + %d * interval '1 microsecond')::%s", n, typ)
			}
			text := e.conn.PgConn().ExecParams(e.ctx, sql, nil, nil, nil, []int16{0}).Read()
			bin := e.conn.PgConn().ExecParams(e.ctx, sql, nil, nil, nil, []int16{1}).Read()
			if text.Err != nil || bin.Err != nil {
				t.Fatalf("%s: %v / %v", sql, text.Err, bin.Err)
			}
			want := e.decode(oid, text.Rows[0][0])
			got, err := e.types.DecodeBinaryIn(nil, oid, bin.Rows[0][0])
			if err != nil {
				t.Fatalf("%s: binary %x: %v", sql, bin.Rows[0][0], err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("%s: binary decodes to %v, text %q to %v", sql, got, text.Rows[0][0], want)
			}
		}
	}
}

func epoch(lit string) (int64, bool) {
	var n int64
	_, err := fmt.Sscanf(lit, "epoch %d", &n)
	return n, err == nil
}
