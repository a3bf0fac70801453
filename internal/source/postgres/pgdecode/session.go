package pgdecode

// SessionParams are the run-time parameters every tidegate PostgreSQL
// connection (snapshot queries, the replication connection and type lookups)
// must set, e.g. as pgconn.Config.RuntimeParams, so that values arrive in the
// text formats this package parses:
//
//   - DateStyle=ISO, MDY: timestamps as "2024-01-02 03:04:05.123456+00",
//     BC dates with a " BC" suffix.
//   - TimeZone=UTC: timestamptz values are rendered with offset +00.
//   - IntervalStyle=postgres: "1 year 2 mons 3 days 04:05:06.789".
//   - extra_float_digits=3: float4/float8 in their shortest exact
//     (round-tripping) form (PostgreSQL 12+; 9 or 17 significant digits
//     before).
//   - bytea_output=hex: bytea as "\x0102...".
//   - lc_monetary=C: money as "$1,234.56" / "-$1,234.56" with two
//     fraction digits, the only money format the decoder accepts.
//   - client_encoding=UTF8: text arrives as UTF-8.
//
// Treat the map as read-only: copy it into the connection configuration.
var SessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
	"client_encoding":    "UTF8",
}
