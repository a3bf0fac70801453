package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it accepts is
// valid and printable.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(""))
	f.Add([]byte("{}"))
	f.Add([]byte(`{"sources": [{"name": "a", "postgres": {"dsn": "host=db", "tables": ["t"]}}]}`))
	f.Add([]byte(edited(set(7, `      dsn: "postgres://repl:${PG_PASSWORD:-x}@db/shop"`), insert(8, `      keys: {public.orders: [id]}`))))
	f.Add([]byte(edited(set(1, `bus: {max_bytes: 5MiB, url: "nats://a:1,tls://b:2"}`))))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: {<<: [*y]}\n"))
	f.Add([]byte("sources:\n  - name: a\n   bad: [\n"))
	f.Add([]byte(base + "---\n" + base))
	for _, pattern := range []string{"../../examples/*.yaml", "testdata/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil {
				f.Add(data)
			}
		}
	}
	env := func(name string) (string, bool) {
		if strings.HasPrefix(name, "UNSET") {
			return "", false
		}
		return strings.ToLower(name), true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, env)
		if err != nil {
			_ = err.Error()
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that Validate rejects: %v", err)
		}
		_ = cfg.String()
		for _, p := range cfg.Pipelines {
			_ = cfg.PostgresFor(p)
		}
	})
}
