package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// Emitter receives the source's events. The pipeline implements it over the bus.
//
// Emit may return before the event is durable. Mark queues a position:
// Source.Durable(position) is called once every event emitted before it (by
// the same goroutine) is durable. Flush waits until everything emitted is
// durable. All three are safe for concurrent use.
//
// Emit must not retain the event, or anything it points to, after it
// returns: the snapshot reuses one event per reader (encode or clone it).
type Emitter interface {
	Emit(ctx context.Context, e *event.Event) error
	Mark(ctx context.Context, position any) error
	Flush(ctx context.Context) error
}

// Laner is an Emitter that gives concurrent writers (snapshot readers)
// lanes of their own: a lane batches and encodes without waiting for the
// others, and its Mark reports a position once everything emitted to that
// lane before it is durable. Events of different lanes have no order
// between them.
type Laner interface {
	Lane() Emitter
}

// lane returns a lane of the source's emitter, or the emitter itself when
// it has none.
func (s *Source) lane() Emitter {
	if l, ok := s.opts.Emitter.(Laner); ok {
		return l.Lane()
	}
	return s.opts.Emitter
}

// StateStore keeps the source's small persistent state (snapshot progress).
type StateStore interface {
	Get(ctx context.Context, key string, v any) (bool, error)
	Put(ctx context.Context, key string, v any) error
	Delete(ctx context.Context, key string) error
}

// Snapshot modes.
const (
	SnapshotInitial = "initial"
	SnapshotNever   = "never"
	SnapshotAlways  = "always"
)

// Options are what the pipeline gives a source besides its Config.
type Options struct {
	SourceName   string
	Pipeline     string
	SnapshotMode string
	// OnPositionLost is PositionLostFail (default) or PositionLostResnapshot.
	OnPositionLost string
	Emitter        Emitter
	State          StateStore
	Logger         *slog.Logger
	Metrics        *metrics.Metrics
	// Progress, when set, receives snapshot progress (rows done, estimated
	// total) for display.
	Progress func(p Progress)
}

// Progress describes a running snapshot.
type Progress struct {
	Table         string
	RowsDone      int64
	RowsEstimated int64
	Done          bool
}

// Source is one PostgreSQL source bound to one pipeline (one slot).
type Source struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	types *pgdecode.Types

	tables   []*Table
	byName   map[string]*Table
	origins  map[*Table]*event.Origin
	database string

	// durable is the highest commit end LSN whose events are all durable.
	durable atomic.Uint64
	// snap tracks the running snapshot's chunk completions (nil when none).
	snap atomic.Pointer[snapshotRun]
}

// New checks the configuration and returns a source; Run connects.
func New(cfg Config, opts Options) (*Source, error) {
	if opts.Emitter == nil || opts.State == nil {
		return nil, errors.New("postgres source: Emitter and State are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.SnapshotMode == "" {
		opts.SnapshotMode = SnapshotInitial
	}
	cfg.setDefaults(opts.Pipeline)
	s := &Source{
		cfg:   cfg,
		opts:  opts,
		log:   opts.Logger.With("source", opts.SourceName),
		types: pgdecode.NewTypes(),
	}
	// The database name goes into every event's origin; it is set once,
	// here, as connections are opened concurrently (lag watcher, snapshot
	// workers). A DSN that does not parse fails at the first connect.
	if cc, err := s.connConfig(); err == nil {
		s.database = cc.Database
	}
	return s, nil
}

func (c *Config) setDefaults(pipeline string) {
	def := "tidegate_" + sanitizeIdent(pipeline)
	if c.Publication == "" {
		c.Publication = def
	}
	if c.Slot == "" {
		c.Slot = def
	}
	if c.SnapshotWorkers <= 0 {
		c.SnapshotWorkers = 2
	}
	if c.SnapshotChunkRows <= 0 {
		c.SnapshotChunkRows = 20000
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 10e9
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 30e9
	}
}

func sanitizeIdent(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// Slot returns the replication slot name the source uses.
func (s *Source) Slot() string { return s.cfg.Slot }

// Durable is called by the pipeline when a position given to Mark is durable.
func (s *Source) Durable(position any) {
	switch p := position.(type) {
	case pglogrepl.LSN:
		for {
			cur := s.durable.Load()
			if uint64(p) <= cur || s.durable.CompareAndSwap(cur, uint64(p)) {
				return
			}
		}
	case chunkRef:
		if run := s.snap.Load(); run != nil {
			run.chunkDurable(p)
		}
	}
}

// Run snapshots (as configured) and streams until ctx is done or a fatal
// error occurs. context.Canceled is a clean stop.
func (s *Source) Run(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	lagCtx, stopLag := context.WithCancel(ctx)
	var lagDone sync.WaitGroup
	lagDone.Add(1)
	go func() { defer lagDone.Done(); s.watchLag(lagCtx) }()
	defer func() { stopLag(); lagDone.Wait() }()

	if err := s.loadTables(ctx, conn); err != nil {
		return err
	}
	if err := s.ensurePublication(ctx, conn); err != nil {
		return err
	}
	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())

	start, err := s.prepare(ctx, conn, repl)
	if err != nil {
		return err
	}
	return s.stream(ctx, conn, repl, start)
}

// connConfig parses the DSN and applies tidegate's session settings.
func (s *Source) connConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL DSN of source %s: %s", s.opts.SourceName, redactErr(err))
	}
	for k, v := range pgdecode.SessionParams {
		cc.RuntimeParams[k] = v
	}
	cc.RuntimeParams["application_name"] = "tidegate"
	return cc, nil
}

func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL %s:%d (source %s): %w", cc.Host, cc.Port, s.opts.SourceName, err)
	}
	return conn, nil
}

func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := s.connConfig()
	if err != nil {
		return nil, err
	}
	pc := cc.Config.Copy()
	pc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("opening a replication connection to %s:%d (does the user have the REPLICATION attribute, and does pg_hba.conf allow it?): %w", cc.Host, cc.Port, err)
	}
	return conn, nil
}

func (s *Source) loadTables(ctx context.Context, conn *pgx.Conn) error {
	s.byName = map[string]*Table{}
	s.origins = map[*Table]*event.Origin{}
	var errs []error
	for _, name := range s.cfg.Tables {
		schema, rel := ParseTableName(name)
		t, err := loadTable(ctx, conn, schema+"."+rel, s.cfg.Keys[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.types.Load(ctx, conn, t.typeOIDs()...); err != nil {
			errs = append(errs, fmt.Errorf("loading the column types of %s: %w", name, err))
			continue
		}
		s.tables = append(s.tables, t)
		s.byName[t.QualifiedName()] = t
		s.origins[t] = &event.Origin{Source: s.opts.SourceName, Kind: "postgres", Database: s.database, Schema: t.Schema, Table: t.Name}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrSetup, errors.Join(errs...))
	}
	return nil
}

// redactErr drops anything that could hold a password from a DSN parse error.
func redactErr(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "invalid connection string (check its syntax; the value is not shown because it may hold a password)"
	}
	return err.Error()
}
