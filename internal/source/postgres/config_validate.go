package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidegate/tidegate/internal/config/field"
)

// SetDefaults fills the zero fields with the defaults stated on Config.
// Publication and Slot depend on the pipeline that uses the source; they are
// filled by internal/config (Config.PostgresFor), not here.
func (c *Config) SetDefaults() {
	if c.SnapshotWorkers == 0 {
		c.SnapshotWorkers = 2
	}
	if c.SnapshotChunkRows == 0 {
		c.SnapshotChunkRows = 20000
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
}

// Validate reports every problem of c as *field.Error values joined with
// errors.Join (paths relative to c, e.g. "tables[1]"). Empty Publication and
// Slot are valid: they are derived from the pipeline. Call SetDefaults first.
// Messages never contain the DSN or its password.
func (c *Config) Validate() error {
	var errs []error
	add := func(e *field.Error) { errs = append(errs, e) }

	switch {
	case strings.TrimSpace(c.DSN) == "":
		add(field.New("dsn", "required; set a connection URL such as postgres://repl:${PG_PASSWORD}@db:5432/shop"))
	default:
		if _, err := pgconn.ParseConfig(c.DSN); err != nil {
			add(field.New("dsn", "cannot be parsed: "+configDSNReason(c.DSN, err)+
				"; write postgres://user:password@host:5432/dbname or host=... port=... dbname=... user=..."))
		}
	}

	seen := map[string]int{} // schema.table → index in Tables
	if len(c.Tables) == 0 {
		add(field.New("tables", "at least one table is required; list them as schema.table, e.g. [public.orders]"))
	}
	for i, t := range c.Tables {
		p := field.Index("tables", i)
		norm, ok := configTableName(t)
		if !ok {
			add(field.WithValue(p, t, "table name must be schema.table or table; e.g. public.orders (names as stored in the catalog, without quotes)"))
			continue
		}
		if j, dup := seen[norm]; dup {
			add(field.WithValue(p, t, fmt.Sprintf("listed twice (also tables[%d]; the schema defaults to public); remove one", j)))
			continue
		}
		seen[norm] = i
	}

	for _, k := range configSortedKeys(c.Keys) {
		p := field.Key("keys", k)
		norm, ok := configTableName(k)
		j, listed := seen[norm]
		switch {
		case !ok:
			add(field.WithValue(p, k, "table name must be schema.table or table; e.g. public.events"))
		case !listed:
			add(field.WithValue(p, k, "table is not listed in tables; add it to tables or remove this entry"))
		case c.Tables[j] != k:
			add(field.WithValue(p, k, fmt.Sprintf("write the table exactly as in tables[%d] (%q) so the key is found", j, c.Tables[j])))
		}
		cols := c.Keys[k]
		if len(cols) == 0 {
			add(field.New(p, "needs at least one key column, e.g. [tenant_id, event_id]"))
		}
		seenCol := map[string]int{}
		for i, col := range cols {
			cp := field.Index(p, i)
			if strings.TrimSpace(col) == "" {
				add(field.New(cp, "empty column name; write the key column's name"))
				continue
			}
			if j, dup := seenCol[col]; dup {
				add(field.WithValue(cp, col, fmt.Sprintf("listed twice (also [%d]); remove one", j)))
				continue
			}
			seenCol[col] = i
		}
	}

	if c.Publication != "" && !configPublicationName.MatchString(c.Publication) {
		add(field.WithValue("publication", c.Publication, "publication names may hold letters, digits and _ and be at most 63 characters; rename it"))
	}
	if c.Slot != "" && !configSlotName.MatchString(c.Slot) {
		add(field.WithValue("slot", c.Slot, "replication slot names may only hold lowercase letters, digits and _ and be at most 63 characters (PostgreSQL's rule); rename it"))
	}
	if c.SnapshotWorkers < 0 {
		add(field.New("snapshot_workers", "must be positive; remove it for the default 2"))
	}
	if c.SnapshotChunkRows < 0 {
		add(field.New("snapshot_chunk_rows", "must be positive; remove it for the default 20000"))
	}
	if c.StatusInterval < 0 {
		add(field.New("status_interval", "must be positive; remove it for the default 10s"))
	}
	if c.MaxSlotLagBytes < 0 {
		add(field.New("max_slot_lag_bytes", "must be positive (e.g. 20GiB), or 0 to disable the alert"))
	}
	if c.HeartbeatInterval < 0 {
		add(field.New("heartbeat_interval", "must be positive; remove it for the default 30s"))
	}
	return errors.Join(errs...)
}

var (
	configSlotName        = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	configPublicationName = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)
	configQuoted          = regexp.MustCompile(`"[^"]{2,}"`)
	configKVPassword      = regexp.MustCompile(`(?i)\b(ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'?|\S*)`)
)

// configDSNReason returns why pgconn rejected dsn, without the connection
// string, its password or any quoted fragment of it.
func configDSNReason(dsn string, err error) string {
	reason := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// "cannot parse `<redacted dsn>`: <msg> (<cause>)": keep what follows the DSN.
		if i := strings.LastIndex(reason, "`: "); i >= 0 {
			reason = reason[i+3:]
		}
	}
	for _, pw := range configDSNPasswords(dsn) {
		reason = strings.ReplaceAll(reason, pw, "****")
	}
	reason = strings.ReplaceAll(reason, dsn, "****")
	return configQuoted.ReplaceAllString(reason, `"…"`)
}

// configDSNPasswords returns the recognizable passwords of dsn, best effort.
func configDSNPasswords(dsn string) []string {
	var out []string
	if rest, ok := strings.CutPrefix(dsn, "postgres://"); ok || strings.HasPrefix(dsn, "postgresql://") {
		if !ok {
			rest = strings.TrimPrefix(dsn, "postgresql://")
		}
		if i := strings.IndexAny(rest, "@/"); i >= 0 && rest[i] == '@' {
			if _, pw, found := strings.Cut(rest[:i], ":"); found && pw != "" {
				out = append(out, pw)
				if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
					out = append(out, dec)
				}
			}
		}
		if _, q, found := strings.Cut(rest, "?"); found {
			for _, kv := range strings.Split(q, "&") {
				k, v, _ := strings.Cut(kv, "=")
				if k, _ = url.QueryUnescape(k); strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
					if v != "" {
						out = append(out, v)
					}
				}
			}
		}
		return out
	}
	for _, m := range configKVPassword.FindAllStringSubmatch(dsn, -1) {
		if v := strings.Trim(m[2], "'"); v != "" {
			out = append(out, v, m[2])
		}
	}
	return out
}

// configTableName returns "schema.table" for "schema.table" or "table"
// (schema public), or false when s is not such a name. Names are taken as
// stored in the catalog (case-sensitive, no quoting), as ParseTableName does.
func configTableName(s string) (string, bool) {
	schema, table, found := strings.Cut(s, ".")
	if !found {
		schema, table = "public", s
	}
	for _, part := range []string{schema, table} {
		if part == "" || len(part) > 63 || strings.TrimSpace(part) != part ||
			strings.ContainsAny(part, ".\"\x00") {
			return "", false
		}
	}
	return schema + "." + table, true
}

func configSortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // problems come out in a stable order
	return keys
}
