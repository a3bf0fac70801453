package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleEnv sets every variable the examples use without a default.
var exampleEnv = map[string]string{
	"PG_PASSWORD":    "pg-secret",
	"ES_PASSWORD":    "es-secret",
	"OS_PASSWORD":    "os-secret",
	"TIDEGATE_TOKEN": "a-long-random-token",
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob(repoRoot + "/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"postgres-to-elasticsearch.yaml", "postgres-to-opensearch.yaml"} {
		if !strings.Contains(strings.Join(files, " "), want) {
			t.Errorf("examples/%s is missing", want)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Parse(f, mustRead(t, f), envOf(exampleEnv))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range exampleEnv {
				if strings.Contains(cfg.String(), v) {
					t.Errorf("printed example shows %s", k)
				}
			}
		})
	}
}

// TestDocsExample parses the annotated example of docs/configuration.md.
func TestDocsExample(t *testing.T) {
	doc := string(mustRead(t, referenceFile))
	block := between(t, doc, "<!-- BEGIN EXAMPLE", "<!-- END EXAMPLE -->")
	yaml := between(t, block, "```yaml\n", "```")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pg_password"), []byte("pg-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml = strings.ReplaceAll(yaml, "${file:/run/secrets/", "${file:"+dir+"/")
	cfg, err := Parse("example.yaml", []byte(yaml), envOf(exampleEnv))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].Postgres.DSN; !strings.Contains(got, "tidegate:pg-secret@db:5432") {
		t.Errorf("dsn = %q", got)
	}
}

// TestDocsErrors checks that the error example of docs/configuration.md is
// what tidegate prints for testdata/invalid.yaml.
func TestDocsErrors(t *testing.T) {
	doc := string(mustRead(t, referenceFile))
	block := between(t, doc, "<!-- BEGIN ERRORS", "<!-- END ERRORS -->")
	want := strings.TrimSpace(between(t, block, "```text\n", "```"))
	_, err := Parse("tidegate.yaml", mustRead(t, "testdata/invalid.yaml"), envOf(exampleEnv))
	if err == nil {
		t.Fatal("testdata/invalid.yaml is valid")
	}
	if got := err.Error(); got != want {
		t.Errorf("docs/configuration.md shows other errors than Parse returns; replace them with:\n%s", got)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func between(t *testing.T, s, start, end string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		t.Fatalf("%q not found", start)
	}
	if i := strings.IndexByte(rest, '\n'); strings.HasPrefix(start, "<!--") && i >= 0 {
		rest = rest[i+1:]
	}
	body, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("%q not found", end)
	}
	return body
}
