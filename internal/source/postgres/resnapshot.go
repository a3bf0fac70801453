package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidegate/tidegate/event"
)

// What the source does when the position it must resume from is gone (the
// slot was dropped, or PostgreSQL invalidated it because it retained more
// than max_slot_wal_keep_size).
const (
	// PositionLostFail stops the pipeline with an error that says how to
	// recover. Nothing is skipped silently.
	PositionLostFail = "fail"
	// PositionLostResnapshot creates a new slot, snapshots every table
	// again, deletes the documents of rows that vanished meanwhile (a
	// sweep), and streams on.
	PositionLostResnapshot = "resnapshot"
)

// positionLost handles a lost position according to the policy: it returns
// the LSN to stream from after a re-snapshot, or ErrPositionLost.
func (s *Source) positionLost(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, si slotInfo, why string) (pglogrepl.LSN, error) {
	s.opts.Metrics.PositionLost.WithLabelValues(s.opts.Pipeline).Inc()
	if s.opts.OnPositionLost != PositionLostResnapshot {
		return 0, fmt.Errorf("%w: %s, so the changes made since tidegate last ran cannot be streamed. "+
			"To rebuild the targets from a fresh snapshot set `on_position_lost: resnapshot` on pipeline %s (it re-reads every table and removes documents of deleted rows), "+
			"or run `tidegate pipeline drop %s` and start again",
			ErrPositionLost, why, s.opts.Pipeline, s.opts.Pipeline)
	}
	s.log.Error("position lost: re-snapshotting every table (on_position_lost: resnapshot); documents of rows deleted meanwhile are swept afterwards",
		"slot", s.cfg.Slot, "reason", why)
	if si.exists {
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s.cfg.Slot); err != nil {
			return 0, fmt.Errorf("dropping invalidated replication slot %s: %w", s.cfg.Slot, err)
		}
	}
	return s.createSlotAndSnapshotSweep(ctx, conn, repl, true)
}

// emitSweeps sends one sweep per table after a snapshot that rewrote every
// existing row with version v: sinks delete the documents older than that.
func (s *Source) emitSweeps(ctx context.Context, st *snapshotState) error {
	if !st.Sweep {
		return nil
	}
	for _, ts := range st.Tables {
		t := s.byName[ts.Table]
		if t == nil {
			continue
		}
		position := pglogrepl.LSN(st.Version).String()
		ev := &event.Event{
			Id:       s.opts.SourceName + ":sweep:" + position + ":" + ts.Table,
			Op:       event.Op_OP_SWEEP,
			Origin:   s.origins[t],
			Version:  st.Version - 1, // spares the snapshot's own rows
			Position: position,
		}
		if err := s.opts.Emitter.Emit(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}
