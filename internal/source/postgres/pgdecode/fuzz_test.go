package pgdecode

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/event"
)

// mustNotPanicDecode decodes and, on success, checks that the JSON
// rendering is valid (json/jsonb content is passed through verbatim, so
// callers skip the check for those).
func mustDecodeValidJSON(t *testing.T, ty *Types, oid uint32, in string, checkJSON bool) {
	t.Helper()
	v, err := ty.Decode(oid, []byte(in))
	if err != nil {
		return
	}
	out := event.AppendValueJSON(nil, v)
	if checkJSON && !json.Valid(out) {
		t.Fatalf("Decode(%s, %q) rendered invalid JSON %s", ty.TypeName(oid), in, out)
	}
}

func FuzzDecodeArray(f *testing.F) {
	for _, s := range []string{
		"{1,2,3}", "{{1,2},{3,4}}", "{}", "[0:1]={1,2}", `{"a b",NULL,"NULL","","x\"y\\z","a,b{}"}`,
		"{(3,4),(1,2);(1,1),(0,0)}", `{"(\"{a,\"\"b c\"\",NULL}\",,[1],)",NULL}`, `{a\,b}`, "{ 1 , 2 }",
		`{"2024-01-02 03:04:05+00",infinity}`, `{"1 day 01:00:00"}`, "[1:2][1:1]={{1},{2}}",
	} {
		f.Add(s)
	}
	ty := testTypes()
	oids := []uint32{1007, 1016, 1009, 1020, 1022, 1021, 1231, 1185, 1187, 1001, 1017, oidMoodArr, oidPosNumArr, oidPairArr}
	f.Fuzz(func(t *testing.T, s string) {
		for _, oid := range oids {
			mustDecodeValidJSON(t, ty, oid, s, oid != oidPairArr)
		}
	})
}

func FuzzDecodeComposite(f *testing.F) {
	for _, s := range []string{
		`(1,"a b",,"","q""\\")`, `(,,,,)`, `("{a,""b c"",NULL}","2024-01-02 03:04:05+00","{}","\\x00ff")`,
		`("(""{x}"",,,)",7)`, `()`, `(1,a\,b,1.5,"x\"y",\))`,
	} {
		f.Add(s)
	}
	ty := testTypes()
	f.Fuzz(func(t *testing.T, s string) {
		mustDecodeValidJSON(t, ty, oidComplex, s, true)
		mustDecodeValidJSON(t, ty, oidPair, s, false)
		mustDecodeValidJSON(t, ty, oidNested, s, false)
		mustDecodeValidJSON(t, ty, oidEmpty, s, true)
	})
}

func FuzzDecodeHstore(f *testing.F) {
	for _, s := range []string{`"a"=>"1", "b c"=>NULL, ""=>"\"q\\"`, ``, `a=>b,c=>NULL`, `"k"=>"NULL"`} {
		f.Add(s)
	}
	ty := testTypes()
	f.Fuzz(func(t *testing.T, s string) {
		mustDecodeValidJSON(t, ty, oidHstore, s, true)
	})
}

func FuzzDecodeScalar(f *testing.F) {
	for _, s := range []string{
		"t", "-9223372036854775808", "1.5e+300", "NaN", "-0", "-12.3400", "$1,234.56", `\x00ff`, `a\\b\000`,
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "(1.5,-2)", "1 2 3", "24:00:00", "12:34:56.789+05:30",
		"2024-02-29", "0044-03-15 BC", "294276-12-31 23:59:59.999999+00", "294250-03-01 00:00:00",
	} {
		f.Add(s)
	}
	ty := testTypes()
	oids := []uint32{16, 20, 21, 23, 26, 5069, 700, 701, 1700, 790, 17, 2950, 600, 22, 30, 1082, 1083, 1266, 1114, 1184, 25, oidPosNum}
	f.Fuzz(func(t *testing.T, s string) {
		for _, oid := range oids {
			mustDecodeValidJSON(t, ty, oid, s, true)
		}
	})
}

// FuzzDecodeInterval checks that parsing never panics and that whatever
// parses survives a PostgreSQL-style re-rendering.
func FuzzDecodeInterval(f *testing.F) {
	for _, s := range []string{
		"1 year 2 mons 3 days 04:05:06.789", "-1 days +02:03:00", "00:00:00", "-00:00:00.5", "100:00:00",
		"-2562047788:00:54.775808", "infinity", "-178956970 years -8 mons", "1 mon -1 days",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mon, day, us, err := parseInterval([]byte(s))
		if err != nil || s == "infinity" || s == "-infinity" {
			return
		}
		pg := formatIntervalPG(mon, day, us)
		mon2, day2, us2, err := parseInterval([]byte(pg))
		if err != nil || mon2 != mon || day2 != day || us2 != us {
			t.Fatalf("%q -> (%d,%d,%d) -> %q -> (%d,%d,%d), %v", s, mon, day, us, pg, mon2, day2, us2, err)
		}
	})
}

// FuzzIntervalRoundTrip renders any interval the way PostgreSQL's
// EncodeInterval (IntervalStyle=postgres) does and parses it back.
func FuzzIntervalRoundTrip(f *testing.F) {
	f.Add(int32(14), int32(3), int64(14706789000))
	f.Add(int32(0), int32(-1), int64(7380000000))
	f.Add(int32(-14), int32(3), int64(-14706000000))
	f.Add(int32(math.MinInt32), int32(math.MinInt32), int64(math.MinInt64))
	f.Add(int32(math.MaxInt32), int32(math.MaxInt32)-1, int64(math.MaxInt64))
	f.Add(int32(0), int32(0), int64(-1))
	f.Fuzz(func(t *testing.T, mon, day int32, us int64) {
		if mon == math.MaxInt32 && day == math.MaxInt32 && us == math.MaxInt64 {
			return // PostgreSQL 17 renders this as "infinity"
		}
		if mon == math.MinInt32 && day == math.MinInt32 && us == math.MinInt64 {
			return
		}
		pg := formatIntervalPG(mon, day, us)
		mon2, day2, us2, err := parseInterval([]byte(pg))
		if err != nil || mon2 != mon || day2 != day || us2 != us {
			t.Fatalf("(%d,%d,%d) -> %q -> (%d,%d,%d), %v", mon, day, us, pg, mon2, day2, us2, err)
		}
	})
}

// FuzzDecodeTimestamp checks that parsing never panics and that whatever
// parses survives a re-rendering.
func FuzzDecodeTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-01-02 03:04:05.123456+00", "0044-03-15 12:00:00+00 BC", "294276-12-31 23:59:59.999999+00",
		"infinity", "1900-01-01 00:00:00-05:53:28", "12345-06-07 08:09:10+00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		us, inf, err := parseTimestamp([]byte(s), true)
		if err != nil || inf != 0 {
			return
		}
		pg := formatTimestampPG(us, true)
		us2, _, err := parseTimestamp([]byte(pg), true)
		if err != nil || us2 != us {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, us, pg, us2, err)
		}
		_, _, _ = parseTimestamp([]byte(s), false)
		_, _, _ = parseDate([]byte(s))
		_, _, _ = parseTime([]byte(s), true)
	})
}

// FuzzTimestampRoundTrip renders instants with Go's time package (an
// independent proleptic Gregorian calendar) in PostgreSQL's ISO format and
// parses them back.
func FuzzTimestampRoundTrip(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(-1))
	f.Add(int64(-210866803200000000)) // 4714-11-24 BC
	f.Add(int64(-62135596800000000))  // 0001-01-01
	f.Add(int64(-62135596800000001))  // 1 BC, last microsecond
	f.Add(int64(math.MaxInt64))
	f.Add(int64(951782400000000)) // 2000-02-29
	f.Fuzz(func(t *testing.T, us int64) {
		if us < -210866803200000000 { // before PostgreSQL's minimum (4714-11-24 BC)
			return
		}
		for _, zone := range []bool{true, false} {
			pg := formatTimestampPG(us, zone)
			got, inf, err := parseTimestamp([]byte(pg), zone)
			if err != nil || inf != 0 || got != us {
				t.Fatalf("%d -> %q -> %d, %v", us, pg, got, err)
			}
		}
		days := floorDivTest(us, microsPerDay)
		pg := formatTimestampPG(days*microsPerDay, false)
		pg = pg[:strings.IndexByte(pg, ' ')] + strings.TrimPrefix(pg[strings.IndexByte(pg, ' ')+9:], ".") // keep " BC"
		d, _, err := parseDate([]byte(pg))
		if err != nil || int64(d) != days {
			t.Fatalf("date %d -> %q -> %d, %v", days, pg, d, err)
		}
	})
}

func floorDivTest(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// formatTimestampPG renders unix micros as PostgreSQL does with
// DateStyle=ISO and TimeZone=UTC, using Go's calendar.
func formatTimestampPG(us int64, zone bool) string {
	tm := time.UnixMicro(us).UTC()
	y := tm.Year()
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", y, tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), tm.Second())
	if frac := tm.Nanosecond() / 1000; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	if zone {
		s += "+00"
	}
	if bc {
		s += " BC"
	}
	return s
}

// formatIntervalPG is EncodeInterval with IntervalStyle=postgres.
func formatIntervalPG(months, days int32, us int64) string {
	var b strings.Builder
	isZero, isBefore := true, false
	part := func(v int64, unit string) {
		if v == 0 {
			return
		}
		if !isZero {
			b.WriteByte(' ')
		}
		if isBefore && v > 0 {
			b.WriteByte('+')
		}
		fmt.Fprintf(&b, "%d %s", v, unit)
		if v != 1 {
			b.WriteByte('s')
		}
		isBefore, isZero = v < 0, false
	}
	part(int64(months/12), "year")
	part(int64(months%12), "mon")
	part(int64(days), "day")
	hour := us / microsPerHour
	min := us / microsPerMinute % 60
	sec := us / microsPerSecond % 60
	fsec := us % microsPerSecond
	if isZero || us != 0 {
		if !isZero {
			b.WriteByte(' ')
		}
		switch {
		case hour < 0 || min < 0 || sec < 0 || fsec < 0:
			b.WriteByte('-')
		case isBefore:
			b.WriteByte('+')
		}
		fmt.Fprintf(&b, "%02d:%02d:%02d", abs(hour), abs(min), abs(sec))
		if fsec != 0 {
			b.WriteString(strings.TrimRight(fmt.Sprintf(".%06d", abs(fsec)), "0"))
		}
	}
	return b.String()
}

func abs(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}
