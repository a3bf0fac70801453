package postgres

import (
	"context"
	"slices"
	"strconv"
	"testing"

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
		`CREATE TABLE empty (id bigint PRIMARY KEY)`)
	for _, tc := range []struct {
		table string
		chunk int
		want  int // bounds
	}{{"public.k", 100, 10}, {"public.k", 1003, 1}, {"public.k", 1004, 0}, {"public.k", 1, 1003}, {"public.one", 100, 0}, {"public.empty", 100, 0}} {
		s := &Source{cfg: Config{SnapshotChunkRows: tc.chunk}}
		tb, err := loadTable(ctx, conn, tc.table, nil)
		if err != nil {
			t.Fatal(err)
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
