package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// Tables added to the configuration after the initial snapshot.
//
// A table is "covered" once a snapshot has read its existing rows: it is in
// the stored snapshot's table list. At start, a configured table that is not
// covered (added to sources[].postgres.tables, or removed and added again)
// is snapshotted before streaming resumes; ensurePublication has already
// added it to the publication, so the slot streams its changes from then on.
//
// The slot's own position cannot serve as the snapshot point (the slot is
// behind, and its exported snapshot exists only when it is created), so the
// rows are read through the snapshot exported by a TEMPORARY logical slot
// created for the purpose: its consistent point P splits commits exactly —
// a transaction whose commit record starts before P is visible in the
// snapshot, one whose commit starts at or after P is not, and is streamed
// (the main slot is at or before P). The rows carry version P-1: every
// streamed change of the table committed at or after P (version >= P) wins
// over them, every earlier one (version < P-1, a commit record is longer
// than one byte) loses, whatever order the bus delivers them in. The
// temporary slot disappears with its connection.
//
// Progress is kept chunk by chunk in the source state (Added). After a
// crash the remaining chunks are read under a new temporary slot, with the
// new point's version: the rows of chunks already done may have changed
// since, but every such change committed after their snapshot and is
// streamed again from the main slot's confirmed position.

// addedSlotName is the name of the temporary slot of an added-table
// snapshot: unique, so that a slot left by a killed run that PostgreSQL has
// not cleaned up yet does not collide.
func (s *Source) addedSlotName() string {
	suffix := "_add_" + strconv.FormatInt(time.Now().UnixNano()%(1<<40), 36)
	base := s.cfg.Slot
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return base + suffix
}

// uncoveredTables returns the configured tables no snapshot has read, and
// drops tables no longer configured from the covered list (so that adding
// one back snapshots it again). It reports whether st changed.
func (s *Source) uncoveredTables(st *sourceState) (added []string, changed bool) {
	configured := make(map[string]bool, len(s.tables))
	for _, t := range s.tables {
		configured[t.QualifiedName()] = true
	}
	covered := map[string]bool{}
	kept := st.Snapshot.Tables[:0:0]
	for _, ts := range st.Snapshot.Tables {
		if !configured[ts.Table] {
			changed = true
			continue
		}
		covered[ts.Table] = true
		kept = append(kept, ts)
	}
	st.Snapshot.Tables = kept
	for _, t := range s.tables {
		if !covered[t.QualifiedName()] {
			added = append(added, t.QualifiedName())
		}
	}
	return added, changed
}

// snapshotAddedTables snapshots the configured tables that no snapshot has
// read yet (or finishes such a snapshot interrupted by a crash). st is the
// stored state of a source whose initial snapshot is complete; it is
// updated and saved. With snapshot mode never, added tables are only
// streamed.
func (s *Source) snapshotAddedTables(ctx context.Context, conn *pgx.Conn, st *sourceState) error {
	if st.Snapshot == nil || !st.Snapshot.Complete {
		// Never snapshotted (mode never): nothing records which tables
		// were captured before, and nothing is copied.
		return nil
	}
	added, changed := s.uncoveredTables(st)
	if s.opts.SnapshotMode == SnapshotNever {
		if len(added) > 0 {
			s.log.Info("tables added to the configuration are streamed from now on; their existing rows are not copied (snapshot: never)", "tables", added)
		}
		st.Added = nil
		return s.saveIf(ctx, st, changed)
	}
	if len(added) == 0 {
		if st.Added != nil {
			st.Added, changed = nil, true
		}
		return s.saveIf(ctx, st, changed)
	}

	// Align the pending snapshot with the tables to add, keeping the plan
	// and progress of those it already started.
	resumed := st.Added != nil
	known := map[string]*tableSnapshot{}
	if st.Added != nil {
		for _, ts := range st.Added.Tables {
			known[ts.Table] = ts
		}
	}
	snap := &snapshotState{}
	for _, name := range added {
		if ts, ok := known[name]; ok {
			snap.Tables = append(snap.Tables, ts)
			continue
		}
		snap.Tables = append(snap.Tables, &tableSnapshot{Table: name})
	}
	st.Added = snap

	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background()) // drops the temporary slot
	name := s.addedSlotName()
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return fmt.Errorf("creating temporary replication slot %s to snapshot the added tables %v (max_replication_slots and max_wal_senders need one spare each while it runs): %w", name, added, err)
	}
	point, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("parsing the consistent point %q of temporary slot %s: %w", res.ConsistentPoint, name, err)
	}
	snap.Version = uint64(point) - 1
	if resumed {
		s.log.Info("resuming the snapshot of tables added to the configuration", "tables", added, "consistent_point", point, "version_lsn", pglogrepl.LSN(snap.Version))
	} else {
		s.log.Info("snapshotting tables added to the configuration", "tables", added, "consistent_point", point, "version_lsn", pglogrepl.LSN(snap.Version))
	}
	if err := s.readSnapshot(ctx, conn, st, snap, res.SnapshotName); err != nil {
		return fmt.Errorf("snapshotting added tables: %w", err)
	}
	// The tables are covered now.
	st.Snapshot.Tables = append(st.Snapshot.Tables, snap.Tables...)
	st.Added = nil
	return s.opts.State.Put(ctx, s.stateKey(), st)
}

func (s *Source) saveIf(ctx context.Context, st *sourceState, changed bool) error {
	if !changed {
		return nil
	}
	return s.opts.State.Put(ctx, s.stateKey(), st)
}
