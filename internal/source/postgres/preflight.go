package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Check is one preflight finding.
type Check struct {
	OK     bool
	What   string // what was checked
	Detail string // the finding, and on failure how to fix it
}

// Preflight checks that the database can serve this source: reachable,
// wal_level=logical, replication privilege, free slots, every table exists
// with a usable key. It never changes anything.
func Preflight(ctx context.Context, cfg Config, pipeline string) []Check {
	cfg.setDefaults(pipeline)
	s := &Source{cfg: cfg}
	cc, err := s.connConfig()
	if err != nil {
		return []Check{{What: "connection string", Detail: err.Error()}}
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return []Check{{What: fmt.Sprintf("connect to %s:%d", cc.Host, cc.Port), Detail: err.Error()}}
	}
	defer conn.Close(context.Background())
	var checks []Check
	add := func(ok bool, what, detail string) { checks = append(checks, Check{OK: ok, What: what, Detail: detail}) }

	var version string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
	add(true, fmt.Sprintf("connect to %s:%d/%s", cc.Host, cc.Port, cc.Database), "PostgreSQL "+version)

	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		add(false, "wal_level", err.Error())
	} else if walLevel != "logical" {
		add(false, "wal_level", fmt.Sprintf("is %q; logical decoding needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (on managed services set the equivalent parameter, e.g. rds.logical_replication=1)", walLevel))
	} else {
		add(true, "wal_level", "logical")
	}

	var canReplicate bool
	err = conn.QueryRow(ctx, `
		SELECT rolsuper OR rolreplication OR EXISTS (
			SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
			WHERE m.member = pg_roles.oid AND r.rolname = 'rds_replication')
		FROM pg_roles WHERE rolname = current_user`).Scan(&canReplicate)
	switch {
	case err != nil:
		add(false, "replication privilege", err.Error())
	case !canReplicate:
		add(false, "replication privilege", fmt.Sprintf("user %q lacks the REPLICATION attribute: run ALTER ROLE %s WITH REPLICATION;", cc.User, pgx.Identifier{cc.User}.Sanitize()))
	default:
		add(true, "replication privilege", "user "+cc.User)
	}

	var maxSlots, usedSlots int
	var slotExists bool
	err = conn.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots),
		EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, cfg.Slot).Scan(&maxSlots, &usedSlots, &slotExists)
	switch {
	case err != nil:
		add(false, "replication slots", err.Error())
	case slotExists:
		add(true, "replication slot "+cfg.Slot, "exists (will resume from it)")
	case usedSlots >= maxSlots:
		add(false, "replication slots", fmt.Sprintf("all %d slots are in use: raise max_replication_slots or drop unused slots (SELECT slot_name, active FROM pg_replication_slots)", maxSlots))
	default:
		add(true, "replication slots", fmt.Sprintf("%d of %d used; slot %s will be created", usedSlots, maxSlots, cfg.Slot))
	}

	for _, name := range cfg.Tables {
		schema, rel := ParseTableName(name)
		t, err := loadTable(ctx, conn, schema+"."+rel, cfg.Keys[name])
		if err != nil {
			detail := err.Error()
			if errors.Is(err, errNoKey) {
				detail = err.Error()
			}
			add(false, "table "+name, detail)
			continue
		}
		var canSelect bool
		_ = conn.QueryRow(ctx, "SELECT has_table_privilege($1::oid, 'SELECT')", t.OID).Scan(&canSelect)
		if !canSelect {
			add(false, "table "+name, fmt.Sprintf("no SELECT privilege: GRANT SELECT ON %s TO %s;", t.quotedName(), pgx.Identifier{cc.User}.Sanitize()))
			continue
		}
		keyNames := make([]string, len(t.Key))
		for i, k := range t.Key {
			keyNames[i] = t.Columns[k].Name
		}
		add(true, "table "+name, fmt.Sprintf("%d columns, key %v, ~%d rows", len(t.Columns), keyNames, max(t.EstimatedRows, 0)))
	}
	return checks
}
