package config

import (
	"strings"
	"testing"
	"time"
)

func TestAnchorsAndMerges(t *testing.T) {
	yaml := `es: &es
  urls: [http://es:9200]
  concurrency: 4
sources:
  - name: a
    postgres: &pg {dsn: "host=db", tables: [public.a]}
  - name: b
    postgres: {<<: *pg, tables: [public.b]}
sinks:
  - name: one
    elasticsearch: {<<: *es, concurrency: 8}
  - name: two
    opensearch: *es
pipelines:
  - {name: pa, source: a, sinks: [one, two]}
  - {name: pb, source: b, sinks: [one]}
`
	// "es" is not a key of the configuration: it is reported, nothing else.
	_, err := parse(t, yaml, nil)
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Path != "es" || ps[0].Line != 1 {
		t.Fatalf("want only the unknown key es at line 1, got:\n%v", err)
	}

	yaml = `sources:
  - name: a
    postgres: &pg {dsn: "host=db", tables: [public.a]}
  - name: b
    postgres: {<<: *pg, tables: [public.b]}
sinks:
  - name: one
    elasticsearch: &es {urls: [http://es:9200], concurrency: 4}
  - name: two
    opensearch: {<<: [*es], concurrency: 8}
pipelines:
  - {name: pa, source: a, sinks: [one, two]}
  - {name: pb, source: b, sinks: [one]}
`
	cfg, err := parse(t, yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Sources[1].Postgres; b.DSN != "host=db" || b.Tables[0] != "public.b" {
		t.Errorf("merge: source b = %+v", b)
	}
	if two := cfg.Sinks[1].OpenSearch; two.Concurrency != 8 || two.URLs[0] != "http://es:9200" {
		t.Errorf("merge: sink two = %+v", two)
	}
	if cfg.Sources[1].Postgres.Slot != "tidegate_pb" {
		t.Errorf("slot of b = %q", cfg.Sources[1].Postgres.Slot)
	}
}

func TestJSONInput(t *testing.T) {
	json := "{\n\t\"sources\": [{\"name\": \"shop\", \"postgres\": {\"dsn\": \"host=db\", \"tables\": [\"public.orders\"]}}],\n" +
		"\t\"sinks\": [{\"name\": \"search\", \"elasticsearch\": {\"urls\": [\"http://es:9200\"], \"bulk_max_bytes\": 1048576}}],\n" +
		"\t\"pipelines\": [{\"name\": \"p\", \"source\": \"shop\", \"sinks\": [\"search\"], \"snapshot\": \"nevr\"}]\n}\n"
	_, err := Parse("t.json", []byte(json), nil)
	wantProblem(t, err, `t.json:4:81: pipelines[0].snapshot: "nevr": `, `did you mean "never"?`)
	cfg, err := Parse("t.json", []byte(strings.Replace(json, "nevr", "never", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sinks[0].Elasticsearch.BulkMaxBytes != 1<<20 {
		t.Errorf("bulk_max_bytes = %d", cfg.Sinks[0].Elasticsearch.BulkMaxBytes)
	}
}

// The architecture document writes ${TIDEGATE_TOKEN} unquoted in a flow
// mapping, where YAML would read its braces as the mapping's.
func TestUnquotedExpressionInFlowMapping(t *testing.T) {
	cfg, err := parse(t, edited(set(2, `admin: { listen: 0.0.0.0:7070, token: ${TIDEGATE_TOKEN} }`),
		set(12, `      urls: [${ES_URL}, http://es2:9200]`)),
		map[string]string{"TIDEGATE_TOKEN": "tok", "ES_URL": "http://es1:9200"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "tok" || cfg.Sinks[0].Elasticsearch.URLs[0] != "http://es1:9200" {
		t.Errorf("token %q, urls %q", cfg.Admin.Token, cfg.Sinks[0].Elasticsearch.URLs)
	}
	// Columns after an expression are unchanged.
	_, err = parse(t, edited(set(2, `admin: { token: ${TIDEGATE_TOKEN}, listen: nope }`)), map[string]string{"TIDEGATE_TOKEN": "tok"})
	wantProblem(t, err, `t.yaml:2:44: admin.listen: "nope": `)
}

func TestSizesAndDurations(t *testing.T) {
	sizes := map[string]int64{
		"1048576": 1 << 20, "512KB": 512000, "512kb": 512000, "5MiB": 5 << 20, "5 MiB": 5 << 20,
		"1GB": 1e9, "1GiB": 1 << 30, "1.5KiB": 1536, "2TiB": 2 << 40, "100B": 100,
	}
	for in, want := range sizes {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "5 potatoes", "5XB", "1e3", "NaN", "99999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
	for n, want := range map[int64]string{1 << 30: "1GiB", 5 << 20: "5MiB", 1536: "1536", 2 << 10: "2KiB", 0: "0"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Second: "1m30s", 200 * time.Millisecond: "200ms", 2*time.Hour + time.Second: "2h0m1s"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
	}
	lingers := []struct {
		key  string
		def  time.Duration
		read func(Pipeline) time.Duration
	}{
		{"batch_linger", DefaultBatchLinger, func(p Pipeline) time.Duration { return p.BatchLinger }},
		{"publish_linger", DefaultPublishLinger, func(p Pipeline) time.Duration { return p.PublishLinger }},
	}
	for _, l := range lingers {
		for in, want := range map[string]time.Duration{"": l.def, "20ms": 20 * time.Millisecond, "off": DurationOff, "OFF": DurationOff} {
			yaml := base
			if in != "" {
				yaml = edited(insert(18, `    `+l.key+`: `+in))
			}
			cfg, err := parse(t, yaml, nil)
			if err != nil {
				t.Fatalf("%s %q: %v", l.key, in, err)
			}
			if got := l.read(cfg.Pipelines[0]); got != want {
				t.Errorf("%s %q = %v, want %v", l.key, in, got, want)
			}
		}
	}
	cfg, err := parse(t, edited(set(1, `bus: {max_bytes: 2GiB, max_inflight_bytes: "64 MiB", duplicate_window: 1h30m}`)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.MaxBytes != 2<<30 || cfg.Bus.MaxInflightBytes != 64<<20 || cfg.Bus.DuplicateWindow != 90*time.Minute {
		t.Errorf("bus = %+v", cfg.Bus)
	}
}

// Aliases that expand exponentially stop at a budget instead of hanging.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("sinks:\n  - name: s\n    elasticsearch:\n      urls: [http://es:9200]\n      mappings:\n")
	b.WriteString("        a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("        a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	done := make(chan error, 1)
	go func() {
		_, err := parse(t, b.String(), nil)
		done <- err
	}()
	select {
	case err := <-done:
		wantProblem(t, err, "t.yaml:", "too many values")
	case <-time.After(20 * time.Second):
		t.Fatal("Parse did not stop expanding aliases")
	}
}

func TestEmptyFile(t *testing.T) {
	_, err := parse(t, "", nil)
	wantProblem(t, err, "t.yaml: sources: ", "at least one source")
	wantProblem(t, err, "t.yaml: pipelines: ", "at least one pipeline")
}

func TestNullKindMeansSet(t *testing.T) {
	_, err := parse(t, edited(insert(13, `  - name: other`), insert(13, `    opensearch:`)), nil)
	wantProblem(t, err, "t.yaml:15:5: sinks[1].opensearch.urls: ", "at least one URL")
}

func TestSuggest(t *testing.T) {
	keys := []string{"dsn", "tables", "keys", "publication", "slot", "snapshot_workers"}
	for in, want := range map[string]string{"table": "tables", "Tables": "tables", "publicaton": "publication", "snapshot_worker": "snapshot_workers", "zzz": "", "x": ""} {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
