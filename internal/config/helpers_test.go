package config

import (
	"errors"
	"strings"
	"testing"
)

// base is a valid configuration; tests edit it by line number.
const base = `bus: {url: embedded}
admin: {listen: 127.0.0.1:7070}
log: {level: info, format: text}
sources:
  - name: shop
    postgres:
      dsn: postgres://repl:pw@db:5432/shop
      tables: [public.orders, public.customers]
sinks:
  - name: search
    elasticsearch:
      urls: [http://es:9200]
      index: shop-{table}
pipelines:
  - name: shop-search
    source: shop
    sinks: [search]
    snapshot: initial
`

// edit is a change to base: replace line Line (1-based) with Text, or
// insert Text after line Line when Insert is set.
type edit struct {
	Line   int
	Text   string
	Insert bool
}

func set(line int, text string) edit     { return edit{Line: line, Text: text} }
func insert(after int, text string) edit { return edit{Line: after, Text: text, Insert: true} }

// edited applies edits to base, last line first so numbers refer to base.
func edited(edits ...edit) string {
	lines := strings.Split(strings.TrimSuffix(base, "\n"), "\n")
	for i := len(edits) - 1; i >= 0; i-- {
		e := edits[i]
		if e.Insert {
			lines = append(lines[:e.Line], append([]string{e.Text}, lines[e.Line:]...)...)
		} else {
			lines[e.Line-1] = e.Text
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func parse(t *testing.T, yaml string, vars map[string]string) (*Config, error) {
	t.Helper()
	return Parse("t.yaml", []byte(yaml), envOf(vars))
}

// problemsOf returns the problems of err, failing when err is not Problems.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is not Problems: %v", err)
	}
	return ps
}

// wantProblem fails unless one line of err starts with prefix and contains
// every one of contains.
func wantProblem(t *testing.T, err error, prefix string, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", prefix)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		ok := true
		for _, c := range contains {
			ok = ok && strings.Contains(line, c)
		}
		if ok {
			return
		}
	}
	t.Errorf("no problem starts with %q and contains %q; got:\n%v", prefix, contains, err)
}
