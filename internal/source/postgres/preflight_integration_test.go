package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/testkit"
)

func TestPreflight(t *testing.T) {
	dsn := testkit.NewDatabase(t)
	conn := testkit.Connect(t, dsn)
	testkit.Exec(t, conn,
		`CREATE TABLE good (id int PRIMARY KEY, v text)`,
		`CREATE TABLE nokey (a int, b int)`,
		`CREATE TABLE keyed (a int, b int)`,
		`ALTER TABLE keyed REPLICA IDENTITY FULL`,
	)
	checks := Preflight(context.Background(), Config{
		DSN:    dsn,
		Tables: []string{"public.good", "public.nokey", "public.missing", "public.keyed"},
		Keys:   map[string][]string{"public.keyed": {"a", "b"}},
	}, "pre")
	find := func(what string) Check {
		for _, c := range checks {
			if c.What == what {
				return c
			}
		}
		t.Fatalf("no check %q in %+v", what, checks)
		return Check{}
	}
	if c := find("wal_level"); !c.OK {
		t.Errorf("wal_level: %+v", c)
	}
	if c := find("replication privilege"); !c.OK {
		t.Errorf("replication privilege: %+v", c)
	}
	if c := find("table public.good"); !c.OK {
		t.Errorf("good: %+v", c)
	}
	if c := find("table public.keyed"); !c.OK {
		t.Errorf("configured key with REPLICA IDENTITY FULL: %+v", c)
	}
	if c := find("table public.nokey"); c.OK || !strings.Contains(c.Detail, "REPLICA IDENTITY FULL") || !strings.Contains(c.Detail, "sources[].postgres.keys") {
		t.Errorf("table without key must fail with the fix: %+v", c)
	}
	if c := find("table public.missing"); c.OK || !strings.Contains(c.Detail, "does not exist") {
		t.Errorf("missing table: %+v", c)
	}
}

func TestPreflightUnreachable(t *testing.T) {
	checks := Preflight(context.Background(), Config{DSN: "postgres://u:secretpw@127.0.0.1:1/db?connect_timeout=2", Tables: []string{"t"}}, "pre")
	if len(checks) != 1 || checks[0].OK {
		t.Fatalf("want one failed check, got %+v", checks)
	}
	if strings.Contains(checks[0].Detail, "secretpw") {
		t.Fatalf("password leaked: %s", checks[0].Detail)
	}
}
