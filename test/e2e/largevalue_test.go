package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/testkit"
)

// Rows close to the largest event the bus holds (bus.MaxMessageBytes) go
// through the snapshot and the stream: each is one bus message, larger than
// a bulk request's default size, and the sink's consumer must still be able
// to pull it (a pull smaller than the message would never deliver it).
func TestLargeValues(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	const table = "public.blobs"
	size := bus.MaxMessageBytes - 1<<20 // leaves room for the batch header and the other columns
	big := func(id int, seed string) string {
		return fmt.Sprintf(`INSERT INTO blobs VALUES (%d, repeat(md5('%s'), %d), 'small') ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body`, id, seed, size/32)
	}
	testkit.Exec(t, e.conn, `CREATE TABLE blobs (id int PRIMARY KEY, body text NOT NULL, note text)`, big(1, "snapshot"))
	e.tables = append(e.tables, table)

	waitBlobs := func(step string) {
		t.Helper()
		d, err := testkit.WaitConverged(context.Background(), e.conn, table, []string{"id"}, e.search, e.index(table), convergeTimeout)
		if err != nil {
			t.Fatalf("%s: comparing %s: %v", step, table, err)
		}
		if !d.Empty() {
			e.dumpMetrics()
			t.Fatalf("%s: not converged after %s:\n%s", step, convergeTimeout, d)
		}
		t.Logf("%s: %s %d rows = %d documents", step, table, d.Rows, d.Docs)
	}
	e.start()
	waitBlobs("snapshot")

	// Streamed: a new large row, a large update and a small row, in one
	// transaction and then alone.
	testkit.Exec(t, e.conn, "BEGIN; "+big(2, "insert")+"; "+big(1, "update")+"; INSERT INTO blobs VALUES (3, 'small', NULL); COMMIT")
	testkit.Exec(t, e.conn, big(3, "alone"))
	waitBlobs("stream")
	e.noDeadLetters()
}
