package config

import (
	"time"

	"github.com/tidegate/tidegate/internal/sink/elasticsearch"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

// Config is the whole tidegate configuration file.
type Config struct {
	// DataDir holds the embedded bus and local state. Default "./data".
	DataDir string `yaml:"data_dir" json:"data_dir,omitempty"`
	// Bus configures the NATS JetStream bus that carries events from sources to sinks.
	Bus Bus `yaml:"bus" json:"bus,omitempty"`
	// Admin configures the admin server (API, metrics, health).
	Admin Admin `yaml:"admin" json:"admin,omitempty"`
	// Log configures logging.
	Log Log `yaml:"log" json:"log,omitempty"`
	// Sources, Sinks and Pipelines are matched by name.
	Sources   []Source   `yaml:"sources" json:"sources"`
	Sinks     []Sink     `yaml:"sinks" json:"sinks"`
	Pipelines []Pipeline `yaml:"pipelines" json:"pipelines"`

	// Path is the file the configuration was read from (not a YAML key).
	Path string `yaml:"-" json:"-"`

	// info records where each field was read from (for messages); nil for
	// a Config built in code.
	info *fileInfo
}

// Bus configures the NATS JetStream bus.
type Bus struct {
	// URL is "embedded" (default: a NATS server inside tidegate, data under
	// data_dir/bus) or nats://host:4222[,nats://...] for an external cluster.
	URL string `yaml:"url" json:"url,omitempty"`
	// MaxBytes caps each pipeline stream's stored bytes; when full, the source
	// waits (backpressure) until sinks consume. Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes,omitempty"`
	// DuplicateWindow is how long message ids of streamed changes are
	// remembered, to drop events a restarted source publishes again. The
	// bus keeps one entry per message for this long (memory grows with rate
	// x window); duplicates past it are harmless (writes are versioned and
	// replayed in order). Default 1m.
	DuplicateWindow time.Duration `yaml:"duplicate_window" json:"duplicate_window,omitempty"`
	// MaxInflightBytes bounds events published but not yet acknowledged by
	// the bus, per pipeline, by the memory their buffers take. Default 32 MiB.
	MaxInflightBytes int `yaml:"max_inflight_bytes" json:"max_inflight_bytes,omitempty"`
}

// Admin configures the admin server: on one address, the admin API (gRPC
// and HTTP/JSON; the tidegate CLI's `dlq` commands use it), Prometheus
// metrics, health and profiles.
type Admin struct {
	// Listen address. Default "127.0.0.1:7070". The string "off" disables it
	// (and the API with it).
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Token required as "Authorization: Bearer <token>" on the admin API and
	// /debug/pprof (/metrics and /healthz stay open). Required unless listen
	// is a loopback address. Take it from the environment or a file
	// (${TIDEGATE_TOKEN}, ${file:/run/secrets/tidegate-token}); the CLI reads
	// it from the same file (-c), --token or TIDEGATE_ADMIN_TOKEN.
	Token string `yaml:"token" json:"token,omitempty"`
}

// Log configures logging.
type Log struct {
	// Level: debug, info, warn, error. Default info.
	Level string `yaml:"level" json:"level,omitempty"`
	// Format: text or json. Default text.
	Format string `yaml:"format" json:"format,omitempty"`
}

// Source is one named source; exactly one kind must be set.
type Source struct {
	// Name identifies the source in pipelines: lowercase letters, digits, _ and -.
	Name string `yaml:"name" json:"name"`
	// Postgres captures tables of a PostgreSQL database (logical replication).
	Postgres *postgres.Config `yaml:"postgres" json:"postgres,omitempty"`
}

// Sink is one named sink; exactly one kind must be set.
type Sink struct {
	// Name identifies the sink in pipelines: lowercase letters, digits, _ and -.
	Name string `yaml:"name" json:"name"`
	// Elasticsearch writes to an Elasticsearch (7.10+, 8, 9) or OpenSearch cluster.
	Elasticsearch *elasticsearch.Config `yaml:"elasticsearch" json:"elasticsearch,omitempty"`
	// OpenSearch takes the same settings as elasticsearch; either key works
	// for either product (the flavor is detected), this one reads better.
	OpenSearch *elasticsearch.Config `yaml:"opensearch" json:"opensearch,omitempty"`
}

// Pipeline wires one source to one or more sinks.
type Pipeline struct {
	// Name identifies the pipeline (lowercase letters, digits, _ and -, at
	// most 54 characters); the default PostgreSQL publication and slot are
	// named after it.
	Name string `yaml:"name" json:"name"`
	// Source is the name of the source the pipeline reads. A source is used
	// by one pipeline only (it owns the replication slot).
	Source string `yaml:"source" json:"source"`
	// Sinks are the names of the sinks the pipeline writes to; each consumes
	// the pipeline's events independently.
	Sinks []string `yaml:"sinks" json:"sinks"`
	// Snapshot: "initial" (default: snapshot once, then stream), "never"
	// (stream only), "always" (re-snapshot at every start).
	Snapshot string `yaml:"snapshot" json:"snapshot,omitempty"`
	// OnPositionLost: what to do when the source position is gone at start
	// (the replication slot was dropped, or PostgreSQL invalidated it past
	// max_slot_wal_keep_size). "fail" (default) stops with an error saying
	// how to recover; "resnapshot" creates a new slot, snapshots every table
	// again, deletes the documents of rows deleted meanwhile, and streams on.
	OnPositionLost string `yaml:"on_position_lost" json:"on_position_lost,omitempty"`
	// Sink consumer batch: at most BatchMaxEvents events per write. Default 5000.
	BatchMaxEvents int `yaml:"batch_max_events" json:"batch_max_events,omitempty"`
	// BatchLinger: how long a sink waits for more events before writing a
	// batch that is not full, when none of its writes is in progress (as
	// Kafka's linger.ms). Fewer, larger bulk requests: at 1,000 single-row
	// transactions/s, 5ms cut Elasticsearch's CPU by 35-50 %. Adds up to that much
	// latency; under load writes are back to back and it does not apply.
	// Default 5ms; "off" writes at once; at most 1s.
	BatchLinger time.Duration `yaml:"batch_linger" json:"batch_linger,omitempty"`
	// PublishLinger: how long the source keeps a committed transaction
	// back so that the transactions committed meanwhile share its bus
	// message (a message costs more than a small transaction). Fewer
	// messages: at 5,000 single-row transactions/s, 2ms cut tidegate's CPU
	// by a third and the p99 latency from 125-149 to 43-45 ms on 2 cores.
	// Adds up to that much latency. Default 2ms; "off" publishes at once
	// (transactions committed while the bus stores the previous message
	// still share one); at most 1s.
	PublishLinger time.Duration `yaml:"publish_linger" json:"publish_linger,omitempty"`
}
