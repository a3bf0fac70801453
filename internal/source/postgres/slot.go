package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrPositionLost says the stored position can no longer be resumed from.
var ErrPositionLost = errors.New("source position lost")

// ErrSetup marks problems a restart cannot fix: missing tables or keys, a
// slot of the wrong kind. The message says what to change.
var ErrSetup = errors.New("source setup")

// ensurePublication creates the publication, or adds missing tables to it.
func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	pub := pgx.Identifier{s.cfg.Publication}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("looking up publication %s: %w", s.cfg.Publication, err)
	}
	if !exists {
		names := make([]string, len(s.tables))
		for i, t := range s.tables {
			names[i] = t.quotedName()
		}
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(names, ", ")); err != nil {
			return fmt.Errorf("creating publication %s (the user must own the tables, or create it yourself and set sources[].postgres.publication): %w", s.cfg.Publication, err)
		}
		s.log.Info("created publication", "publication", s.cfg.Publication, "tables", len(names))
		return nil
	}
	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, s.cfg.Publication)
	if err != nil {
		return fmt.Errorf("reading the tables of publication %s: %w", s.cfg.Publication, err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading the tables of publication %s: %w", s.cfg.Publication, err)
	}
	in := map[string]bool{}
	for _, h := range have {
		in[h] = true
	}
	for _, t := range s.tables {
		if in[t.QualifiedName()] {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" ADD TABLE "+t.quotedName()); err != nil {
			return fmt.Errorf("adding %s to publication %s: %w", t.QualifiedName(), s.cfg.Publication, err)
		}
		s.log.Info("added table to publication", "publication", s.cfg.Publication, "table", t.QualifiedName())
	}
	return nil
}

// slotInfo is what pg_replication_slots says about our slot.
type slotInfo struct {
	exists    bool
	plugin    string
	database  string
	confirmed pglogrepl.LSN
	active    bool
	// lost: PostgreSQL invalidated the slot (wal_status "lost"); it can no
	// longer stream.
	lost bool
}

func (s *Source) lookupSlot(ctx context.Context, conn *pgx.Conn) (slotInfo, error) {
	var si slotInfo
	var confirmed *string
	var plugin, db *string
	err := conn.QueryRow(ctx, `
		SELECT plugin, database, confirmed_flush_lsn::text, active, coalesce(wal_status = 'lost', false)
		FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&plugin, &db, &confirmed, &si.active, &si.lost)
	if errors.Is(err, pgx.ErrNoRows) {
		return si, nil
	}
	if err != nil {
		return si, fmt.Errorf("looking up replication slot %s: %w", s.cfg.Slot, err)
	}
	si.exists = true
	if plugin != nil {
		si.plugin = *plugin
	}
	if db != nil {
		si.database = *db
	}
	if confirmed != nil {
		if si.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return si, fmt.Errorf("parsing confirmed_flush_lsn of slot %s: %w", s.cfg.Slot, err)
		}
	}
	return si, nil
}

func (s *Source) stateKey() string { return "source." + s.opts.Pipeline }

// sourceState is the persistent state of the source in the bus KV.
type sourceState struct {
	// Slot the state belongs to; a state for another slot is ignored.
	Slot string `json:"slot"`
	// Streaming is true once the source has streamed from the slot: from
	// then on a missing slot means the position is lost.
	Streaming bool           `json:"streaming"`
	Snapshot  *snapshotState `json:"snapshot,omitempty"`
	// Added is the snapshot of tables added to the configuration after
	// Snapshot completed, while it runs (addtable.go); once complete its
	// tables join Snapshot.Tables.
	Added *snapshotState `json:"added,omitempty"`
}

// prepare creates or checks the slot, runs the snapshot the configuration
// and stored state call for, and returns the LSN to stream from.
func (s *Source) prepare(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn) (pglogrepl.LSN, error) {
	var st sourceState
	found, err := s.opts.State.Get(ctx, s.stateKey(), &st)
	if err != nil {
		return 0, err
	}
	if found && st.Slot != s.cfg.Slot {
		st, found = sourceState{}, false
	}
	si, err := s.lookupSlot(ctx, conn)
	if err != nil {
		return 0, err
	}
	if si.exists && si.plugin != "pgoutput" {
		return 0, fmt.Errorf("%w: replication slot %s exists but uses plugin %q, not pgoutput: drop it (SELECT pg_drop_replication_slot('%s')) or choose another sources[].postgres.slot", ErrSetup, s.cfg.Slot, si.plugin, s.cfg.Slot)
	}
	if si.exists && si.active {
		return 0, fmt.Errorf("replication slot %s is in use by another process (another tidegate running this pipeline?); stop it or wait for PostgreSQL to notice it is gone (wal_sender_timeout)", s.cfg.Slot)
	}

	if !si.exists {
		if found && st.Streaming {
			return s.positionLost(ctx, conn, repl, si, fmt.Sprintf("replication slot %s no longer exists", s.cfg.Slot))
		}
		// A snapshot that ran under a slot now gone left documents that the
		// new snapshot may not rewrite (rows deleted since): sweep them.
		return s.createSlotAndSnapshotSweep(ctx, conn, repl, found && st.Snapshot != nil)
	}
	if si.lost {
		return s.positionLost(ctx, conn, repl, si, fmt.Sprintf("replication slot %s was invalidated by PostgreSQL (wal_status lost: it retained more WAL than max_slot_wal_keep_size)", s.cfg.Slot))
	}

	start := si.confirmed
	switch {
	case found && st.Snapshot != nil && !st.Snapshot.Complete:
		// A snapshot was interrupted: finish it under a fresh snapshot with
		// the versions it started with, then stream from its start.
		s.log.Info("resuming interrupted snapshot", "version_lsn", pglogrepl.LSN(st.Snapshot.Version))
		if err := s.runSnapshot(ctx, conn, &st, ""); err != nil {
			return 0, err
		}
		return start, nil
	case s.opts.SnapshotMode == SnapshotAlways || (s.opts.SnapshotMode == SnapshotInitial && !found):
		if !found {
			s.log.Warn("replication slot exists but tidegate has no state for it (new bus or data_dir?): taking a snapshot at the slot's position", "slot", s.cfg.Slot, "lsn", start)
		}
		// Rows deleted while no change reached the targets (lost state,
		// snapshot: always) leave documents the snapshot does not rewrite.
		st = sourceState{Slot: s.cfg.Slot, Snapshot: &snapshotState{Version: uint64(start), Sweep: true}}
		if err := s.runSnapshot(ctx, conn, &st, ""); err != nil {
			return 0, err
		}
	case found:
		// Tables added to the configuration since the snapshot.
		if err := s.snapshotAddedTables(ctx, conn, &st); err != nil {
			return 0, err
		}
	}
	return start, nil
}

// createSlotAndSnapshot creates the slot; with a snapshot mode other than
// never it reads the snapshot exported by the slot creation, which is
// exactly consistent with the slot's start.
// sweep: delete, after the snapshot, the documents it did not rewrite.
func (s *Source) createSlotAndSnapshotSweep(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, sweep bool) (pglogrepl.LSN, error) {
	action := "EXPORT_SNAPSHOT"
	if s.opts.SnapshotMode == SnapshotNever {
		action = "NOEXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: action, Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return 0, fmt.Errorf("creating replication slot %s (is wal_level=logical, and max_replication_slots not exhausted?): %w", s.cfg.Slot, err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("parsing the consistent point %q of slot %s: %w", res.ConsistentPoint, s.cfg.Slot, err)
	}
	s.log.Info("created replication slot", "slot", s.cfg.Slot, "consistent_point", start)
	st := sourceState{Slot: s.cfg.Slot}
	if s.opts.SnapshotMode == SnapshotNever {
		return start, s.opts.State.Put(ctx, s.stateKey(), &st)
	}
	st.Snapshot = &snapshotState{Version: uint64(start), Sweep: sweep}
	if err := s.runSnapshot(ctx, conn, &st, res.SnapshotName); err != nil {
		return 0, err
	}
	return start, nil
}

// markStreaming records that streaming has started (so a lost slot is detected).
func (s *Source) markStreaming(ctx context.Context) error {
	var st sourceState
	if _, err := s.opts.State.Get(ctx, s.stateKey(), &st); err != nil {
		return err
	}
	if st.Streaming && st.Slot == s.cfg.Slot {
		return nil
	}
	st.Slot = s.cfg.Slot
	st.Streaming = true
	return s.opts.State.Put(ctx, s.stateKey(), &st)
}

// Drop removes the slot and publication the source created (tidegate
// pipeline drop). The source must not be running.
func Drop(ctx context.Context, cfg Config, pipeline string) error {
	cfg.setDefaults(pipeline)
	conn, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot); err != nil {
		return fmt.Errorf("dropping replication slot %s: %w", cfg.Slot, err)
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{cfg.Publication}.Sanitize()); err != nil {
		return fmt.Errorf("dropping publication %s: %w", cfg.Publication, err)
	}
	return nil
}
