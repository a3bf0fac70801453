package config

import (
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/source/postgres"
)

// Defaults applied by SetDefaults (and stated on the Config fields).
const (
	DefaultDataDir          = "./data"
	DefaultBusURL           = "embedded"
	DefaultBusMaxBytes      = 1 << 30
	DefaultDuplicateWindow  = time.Minute
	DefaultMaxInflightBytes = 32 << 20
	DefaultAdminListen      = "127.0.0.1:7070"
	DefaultLogLevel         = "info"
	DefaultLogFormat        = "text"
	DefaultSnapshot         = SnapshotInitial
	DefaultBatchMaxEvents   = 5000
	DefaultBatchLinger      = 5 * time.Millisecond
	DefaultPublishLinger    = 2 * time.Millisecond
	// MaxBatchLinger stays well under the sink consumer's ack wait (5s):
	// the messages of a lingering batch are not acknowledged yet.
	MaxBatchLinger = time.Second
	// MaxPublishLinger: a longer linger would only delay every change.
	MaxPublishLinger = time.Second
)

// DurationOff is the value of a duration that accepts "off" (see
// offDurations) when it is set to "off".
const DurationOff time.Duration = -1

// Values of Pipeline.OnPositionLost.
const (
	PositionLostFail       = "fail"
	PositionLostResnapshot = "resnapshot"
)

// Values of Pipeline.Snapshot.
const (
	SnapshotInitial = "initial"
	SnapshotNever   = "never"
	SnapshotAlways  = "always"
)

// AdminOff as admin.listen disables the admin server.
const AdminOff = "off"

// SetDefaults fills every zero field with the default stated on it,
// including those of each source and sink. The PostgreSQL publication and
// slot default to "tidegate_<pipeline>" and are set here only for a source
// used by exactly one pipeline; PostgresFor derives them for any pipeline.
// SetDefaults is idempotent; Parse and Load call it.
func (c *Config) SetDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Bus.URL == "" {
		c.Bus.URL = DefaultBusURL
	}
	if c.Bus.MaxBytes == 0 {
		c.Bus.MaxBytes = DefaultBusMaxBytes
	}
	if c.Bus.DuplicateWindow == 0 {
		c.Bus.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Bus.MaxInflightBytes == 0 {
		c.Bus.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Postgres == nil {
			continue
		}
		s.Postgres.SetDefaults()
		var users []Pipeline
		for _, p := range c.Pipelines {
			if p.Source == s.Name {
				users = append(users, p)
			}
		}
		if len(users) == 1 {
			setPostgresNames(s.Postgres, users[0].Name)
		}
	}
	for i := range c.Sinks {
		if es := c.Sinks[i].Elasticsearch; es != nil {
			es.SetDefaults()
		}
		if o := c.Sinks[i].OpenSearch; o != nil {
			o.SetDefaults()
		}
	}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		if p.OnPositionLost == "" {
			p.OnPositionLost = PositionLostFail
		}
		if p.Snapshot == "" {
			p.Snapshot = DefaultSnapshot
		}
		if p.BatchMaxEvents == 0 {
			p.BatchMaxEvents = DefaultBatchMaxEvents
		}
		if p.BatchLinger == 0 {
			p.BatchLinger = DefaultBatchLinger
		}
		if p.PublishLinger == 0 {
			p.PublishLinger = DefaultPublishLinger
		}
	}
}

// PostgresFor returns the PostgreSQL settings of pipeline's source with
// every default applied, the publication and slot defaulting to
// DefaultPostgresName(pipeline.Name). It returns the zero Config when the
// pipeline's source is not a PostgreSQL source of c. The Tables and Keys
// of the result are shared with c: do not modify them.
func (c *Config) PostgresFor(pipeline Pipeline) postgres.Config {
	for _, s := range c.Sources {
		if s.Name == pipeline.Source && s.Postgres != nil {
			pg := *s.Postgres
			pg.SetDefaults()
			setPostgresNames(&pg, pipeline.Name)
			return pg
		}
	}
	return postgres.Config{}
}

func setPostgresNames(pg *postgres.Config, pipeline string) {
	name := DefaultPostgresName(pipeline)
	if pg.Publication == "" {
		pg.Publication = name
	}
	if pg.Slot == "" {
		pg.Slot = name
	}
}

// DefaultPostgresName is the default publication and replication slot name
// of a pipeline: "tidegate_" and the pipeline name lowercased, with every
// character other than a-z, 0-9 and _ replaced by _.
func DefaultPostgresName(pipeline string) string {
	var b strings.Builder
	b.WriteString("tidegate_")
	for _, r := range strings.ToLower(pipeline) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
