package config

import (
	"strings"
	"testing"
)

func TestBaseIsValid(t *testing.T) {
	cfg, err := parse(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != "t.yaml" || cfg.Sources[0].Postgres.Slot != "tidegate_shop_search" {
		t.Errorf("unexpected config: path %q slot %q", cfg.Path, cfg.Sources[0].Postgres.Slot)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("p", 55)
	tests := []struct {
		name     string
		yaml     string
		prefix   string   // start of one problem line: file:line:col: path
		contains []string // and what it must say
	}{
		// names
		{"source name empty", edited(set(5, `  - name: ""`)), `t.yaml:5:11: sources[0].name: `, []string{"required"}},
		{"source name invalid", edited(set(5, `  - name: Shop`), set(16, `    source: Shop`)), `t.yaml:5:11: sources[0].name: "Shop": `, []string{"lowercase letters", `e.g. "shop"`}},
		{"sink name invalid", edited(set(10, `  - name: "my search"`)), `t.yaml:10:11: sinks[0].name: "my search": `, []string{`e.g. "my-search"`}},
		{"pipeline name too long", edited(set(15, `  - name: `+long)), `t.yaml:15:11: pipelines[0].name: "` + long + `": `, []string{"longer than 54", "slot"}},
		{"duplicate source name", edited(insert(8, `  - {name: shop, postgres: {dsn: "host=db", tables: [t]}}`)), `t.yaml:9:12: sources[1].name: "shop": `, []string{"already used by sources[0]"}},
		{"duplicate pipeline name", edited(insert(18, `  - {name: shop-search, source: other, sinks: [search]}`)), `t.yaml:19:12: pipelines[1].name: "shop-search": `, []string{"already used by pipelines[0]", "unique"}},

		// kinds
		{"source without kind", edited(insert(8, `  - name: other`)), `t.yaml:9:5: sources[1]: `, []string{"no kind set; add one of: postgres"}},
		{"sink without kind", edited(insert(13, `  - name: other`)), `t.yaml:14:5: sinks[1]: `, []string{"no kind set; add one of: elasticsearch, opensearch"}},
		{"sink with two kinds", edited(insert(13, `    opensearch: {urls: [http://os:9200]}`)), `t.yaml:10:5: sinks[0]: `, []string{"both elasticsearch and opensearch", "keep one"}},

		// references
		{"unknown source", edited(set(16, `    source: shopp`)), `t.yaml:16:13: pipelines[0].source: "shopp": `, []string{"no source has this name", `did you mean "shop"?`}},
		{"empty source", edited(set(16, `    source: ""`)), `t.yaml:16:13: pipelines[0].source: `, []string{"required"}},
		{"source used twice", edited(insert(18, `  - {name: second, source: shop, sinks: [search]}`)), `t.yaml:19:28: pipelines[1].source: "shop": `, []string{`already used by pipeline "shop-search"`, "replication slot", "second source"}},
		{"no sinks", edited(set(17, `    sinks: []`)), `t.yaml:17:5: pipelines[0].sinks: `, []string{"at least one sink"}},
		{"unknown sink", edited(set(17, `    sinks: [search, serch]`)), `t.yaml:17:21: pipelines[0].sinks[1]: "serch": `, []string{"no sink has this name", `did you mean "search"?`}},
		{"sink listed twice", edited(set(17, `    sinks: [search, search]`)), `t.yaml:17:21: pipelines[0].sinks[1]: "search": `, []string{"listed twice"}},
		{"no pipelines", edited(set(14, `pipelines: []`), set(15, ``), set(16, ``), set(17, ``), set(18, ``)), `t.yaml:14:1: pipelines: `, []string{"at least one pipeline"}},
		{"no sources", "sinks: []\n", `t.yaml:1:1: sources: `, []string{"at least one source"}},

		// pipeline settings
		{"bad snapshot", edited(set(18, `    snapshot: initil`)), `t.yaml:18:15: pipelines[0].snapshot: "initil": `, []string{"initial, never, always", `did you mean "initial"?`}},
		{"negative batch", edited(insert(18, `    batch_max_events: -1`)), `t.yaml:19:23: pipelines[0].batch_max_events: `, []string{"must be positive"}},
		{"negative linger", edited(insert(18, `    batch_linger: -5ms`)), `t.yaml:19:19: pipelines[0].batch_linger: `, []string{"must be positive", `"off"`, "default 5ms"}},
		{"long linger", edited(insert(18, `    batch_linger: 10s`)), `t.yaml:19:19: pipelines[0].batch_linger: `, []string{"10s is longer than 1s", "delivers it again"}},
		{"negative publish linger", edited(insert(18, `    publish_linger: -2ms`)), `t.yaml:19:21: pipelines[0].publish_linger: `, []string{"must be positive", `"off"`, "default 2ms"}},
		{"long publish linger", edited(insert(18, `    publish_linger: 2s`)), `t.yaml:19:21: pipelines[0].publish_linger: `, []string{"2s is longer than 1s", "every change waits"}},
		{"linger without unit", edited(insert(18, `    batch_linger: 5`)), `t.yaml:19:19: pipelines[0].batch_linger: "5": `, []string{"needs a unit"}},
		{"off for another duration", edited(set(1, `bus: {url: embedded, duplicate_window: "off"}`)), `t.yaml:1:40: bus.duplicate_window: "off": `, []string{"not a duration"}},

		// postgres
		{"dsn missing", edited(set(7, `      dsn: ""`)), `t.yaml:7:12: sources[0].postgres.dsn: `, []string{"required"}},
		{"dsn unparseable", edited(set(7, `      dsn: postgres://repl:pw@db:port/shop`)), `t.yaml:7:12: sources[0].postgres.dsn: `, []string{"cannot be parsed", "invalid port"}},
		{"dsn bad keyword", edited(set(7, `      dsn: "host=db sslmode=sometimes"`)), `t.yaml:7:12: sources[0].postgres.dsn: `, []string{"cannot be parsed", "sslmode"}},
		{"tables empty", edited(set(8, `      tables: []`)), `t.yaml:8:7: sources[0].postgres.tables: `, []string{"at least one table"}},
		{"table malformed", edited(set(8, `      tables: [public.orders, "orders."]`)), `t.yaml:8:31: sources[0].postgres.tables[1]: "orders.": `, []string{"table name must be schema.table or table"}},
		{"table three parts", edited(set(8, `      tables: [db.public.orders]`)), `t.yaml:8:16: sources[0].postgres.tables[0]: "db.public.orders": `, []string{"schema.table"}},
		{"table duplicate", edited(set(8, `      tables: [public.orders, orders]`)), `t.yaml:8:31: sources[0].postgres.tables[1]: "orders": `, []string{"listed twice", "tables[0]"}},
		{"key table not listed", edited(insert(8, `      keys: {public.events: [id]}`)), `t.yaml:9:14: sources[0].postgres.keys["public.events"]: "public.events": `, []string{"not listed in tables"}},
		{"key table spelled differently", edited(insert(8, `      keys: {orders: [id]}`)), `t.yaml:9:14: sources[0].postgres.keys.orders: "orders": `, []string{`exactly as in tables[0] ("public.orders")`}},
		{"key without columns", edited(insert(8, `      keys: {public.orders: []}`)), `t.yaml:9:14: sources[0].postgres.keys["public.orders"]: `, []string{"at least one key column"}},
		{"key column twice", edited(insert(8, `      keys: {public.orders: [id, id]}`)), `t.yaml:9:34: sources[0].postgres.keys["public.orders"][1]: "id": `, []string{"listed twice"}},
		{"slot invalid", edited(insert(8, `      slot: Shop-Slot`)), `t.yaml:9:13: sources[0].postgres.slot: "Shop-Slot": `, []string{"lowercase letters, digits and _"}},
		{"publication invalid", edited(insert(8, `      publication: "my pub"`)), `t.yaml:9:20: sources[0].postgres.publication: "my pub": `, []string{"letters, digits and _"}},
		{"negative workers", edited(insert(8, `      snapshot_workers: -2`)), `t.yaml:9:25: sources[0].postgres.snapshot_workers: `, []string{"must be positive"}},
		{"negative chunk", edited(insert(8, `      snapshot_chunk_rows: -2`)), `t.yaml:9:28: sources[0].postgres.snapshot_chunk_rows: `, []string{"must be positive"}},
		{"negative status interval", edited(insert(8, `      status_interval: -1s`)), `t.yaml:9:24: sources[0].postgres.status_interval: `, []string{"must be positive"}},
		{"negative heartbeat", edited(insert(8, `      heartbeat_interval: -1s`)), `t.yaml:9:27: sources[0].postgres.heartbeat_interval: `, []string{"must be positive"}},

		// elasticsearch
		{"urls empty", edited(set(12, `      urls: []`)), `t.yaml:12:7: sinks[0].elasticsearch.urls: `, []string{"at least one URL"}},
		{"url scheme", edited(set(12, `      urls: [ftp://es:9200]`)), `t.yaml:12:14: sinks[0].elasticsearch.urls[0]: `, []string{"http:// or https://"}},
		{"url unparseable", edited(set(12, `      urls: ["http://es:port"]`)), `t.yaml:12:14: sinks[0].elasticsearch.urls[0]: `, []string{"invalid port"}},
		{"url without host", edited(set(12, `      urls: ["http://"]`)), `t.yaml:12:14: sinks[0].elasticsearch.urls[0]: `, []string{"no host"}},
		{"index empty placeholder", edited(set(13, `      index: shop-{tabel}`)), `t.yaml:13:14: sinks[0].elasticsearch.index: `, []string{"{tabel}", "{source}, {database}, {schema} or {table}"}},
		{"index unclosed", edited(set(13, `      index: "shop-{table"`)), `t.yaml:13:14: sinks[0].elasticsearch.index: `, []string{"unclosed"}},
		{"index without table for two tables", edited(set(13, `      index: shop`)), `t.yaml:13:14: sinks[0].elasticsearch.index: "shop": `, []string{"no {table} placeholder", `"shop-{table}"`}},
		{"truncate", edited(insert(13, `      truncate: drop`)), `t.yaml:14:17: sinks[0].elasticsearch.truncate: `, []string{`"delete" or "ignore"`}},
		{"negative actions", edited(insert(13, `      bulk_max_actions: -5`)), `t.yaml:14:25: sinks[0].elasticsearch.bulk_max_actions: `, []string{"positive"}},
		{"negative concurrency", edited(insert(13, `      concurrency: -1`)), `t.yaml:14:20: sinks[0].elasticsearch.concurrency: `, []string{"out of range"}},
		{"negative bulk bytes", edited(insert(13, `      bulk_max_bytes: -1`)), `t.yaml:14:23: sinks[0].elasticsearch.bulk_max_bytes: `, []string{"out of range"}},
		{"negative timeout", edited(insert(13, `      request_timeout: -1s`)), `t.yaml:14:24: sinks[0].elasticsearch.request_timeout: `, []string{"positive"}},
		{"retry max below initial", edited(insert(13, `      retry_initial: 1m`), insert(13, `      retry_max: 1s`)), `t.yaml:15:18: sinks[0].elasticsearch.retry_max: `, []string{"below retry_initial"}},
		{"password without username", edited(insert(13, `      password: x`)), `t.yaml:11:5: sinks[0].elasticsearch.username: `, []string{"username is empty"}},
		{"api key and username", edited(insert(13, `      api_key: x`), insert(13, `      username: u`)), `t.yaml:14:16: sinks[0].elasticsearch.api_key: `, []string{"either api_key or username"}},

		// bus
		{"bus url scheme", edited(set(1, `bus: {url: "http://nats:4222"}`)), `t.yaml:1:12: bus.url: "http://nats:4222": `, []string{"nats://"}},
		{"bus url no host", edited(set(1, `bus: {url: "nats://"}`)), `t.yaml:1:12: bus.url: "nats://": `, []string{"no host"}},
		{"bus url bad port in list", edited(set(1, `bus: {url: "nats://a:4222, nats://b:99999"}`)), `t.yaml:1:12: bus.url: "nats://b:99999": `, []string{"port"}},
		{"bus sizes", edited(set(1, `bus: {max_bytes: 16MiB, max_inflight_bytes: 32MiB}`)), `t.yaml:1:45: bus.max_inflight_bytes: `, []string{"32MiB is more than bus.max_bytes (16MiB)"}},
		{"bus negative window", edited(set(1, `bus: {duplicate_window: -1m}`)), `t.yaml:1:25: bus.duplicate_window: `, []string{"must be positive"}},
		{"bus negative size", edited(set(1, `bus: {max_bytes: -1}`)), `t.yaml:1:18: bus.max_bytes: `, []string{"must be positive"}},

		// admin and log
		{"admin listen", edited(set(2, `admin: {listen: "7070"}`)), `t.yaml:2:17: admin.listen: "7070": `, []string{"host:port"}},
		{"admin token required", edited(set(2, `admin: {listen: "0.0.0.0:7070"}`)), `t.yaml:2:1: admin.token: `, []string{"required", "every interface", "${TIDEGATE_TOKEN}"}},
		{"admin token required for host", edited(set(2, `admin: {listen: "10.0.0.5:7070"}`)), `t.yaml:2:1: admin.token: `, []string{"not a loopback address"}},
		{"log level", edited(set(3, `log: {level: verbose}`)), `t.yaml:3:14: log.level: "verbose": `, []string{"debug, info, warn, error"}},
		{"log format", edited(set(3, `log: {format: jsn}`)), `t.yaml:3:15: log.format: "jsn": `, []string{`did you mean "json"?`}},

		// decoding
		{"unknown key", edited(set(8, `      table: [public.orders]`)), `t.yaml:8:7: sources[0].postgres.table: `, []string{`unknown key; did you mean "tables"?`, "valid keys here: dsn, tables, keys"}},
		{"unknown top-level key", edited(insert(18, `pipeline: {}`)), `t.yaml:19:1: pipeline: `, []string{`did you mean "pipelines"?`}},
		{"unknown key without suggestion", edited(insert(18, `transforms: []`)), `t.yaml:19:1: transforms: `, []string{"unknown key; valid keys here: data_dir, bus, admin, log, sources, sinks, pipelines"}},
		{"duplicate key", edited(insert(8, `      dsn: host=other`)), `t.yaml:9:7: sources[0].postgres.dsn: `, []string{"duplicate key (first set at line 7)"}},
		{"list expected", edited(set(8, `      tables: public.orders`)), `t.yaml:8:15: sources[0].postgres.tables: `, []string{"expected a list"}},
		{"mapping expected", edited(set(6, `    postgres: yes`), set(7, ``), set(8, ``)), `t.yaml:6:15: sources[0].postgres: `, []string{"expected a mapping", "dsn, tables"}},
		{"string expected", edited(set(7, `      dsn: [a]`)), `t.yaml:7:12: sources[0].postgres.dsn: `, []string{"expected a string"}},
		{"integer expected", edited(insert(8, `      snapshot_workers: two`)), `t.yaml:9:25: sources[0].postgres.snapshot_workers: "two": `, []string{"not an integer"}},
		{"integer overflow", edited(insert(18, `    batch_max_events: 99999999999999999999`)), `t.yaml:19:23: pipelines[0].batch_max_events: `, []string{"not an integer"}},
		{"duration without unit", edited(insert(8, `      status_interval: 10`)), `t.yaml:9:24: sources[0].postgres.status_interval: "10": `, []string{"needs a unit"}},
		{"duration in days", edited(insert(8, `      status_interval: 1d`)), `t.yaml:9:24: sources[0].postgres.status_interval: "1d": `, []string{"24h"}},
		{"size unit unknown", edited(insert(13, `      bulk_max_bytes: 5 potatoes`)), `t.yaml:14:23: sinks[0].elasticsearch.bulk_max_bytes: "5 potatoes": `, []string{"KiB, MiB"}},
		{"size too large for int", edited(set(1, `bus: {max_inflight_bytes: 9999999TiB}`)), `t.yaml:1:27: bus.max_inflight_bytes: "9999999TiB": `, []string{"too large"}},
		{"bool expected", edited(insert(13, `      insecure_skip_verify: maybe`)), `t.yaml:14:29: sinks[0].elasticsearch.insecure_skip_verify: "maybe": `, []string{"true or false"}},
		{"root not a mapping", "- a\n- b\n", `t.yaml:1:1: `, []string{"expected a mapping"}},
		{"syntax error", "sources:\n  - name: a\n   bad: [\n", `t.yaml:3: `, []string{"invalid YAML"}},
		{"two documents", base + "---\nsources: []\n", `t.yaml:19:1: `, []string{"second YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.yaml, nil)
			problemsOf(t, err)
			wantProblem(t, err, tt.prefix, tt.contains...)
		})
	}
}

// A value that failed to decode does not also get "required" noise.
func TestDecodeProblemsSuppressValidationNoise(t *testing.T) {
	_, err := parse(t, edited(set(8, `      tables: public.orders`)), nil)
	if n := len(problemsOf(t, err)); n != 1 {
		t.Errorf("want 1 problem, got %d:\n%v", n, err)
	}
}

// Every problem is reported at once, in file order.
func TestAllProblemsAtOnce(t *testing.T) {
	_, err := parse(t, edited(set(3, `log: {level: loud}`), set(8, `      tables: ["a."]`), set(18, `    snapshot: sometimes`)), nil)
	ps := problemsOf(t, err)
	if len(ps) != 3 {
		t.Fatalf("want 3 problems, got %d:\n%v", len(ps), err)
	}
	for i, line := range []int{3, 8, 18} {
		if ps[i].Line != line {
			t.Errorf("problem %d at line %d, want %d", i, ps[i].Line, line)
		}
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := &Config{}
	c.SetDefaults()
	err := c.Validate()
	wantProblem(t, err, "sources: ", "at least one source")
	c.Path = "x.yaml"
	wantProblem(t, c.Validate(), "x.yaml: sources: ", "at least one source")
}

func TestAdminListenAccepted(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:7070", "localhost:7070", "[::1]:7070", "off"} {
		if _, err := parse(t, edited(set(2, `admin: {listen: "`+listen+`"}`)), nil); err != nil {
			t.Errorf("listen %q: %v", listen, err)
		}
	}
	if _, err := parse(t, edited(set(2, `admin: {listen: ":7070", token: abc}`)), nil); err != nil {
		t.Errorf("listen on every interface with a token: %v", err)
	}
}

func TestBusURLAccepted(t *testing.T) {
	for _, u := range []string{"embedded", "nats://n1:4222", "nats://n1:4222,nats://n2:4222", "tls://user:pw@n1:4222"} {
		if _, err := parse(t, edited(set(1, `bus: {url: "`+u+`"}`)), nil); err != nil {
			t.Errorf("url %q: %v", u, err)
		}
	}
}
