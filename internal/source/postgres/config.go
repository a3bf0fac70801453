package postgres

import "time"

// Config configures a PostgreSQL source.
type Config struct {
	// DSN is a libpq connection string or URL. The user needs the REPLICATION
	// attribute (or rds_replication) and SELECT on the captured tables.
	// Required. Use ${ENV} or ${file:/path} for the password.
	DSN string `yaml:"dsn" json:"dsn"`
	// Tables to capture, as schema.table (schema defaults to public). Required.
	Tables []string `yaml:"tables" json:"tables"`
	// Keys gives key columns for tables without a primary key, e.g.
	// {public.events: [tenant_id, event_id]}. The table's REPLICA IDENTITY
	// must be FULL or an index on those columns.
	Keys map[string][]string `yaml:"keys" json:"keys,omitempty"`
	// Publication to create or reuse. Default "tidegate_<pipeline>".
	Publication string `yaml:"publication" json:"publication,omitempty"`
	// Slot is the logical replication slot to create or reuse. Default
	// "tidegate_<pipeline>".
	Slot string `yaml:"slot" json:"slot,omitempty"`
	// SnapshotWorkers is the number of parallel snapshot readers. Default 2.
	SnapshotWorkers int `yaml:"snapshot_workers" json:"snapshot_workers,omitempty"`
	// SnapshotChunkRows is the number of rows per snapshot chunk (the unit of
	// resumption after a crash). Default 20000.
	SnapshotChunkRows int `yaml:"snapshot_chunk_rows" json:"snapshot_chunk_rows,omitempty"`
	// StatusInterval is how often the confirmed position is reported to the
	// server. Default 10s.
	StatusInterval time.Duration `yaml:"status_interval" json:"status_interval,omitempty"`
	// HeartbeatInterval: when the captured tables are idle, tidegate advances
	// the slot past WAL that holds no captured change at this interval, so
	// WAL is not pinned. Default 30s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" json:"heartbeat_interval,omitempty"`
	// MaxSlotLagBytes: when the replication slot retains more WAL than this
	// (e.g. "20GiB"), tidegate logs an error every minute and sets
	// tidegate_source_slot_lag_exceeded to 1 until it is back under. The
	// slot keeps its WAL regardless: to bound it for sure, also set
	// PostgreSQL's max_slot_wal_keep_size, with on_position_lost: resnapshot
	// to recover automatically. 0 (default) disables the alert.
	MaxSlotLagBytes int64 `yaml:"max_slot_lag_bytes" json:"max_slot_lag_bytes,omitempty"`
}
