package postgres

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tidegate/tidegate/event"

	"github.com/tidegate/tidegate/internal/testkit"
)

// Chunk bounds are every SnapshotChunkRows-th key in the key order
// PostgreSQL compares them in (the oracle is the window function used
// before), for a composite key with a text column (case, punctuation and
// digits: collation order is not byte order); and the chunks they make
// cover every row exactly once.
func TestChunkBounds(t *testing.T) {
	ctx := context.Background()
	dsn := testkit.NewDatabase(t)
	conn := testkit.Connect(t, dsn)
	testkit.Exec(t, conn,
		`CREATE TABLE k (g int, name text, v int, PRIMARY KEY (g, name))`,
		// Names with case, punctuation and digits; 1,003 rows.
		`INSERT INTO k SELECT i % 7, (ARRAY['b','B','a-','a','Z','10','9'])[1 + i % 7] || i, i FROM generate_series(1, 1003) i`,
		`CREATE TABLE one (id bigint PRIMARY KEY)`,
		`INSERT INTO one SELECT generate_series(1, 5)`,
		`CREATE TABLE empty (id bigint PRIMARY KEY)`,
		// A configured key with no index: planned by the window function.
		`CREATE TABLE nokey (a int, b text)`,
		`ALTER TABLE nokey REPLICA IDENTITY FULL`,
		`INSERT INTO nokey SELECT i % 13, 'n' || i FROM generate_series(1, 500) i`,
		// Indexed, but in another collation than the column's: ORDER BY
		// cannot use that index either.
		`CREATE TABLE coll (name text, v int)`,
		`CREATE UNIQUE INDEX ON coll (name COLLATE "C")`,
		`ALTER TABLE coll REPLICA IDENTITY FULL`,
		`INSERT INTO coll SELECT 'c' || i, i FROM generate_series(1, 120) i`)
	for _, tc := range []struct {
		table   string
		keys    []string
		chunk   int
		want    int // bounds
		indexed bool
	}{
		{"public.k", nil, 100, 10, true}, {"public.k", nil, 1003, 1, true}, {"public.k", nil, 1004, 0, true},
		{"public.k", nil, 1, 1003, true}, {"public.one", nil, 100, 0, true}, {"public.empty", nil, 100, 0, true},
		{"public.nokey", []string{"a", "b"}, 50, 10, false},
		{"public.coll", []string{"name"}, 25, 4, false},
	} {
		s := &Source{cfg: Config{SnapshotChunkRows: tc.chunk}}
		tb, err := loadTable(ctx, conn, tc.table, tc.keys)
		if err != nil {
			t.Fatal(err)
		}
		if indexed, err := keyIndexed(ctx, conn, tb); err != nil || indexed != tc.indexed {
			t.Fatalf("%s: keyIndexed %v, %v; want %v", tc.table, indexed, err, tc.indexed)
		}
		got, err := s.chunkBounds(ctx, conn, tb)
		if err != nil {
			t.Fatal(err)
		}
		keys := tb.keyList()
		rr := conn.PgConn().ExecParams(ctx, "SELECT "+keys+" FROM (SELECT "+keys+", row_number() OVER (ORDER BY "+keys+") AS rn FROM "+
			tb.quotedName()+") s WHERE rn % "+strconv.Itoa(tc.chunk)+" = 0 ORDER BY "+keys, nil, nil, nil, nil)
		var want [][]string
		for rr.NextRow() {
			var b []string
			for _, v := range rr.Values() {
				b = append(b, string(v))
			}
			want = append(want, b)
		}
		if _, err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want || !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("%s by %d: got %d bounds %v\nwant %d: %v", tc.table, tc.chunk, len(got), got, len(want), want)
		}

		// The chunks' conditions (as readChunk builds them) cover each row once.
		seen := 0
		for ci := 0; ci <= len(got); ci++ {
			sql := "SELECT count(*) FROM " + tb.quotedName()
			var params []any
			where := " WHERE "
			if ci > 0 {
				cond, _ := tb.keyRange(">", len(params))
				sql += where + cond
				where = " AND "
				for _, v := range got[ci-1] {
					params = append(params, v)
				}
			}
			if ci < len(got) {
				cond, _ := tb.keyRange("<=", len(params))
				sql += where + cond
				for _, v := range got[ci] {
					params = append(params, v)
				}
			}
			var n int
			if err := conn.QueryRow(ctx, sql, params...).Scan(&n); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			if ci < len(got) && n != tc.chunk {
				t.Fatalf("%s by %d: chunk %d has %d rows", tc.table, tc.chunk, ci, n)
			}
			seen += n
		}
		var total int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tb.quotedName()).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if seen != total {
			t.Fatalf("%s by %d: chunks hold %d rows, the table %d", tc.table, tc.chunk, seen, total)
		}
	}
}

// Receives wait on the connection's read deadline, not on a context: an
// idle stream still stops when its context ends, though its next status
// update is an hour away, and changes arrive while it waits. (Without the
// deadline set on cancellation it stops only at the next message from the
// server, about 10 s later here; the minute bounds a hang, not a time.)
func TestStreamStopsWhileIdle(t *testing.T) {
	dsn := testkit.NewDatabase(t)
	conn := testkit.Connect(t, dsn)
	testkit.Exec(t, conn, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	state := openBusState(t)
	cfg := Config{DSN: dsn, Tables: []string{"public.a"}, StatusInterval: time.Hour}
	em := &regEmitter{confirm: true}
	run := startRun(t, cfg, state, "idle"+testkit.RandomSuffix(), em)
	run.waitStreaming(t, state)
	testkit.Exec(t, conn, `INSERT INTO a VALUES (1, 'x')`)
	em.waitFor(t, run, "the insert", func(evs []*event.Event) bool { return findEvent(evs, event.Op_OP_INSERT, "1") != nil })
	// Once the insert is confirmed to the server (an early status update),
	// the next one is an hour away.
	var lsn string
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	em.waitFor(t, run, "the slot confirmed past the insert", func([]*event.Event) bool {
		var ok bool
		_ = conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`, lsn, run.src.Slot()).Scan(&ok)
		return ok
	})

	stopped := make(chan error, 1)
	go func() { stopped <- run.stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the stream did not stop within a minute of its context ending (status interval: 1h)\nlog:\n%s", run.log.String())
	}
}
