package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/sink/elasticsearch"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

func TestSetDefaults(t *testing.T) {
	c := &Config{
		Sources:   []Source{{Name: "shop", Postgres: &postgres.Config{}}, {Name: "unused", Postgres: &postgres.Config{}}},
		Sinks:     []Sink{{Name: "es", Elasticsearch: &elasticsearch.Config{}}, {Name: "os", OpenSearch: &elasticsearch.Config{}}},
		Pipelines: []Pipeline{{Name: "Shop-Search.v2", Source: "shop", Sinks: []string{"es", "os"}}},
	}
	c.SetDefaults()
	c.SetDefaults() // idempotent
	want := Config{
		DataDir:   "./data",
		Bus:       Bus{URL: "embedded", MaxBytes: 1 << 30, DuplicateWindow: time.Minute, MaxInflightBytes: 32 << 20},
		Admin:     Admin{Listen: "127.0.0.1:7070"},
		Log:       Log{Level: "info", Format: "text"},
		Pipelines: []Pipeline{{Name: "Shop-Search.v2", Source: "shop", Sinks: []string{"es", "os"}, Snapshot: "initial", OnPositionLost: "fail", BatchMaxEvents: 5000, BatchLinger: 5 * time.Millisecond, PublishLinger: 2 * time.Millisecond}},
	}
	got := *c
	got.Sources, got.Sinks = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SetDefaults:\n got %+v\nwant %+v", got, want)
	}
	wantPG := postgres.Config{
		Publication: "tidegate_shop_search_v2", Slot: "tidegate_shop_search_v2",
		SnapshotWorkers: 2, SnapshotChunkRows: 20000, StatusInterval: 10 * time.Second, HeartbeatInterval: 30 * time.Second,
	}
	if got := *c.Sources[0].Postgres; !reflect.DeepEqual(got, wantPG) {
		t.Errorf("postgres defaults:\n got %+v\nwant %+v", got, wantPG)
	}
	if got := c.Sources[1].Postgres; got.Slot != "" || got.Publication != "" {
		t.Errorf("a source no pipeline uses got a slot: %+v", got)
	}
	wantES := elasticsearch.Config{
		Index: "{source}.{schema}.{table}", BulkMaxBytes: 5 << 20, BulkMaxActions: 5000, Concurrency: 2,
		RequestTimeout: 60 * time.Second, RetryInitial: 200 * time.Millisecond, RetryMax: 30 * time.Second, Truncate: "delete",
	}
	for _, es := range []*elasticsearch.Config{c.Sinks[0].Elasticsearch, c.Sinks[1].OpenSearch} {
		if !reflect.DeepEqual(*es, wantES) {
			t.Errorf("elasticsearch defaults:\n got %+v\nwant %+v", *es, wantES)
		}
	}
}

func TestSetDefaultsKeepsValues(t *testing.T) {
	c := &Config{DataDir: "/var/lib/tidegate", Bus: Bus{MaxBytes: 5}, Pipelines: []Pipeline{{Snapshot: "never", BatchMaxEvents: 7, BatchLinger: DurationOff}}}
	c.SetDefaults()
	if c.DataDir != "/var/lib/tidegate" || c.Bus.MaxBytes != 5 || c.Pipelines[0].Snapshot != "never" || c.Pipelines[0].BatchMaxEvents != 7 || c.Pipelines[0].BatchLinger != DurationOff {
		t.Errorf("SetDefaults overwrote values: %+v", c)
	}
}

func TestPostgresFor(t *testing.T) {
	c := &Config{
		Sources: []Source{
			{Name: "shop", Postgres: &postgres.Config{DSN: "host=db", Tables: []string{"t"}}},
			{Name: "own", Postgres: &postgres.Config{Slot: "my_slot"}},
		},
	}
	pg := c.PostgresFor(Pipeline{Name: "p-1", Source: "shop"})
	if pg.Slot != "tidegate_p_1" || pg.Publication != "tidegate_p_1" || pg.DSN != "host=db" || pg.SnapshotWorkers != 2 {
		t.Errorf("PostgresFor = %+v", pg)
	}
	if c.Sources[0].Postgres.Slot != "" || c.Sources[0].Postgres.SnapshotWorkers != 0 {
		t.Error("PostgresFor modified the configuration")
	}
	if pg := c.PostgresFor(Pipeline{Name: "p", Source: "own"}); pg.Slot != "my_slot" || pg.Publication != "tidegate_p" {
		t.Errorf("explicit slot: %+v", pg)
	}
	if pg := c.PostgresFor(Pipeline{Name: "p", Source: "missing"}); !reflect.DeepEqual(pg, postgres.Config{}) {
		t.Errorf("missing source: %+v", pg)
	}
}

func TestDefaultPostgresName(t *testing.T) {
	for in, want := range map[string]string{"shop-search": "tidegate_shop_search", "Shop.V2": "tidegate_shop_v2", "a_b": "tidegate_a_b", "é": "tidegate__"} {
		if got := DefaultPostgresName(in); got != want {
			t.Errorf("DefaultPostgresName(%q) = %q, want %q", in, got, want)
		}
	}
}
