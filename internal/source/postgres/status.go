package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SlotInfo describes a logical replication slot of a database, as
// `tidegate status` reports it; it is read from PostgreSQL, so it is
// available whether tidegate runs or not.
type SlotInfo struct {
	Name   string `json:"slot"`
	Plugin string `json:"plugin"`
	// Active is true while a client (a running tidegate) streams from it.
	Active    bool `json:"active"`
	ActivePID int  `json:"active_pid,omitempty"`
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved (about to be invalidated) or lost.
	WALStatus string `json:"wal_status"`
	// RetainedBytes is the WAL the slot keeps on the server's disk
	// (current WAL position minus restart_lsn).
	RetainedBytes int64  `json:"retained_bytes"`
	ConfirmedLSN  string `json:"confirmed_flush_lsn"`
}

// Names returns the slot and publication names the source uses for a
// pipeline (configured, or the tidegate_<pipeline> defaults).
func Names(cfg Config, pipeline string) (slot, publication string) {
	cfg.setDefaults(pipeline)
	return cfg.Slot, cfg.Publication
}

// DefaultNamePrefix starts the names of the slots and publications
// tidegate creates by default.
const DefaultNamePrefix = "tidegate_"

// DatabaseSlots lists the logical replication slots of the database the
// DSN names, and which of the given publications exist there.
func DatabaseSlots(ctx context.Context, dsn string, publications []string) (slots []SlotInfo, existing map[string]bool, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to PostgreSQL: %s", redactErr(err))
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT slot_name::text, coalesce(plugin::text, ''), active, coalesce(active_pid, 0),
		       coalesce(wal_status, ''),
		       coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint,
		       coalesce(confirmed_flush_lsn::text, '')
		FROM pg_replication_slots
		WHERE slot_type = 'logical' AND database = current_database()
		ORDER BY slot_name`)
	if err != nil {
		return nil, nil, fmt.Errorf("reading pg_replication_slots: %w", err)
	}
	for rows.Next() {
		var s SlotInfo
		if err := rows.Scan(&s.Name, &s.Plugin, &s.Active, &s.ActivePID, &s.WALStatus, &s.RetainedBytes, &s.ConfirmedLSN); err != nil {
			return nil, nil, fmt.Errorf("reading pg_replication_slots: %w", err)
		}
		slots = append(slots, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading pg_replication_slots: %w", err)
	}
	existing = map[string]bool{}
	prows, err := conn.Query(ctx, `SELECT pubname::text FROM pg_publication WHERE pubname = ANY($1)`, publications)
	if err != nil {
		return nil, nil, fmt.Errorf("reading pg_publication: %w", err)
	}
	for prows.Next() {
		var name string
		if err := prows.Scan(&name); err != nil {
			return nil, nil, fmt.Errorf("reading pg_publication: %w", err)
		}
		existing[name] = true
	}
	return slots, existing, prows.Err()
}

// IsTidegateSlot reports whether a slot looks like one tidegate created
// with default names (pgoutput, tidegate_ prefix).
func IsTidegateSlot(s SlotInfo) bool {
	return s.Plugin == "pgoutput" && strings.HasPrefix(s.Name, DefaultNamePrefix)
}
