package config

import (
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/sink/elasticsearch"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://repl:pw@db:5432/shop":                     "postgres://repl:****@db:5432/shop",
		"postgresql://repl:p@ss/w@rd@db/shop?sslmode=require": "postgresql://repl:****@db/shop?sslmode=require",
		"postgres://repl@db/shop?password=pw&sslpassword=x":   "postgres://repl@db/shop?password=****&sslpassword=****",
		"postgres://db/shop":                                  "postgres://db/shop",
		"host=db user=repl password=pw dbname=shop":           "host=db user=repl password=**** dbname=shop",
		"host=db password = 'p w\\' x' dbname=shop":           "host=db password=**** dbname=shop",
		"host=db PASSWORD=pw sslpassword=k":                   "host=db PASSWORD=**** sslpassword=****",
		"host=db":                                             "host=db",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct {
		in         string
		userSecret bool
		want       string
	}{
		{"http://es:9200", false, "http://es:9200"},
		{"https://elastic:pw@es:9200/prefix", false, "https://elastic:****@es:9200/prefix"},
		{"https://elastic@es:9200", false, "https://elastic@es:9200"},
		{"nats://token@n1:4222", true, "nats://****@n1:4222"},
		{"nats://u:p@n1:4222", true, "nats://u:****@n1:4222"},
		{"http://u:p@ss@es:9200", false, "http://u:****@es:9200"},
		{"not a url", true, "not a url"},
	} {
		if got := redactURL(tt.in, tt.userSecret); got != tt.want {
			t.Errorf("redactURL(%q, %v) = %q, want %q", tt.in, tt.userSecret, got, tt.want)
		}
	}
}

func TestRedactedIsADeepCopy(t *testing.T) {
	c := &Config{
		Admin:   Admin{Token: "tok"},
		Sources: []Source{{Name: "s", Postgres: &postgres.Config{DSN: "postgres://u:pw@h/db", Tables: []string{"a"}, Keys: map[string][]string{"a": {"id"}}}}},
		Sinks: []Sink{{Name: "k", Elasticsearch: &elasticsearch.Config{
			URLs: []string{"http://u:pw@es"}, Password: "pw", APIKey: "key",
			Mappings: map[string]any{"properties": map[string]any{"a": []any{"x"}}},
		}}},
		Pipelines: []Pipeline{{Name: "p", Sinks: []string{"k"}}},
	}
	r := c.Redacted()
	if r.Admin.Token != Mask || r.Sources[0].Postgres.DSN != "postgres://u:****@h/db" ||
		r.Sinks[0].Elasticsearch.Password != Mask || r.Sinks[0].Elasticsearch.APIKey != Mask ||
		r.Sinks[0].Elasticsearch.URLs[0] != "http://u:****@es" {
		t.Errorf("Redacted = %+v", r)
	}
	r.Sources[0].Postgres.Tables[0] = "changed"
	r.Sources[0].Postgres.Keys["a"][0] = "changed"
	r.Sinks[0].Elasticsearch.Mappings["properties"].(map[string]any)["a"].([]any)[0] = "changed"
	r.Pipelines[0].Sinks[0] = "changed"
	if c.Sources[0].Postgres.Tables[0] != "a" || c.Sources[0].Postgres.Keys["a"][0] != "id" ||
		c.Sinks[0].Elasticsearch.Mappings["properties"].(map[string]any)["a"].([]any)[0] != "x" ||
		c.Pipelines[0].Sinks[0] != "k" || c.Admin.Token != "tok" {
		t.Error("changing the redacted copy changed the original")
	}
}

// The printed configuration is valid input again (secrets aside).
func TestStringRoundTrip(t *testing.T) {
	cfg, err := parse(t, edited(insert(13, `      mappings: {properties: {title: {type: text}}}`), insert(18, `    batch_linger: "off"`)), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := cfg.String()
	for _, want := range []string{"max_bytes: 1GiB", "duplicate_window: 1m\n", "batch_linger: off\n", "dsn: postgres://repl:****@db:5432/shop", "slot: tidegate_shop_search", "type: text"} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q:\n%s", want, out)
		}
	}
	again, err := Parse("printed.yaml", []byte(out), nil)
	if err != nil {
		t.Fatalf("printed configuration does not parse: %v\n%s", err, out)
	}
	if again.String() != out {
		t.Errorf("printing is not stable:\n%s\n---\n%s", out, again.String())
	}
}
