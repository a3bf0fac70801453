// Package pgdecode converts PostgreSQL values in the text wire format into
// typed event values (*event.Value), without precision loss.
//
// It is shared by the snapshot reader (queries with text result format) and
// the logical replication stream (pgoutput sends columns as text), so both
// produce identical values for the same row. It owns:
//
//   - SessionParams: the session settings every tidegate connection sets,
//     which fix the text formats the parsers rely on;
//   - Types: type OID resolution (built-ins statically, enums, domains,
//     arrays, composites and extension types through pg_type, cached);
//   - the parsers for each text format (numbers, date/time, interval, bytea,
//     uuid, arrays, records, hstore).
//
// docs/types.md lists the mapping of every PostgreSQL type to an event value
// kind and its JSON rendering.
//
// Performance notes: Decode is on the per-row hot path. Parsers work on the
// byte slice they are given and never retain it (pgx reuses its buffers);
// strconv.ParseFloat is called on a zero-copy string view of the bytes
// (unsafe.String), which is sound because that view never escapes the call.
// Scalar values are allocated together with their oneof wrapper in a single
// allocation (see box.go).
package pgdecode
