package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestInterpolation(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "pg_password")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "crlf"), []byte("crlf-secret\r\n\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"PG_PASSWORD": "env-pw", "EMPTY": "", "HOST": "db", "N": "500"}
	dsnOf := func(cfg *Config) string { return cfg.Sources[0].Postgres.DSN }

	tests := []struct {
		name string
		dsn  string // the YAML value of dsn (line 7)
		want string // the resulting DSN
	}{
		{"variable", `"postgres://repl:${PG_PASSWORD}@db/shop"`, "postgres://repl:env-pw@db/shop"},
		{"two variables", `postgres://repl:${PG_PASSWORD}@${HOST}/shop`, "postgres://repl:env-pw@db/shop"},
		{"default when unset", `postgres://repl:x@${PGHOST:-localhost}/shop`, "postgres://repl:x@localhost/shop"},
		{"default when empty", `postgres://repl:x@${EMPTY:-localhost}/shop`, "postgres://repl:x@localhost/shop"},
		{"default ignored when set", `postgres://repl:x@${HOST:-localhost}/shop`, "postgres://repl:x@db/shop"},
		{"empty default", `"host=db password=${UNSET:-}"`, "host=db password="},
		{"empty variable", `"host=db password=${EMPTY}"`, "host=db password="},
		{"file", `"postgres://repl:${file:` + secretFile + `}@db/shop"`, "postgres://repl:from-file@db/shop"},
		{"file relative to the config", `"postgres://repl:${file:pg_password}@db/shop"`, "postgres://repl:from-file@db/shop"},
		{"file with CRLF", `"postgres://repl:${file:crlf}@db/shop"`, "postgres://repl:crlf-secret@db/shop"},
		{"escape", `"host=db application_name=$${x}"`, "host=db application_name=${x}"},
		{"dollar alone", `"host=db application_name=a$b"`, "host=db application_name=a$b"},
		{"single quotes", `'postgres://repl:${PG_PASSWORD}@db/shop'`, "postgres://repl:env-pw@db/shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(filepath.Join(dir, "t.yaml"), []byte(edited(set(7, "      dsn: "+tt.dsn))), envOf(vars))
			if err != nil {
				t.Fatal(err)
			}
			if got := dsnOf(cfg); got != tt.want {
				t.Errorf("dsn = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInterpolationErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		dsn      string
		contains []string
	}{
		{"unset", `"postgres://repl:${PG_PASSWORD}@db/shop"`, []string{"${PG_PASSWORD}", "PG_PASSWORD is not set", "${PG_PASSWORD:-default}"}},
		{"unterminated", `"postgres://repl:${PG_PASSWORD@db/shop"`, []string{"unterminated ${", "$${"}},
		{"bad name", `"host=${1HOST}"`, []string{`"1HOST" is not a variable name`}},
		{"empty name", `"host=${}"`, []string{`"" is not a variable name`}},
		{"nested", `"host=${A:-${B}}"`, []string{"nested ${"}},
		{"missing file", `"password=${file:/nonexistent/pg}"`, []string{`reading secret file "/nonexistent/pg": no such file`}},
		{"relative missing file", `"password=${file:secret.txt}"`, []string{`reading secret file "` + filepath.Join(dir, "secret.txt") + `"`}},
		{"file without path", `"password=${file:}"`, []string{"${file:} needs a path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "t.yaml"), []byte(edited(set(7, "      dsn: "+tt.dsn))), nil)
			wantProblem(t, err, filepath.Join(dir, "t.yaml")+":7:12: sources[0].postgres.dsn: ", tt.contains...)
		})
	}
}

func TestSecretFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, maxSecretFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(filepath.Join(dir, "t.yaml"), []byte(edited(set(7, `      dsn: "${file:big}"`))), nil)
	wantProblem(t, err, filepath.Join(dir, "t.yaml")+":7:12: ", "larger than 1MiB")
}

// Interpolated values are read with the field's type.
func TestInterpolationTyped(t *testing.T) {
	vars := map[string]string{"N": "500", "SIZE": "10MiB", "EVERY": "5s", "SHARDS": "3", "INSECURE": "true", "TABLE": "public.items"}
	cfg, err := parse(t, edited(
		insert(8, `      status_interval: ${EVERY}`),
		set(8, `      tables: [public.orders, "${TABLE}"]`),
		insert(13, `      bulk_max_bytes: ${SIZE}`),
		insert(13, `      insecure_skip_verify: ${INSECURE}`),
		insert(13, `      index_settings: {number_of_shards: ${SHARDS}, quoted: "${SHARDS}", ${N}: key-not-interpolated, empty: ${UNSET:-}}`),
		insert(18, `    batch_max_events: ${N}`),
	), vars)
	if err != nil {
		t.Fatal(err)
	}
	es := cfg.Sinks[0].Elasticsearch
	pg := cfg.Sources[0].Postgres
	if cfg.Pipelines[0].BatchMaxEvents != 500 || es.BulkMaxBytes != 10<<20 || pg.StatusInterval.String() != "5s" || !es.InsecureSkipVerify {
		t.Errorf("typed values: batch %d, bulk %d, status %s, insecure %v", cfg.Pipelines[0].BatchMaxEvents, es.BulkMaxBytes, pg.StatusInterval, es.InsecureSkipVerify)
	}
	if pg.Tables[1] != "public.items" {
		t.Errorf("tables[1] = %q", pg.Tables[1])
	}
	want := map[string]any{"number_of_shards": 3, "quoted": "3", "${N}": "key-not-interpolated", "empty": nil}
	if !reflect.DeepEqual(es.IndexSettings, want) {
		t.Errorf("index_settings = %#v, want %#v", es.IndexSettings, want)
	}
}

// A bad interpolated value is reported with its expression, not its value.
func TestInterpolatedValueShownAsExpression(t *testing.T) {
	vars := map[string]string{"TABLE": "orders.", "LEVEL": "loud", "WORKERS": "many"}
	_, err := parse(t, edited(
		set(3, `log: {level: "${LEVEL}"}`),
		set(8, `      tables: [public.orders, "${TABLE}"]`),
		insert(8, `      snapshot_workers: ${WORKERS}`),
	), vars)
	wantProblem(t, err, `t.yaml:3:14: log.level: "${LEVEL}": `, "must be one of")
	wantProblem(t, err, `t.yaml:8:31: sources[0].postgres.tables[1]: "${TABLE}": `, "schema.table")
	wantProblem(t, err, `t.yaml:9:25: sources[0].postgres.snapshot_workers: "${WORKERS}": `, "not an integer")
	for _, v := range []string{`"orders."`, "loud", "many"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error shows the value %s:\n%v", v, err)
		}
	}
}

// Interpolation happens in values only, and not under unknown keys.
func TestNoInterpolationUnderUnknownKeys(t *testing.T) {
	_, err := parse(t, edited(insert(18, `extra: ${UNSET}`)), nil)
	ps := problemsOf(t, err)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "unknown key") {
		t.Errorf("want only the unknown key, got:\n%v", err)
	}
}

func TestSecretFileMustBeRegular(t *testing.T) {
	_, err := parse(t, edited(set(7, `      dsn: "${file:/dev/null}"`)), nil)
	wantProblem(t, err, "t.yaml:7:12: ", `"/dev/null" is not a regular file`)
}
