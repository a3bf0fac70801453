package pgdecode

import (
	"strconv"
	"strings"
	"testing"
)

func BenchmarkDecode(b *testing.B) {
	ints := make([]string, 100)
	for i := range ints {
		ints[i] = strconv.Itoa(i * 7919)
	}
	ty := testTypes()
	for _, c := range []struct {
		name string
		oid  uint32
		in   string
	}{
		{"int8", 20, "9223372036854775807"},
		{"numeric", 1700, "-1234567890.0123456789"},
		{"text", 25, "The quick brown fox jumps over the lazy dog"},
		{"timestamptz", 1184, "2024-01-02 03:04:05.123456+00"},
		{"jsonb", 3802, `{"id": 12345, "name": "widget", "tags": ["a", "b"], "price": 9.99}`},
		{"int4[]/10", 1007, "{1,2,3,4,5,6,7,8,9,10}"},
		{"int4[]/100", 1007, "{" + strings.Join(ints, ",") + "}"},
		{"float4", 700, "0.1"},
		{"float8", 701, "1.2345678901234567"},
		{"date", 1082, "2024-01-02"},
		{"interval", 1186, "1 year 2 mons 3 days 04:05:06.789"},
		{"uuid", 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"bytea/32", 17, `\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f`},
		{"text[]/3", 1009, `{alpha,"beta gamma",NULL}`},
		{"composite", oidComplex, `(1,"a b",,"","q""\\")`},
	} {
		in := []byte(c.in)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ty.Decode(c.oid, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
