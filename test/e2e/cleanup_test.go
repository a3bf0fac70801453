package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/testkit"
)

// Cleanup (issue 3, scenario 9): `tidegate status` reports a stopped
// pipeline's slot and the WAL it retains, and a slot that no configured
// pipeline uses; `tidegate pipeline drop` removes the slot, the publication
// and the bus state, and the next run starts over with a snapshot.
func TestStatusAndPipelineDrop(t *testing.T) {
	e := newEnv(t, testkit.ElasticURL(t))
	ctx := context.Background()
	if err := testkit.LoadShop(ctx, e.conn, 2000); err != nil {
		t.Fatal(err)
	}
	slot := "tidegate_" + e.source

	p := e.start()
	e.waitConverged(convergeTimeout)
	st := e.status()
	if ps := st.pipeline(t, e.source); ps.Slot == nil || !ps.Slot.Active || !ps.PublicationExists {
		t.Fatalf("status while running: %+v, want an active slot %s and its publication", ps, slot)
	}
	p.stop()

	// A slot left behind by a pipeline that is no longer configured.
	orphan := "tidegate_gone_" + testkit.RandomSuffix()
	testkit.Exec(t, e.conn, `SELECT pg_create_logical_replication_slot('`+orphan+`', 'pgoutput')`)
	t.Cleanup(func() {
		_, _ = e.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, orphan)
	})
	// WAL written while the pipeline is stopped is retained for it.
	testkit.Exec(t, e.conn, `UPDATE customers SET name = name || '!'`)

	st = e.status()
	ps := st.pipeline(t, e.source)
	if ps.Slot == nil || ps.Slot.Active || ps.Slot.RetainedBytes <= 0 {
		t.Fatalf("status of the stopped pipeline: %+v (slot %+v), want an inactive slot retaining WAL", ps, ps.Slot)
	}
	found := false
	for _, s := range st.OtherSlots {
		found = found || s.Name == orphan
	}
	if !found {
		t.Fatalf("status does not report the orphaned slot %s: %+v", orphan, st.OtherSlots)
	}
	out := e.cli("status")
	for _, want := range []string{slot, "stopped", orphan, "tidegate pipeline drop " + e.source, "pg_drop_replication_slot('" + orphan + "')"} {
		if !strings.Contains(out, want) {
			t.Errorf("tidegate status output lacks %q:\n%s", want, out)
		}
	}

	out = e.cli("pipeline", "drop", e.source)
	t.Logf("pipeline drop: %s", out)
	var slots, pubs int
	if err := e.conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1), (SELECT count(*) FROM pg_publication WHERE pubname = $1)`, slot).Scan(&slots, &pubs); err != nil {
		t.Fatal(err)
	}
	if slots != 0 || pubs != 0 {
		t.Fatalf("after pipeline drop: %d slots and %d publications named %s, want none", slots, pubs, slot)
	}
	if ps := e.status().pipeline(t, e.source); ps.Slot != nil || ps.PublicationExists {
		t.Fatalf("status after drop: %+v, want no slot and no publication", ps)
	}

	// The bus state went too: the next run snapshots again (the stopped
	// pipeline's changes arrive through it) and converges.
	p = e.start()
	e.waitMetric(p, convergeTimeout, 1, "tidegate_snapshot_rows_total")
	e.waitConverged(convergeTimeout)
	e.noDeadLetters()
	p.stop()
}

type statusJSON struct {
	Pipelines  []pipelineStatusJSON `json:"pipelines"`
	OtherSlots []slotJSON           `json:"other_slots"`
}

type pipelineStatusJSON struct {
	Pipeline          string    `json:"pipeline"`
	Slot              *slotJSON `json:"slot"`
	PublicationExists bool      `json:"publication_exists"`
	Error             string    `json:"error"`
}

type slotJSON struct {
	Name          string `json:"slot"`
	Active        bool   `json:"active"`
	RetainedBytes int64  `json:"retained_bytes"`
}

func (s statusJSON) pipeline(t *testing.T, name string) pipelineStatusJSON {
	t.Helper()
	for _, p := range s.Pipelines {
		if p.Pipeline == name {
			if p.Error != "" {
				t.Fatalf("status of %s: %s", name, p.Error)
			}
			return p
		}
	}
	t.Fatalf("status has no pipeline %s: %+v", name, s)
	panic("unreachable")
}

// status runs `tidegate status --json`.
func (e *env) status() statusJSON {
	e.t.Helper()
	out := e.cli("status", "--json")
	var s statusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("tidegate status --json printed no JSON: %v\n%s", err, out)
	}
	return s
}

// cli runs `tidegate ARGS -c CONFIG` and returns its output; it fails the
// test when the command fails.
func (e *env) cli(args ...string) string {
	e.t.Helper()
	out, err := e.command(nil, args...)
	if err != nil {
		e.t.Fatalf("tidegate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
