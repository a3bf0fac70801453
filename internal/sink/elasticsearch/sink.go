package elasticsearch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

// Sink writes change events to an Elasticsearch or OpenSearch cluster.
// Write may be called from several goroutines, but events of one document
// must come through one Write at a time (as the pipeline does).
type Sink struct {
	cfg       Config
	log       *slog.Logger
	info      clusterInfo
	backend   backend
	transport http.RoundTripper
	namer     *indexNamer
	indexes   *indexes
	metrics   *metrics
	bufs      bufferPool
	plans     sync.Pool // of *plan (segment.go)
	// requests holds a token per bulk request in flight: at most
	// cfg.Concurrency, across concurrent Writes.
	requests chan struct{}

	warnLog  logLimiter
	errorLog logLimiter

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ sink.Writer = (*Sink)(nil)

// Option configures New.
type Option func(*options)

type options struct {
	logger    *slog.Logger
	reg       prometheus.Registerer
	name      string
	transport http.RoundTripper
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the sink's metrics on reg (default: not
// registered).
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithName sets the sink's name: the "sink" label of its metrics (default
// "elasticsearch"). Log lines carry the attributes of the WithLogger logger
// only, so give it the name too.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithTransport replaces the HTTP transport (tests inject faults with it).
// The TLS settings of Config (ca_cert_file, insecure_skip_verify) are then
// the transport's business. Close calls its CloseIdleConnections, if any.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// New checks the configuration, connects to the cluster, detects its flavor
// and version and returns a Sink. It fails with an explanation and a hint
// when the cluster cannot be reached, refuses the credentials or runs an
// unsupported version.
func New(ctx context.Context, cfg Config, opts ...Option) (*Sink, error) {
	o := options{name: "elasticsearch"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid elasticsearch sink configuration: %w", err)
	}
	rt := o.transport
	if rt == nil {
		t, err := newTransport(cfg)
		if err != nil {
			return nil, err
		}
		rt = t
	}
	m, err := newMetrics(o.reg, o.name)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	conn, err := connect(ctx, cfg, rt)
	if err != nil {
		closeIdle(rt)
		return nil, err
	}
	var b backend
	switch conn.info.Flavor {
	case FlavorOpenSearch:
		b, err = newOSBackend(cfg, conn)
	default:
		b, err = newESBackend(cfg, conn)
	}
	if err != nil {
		closeIdle(rt)
		return nil, fmt.Errorf("creating %s client: %w", conn.info.Flavor, err)
	}
	idx, err := newIndexes(b, cfg)
	if err != nil {
		_ = b.close()
		closeIdle(rt)
		return nil, err
	}
	s := &Sink{
		cfg:       cfg,
		log:       o.logger,
		info:      conn.info,
		backend:   b,
		transport: rt,
		namer:     newIndexNamer(cfg.Index),
		indexes:   idx,
		metrics:   m,
		warnLog:   logLimiter{every: logEvery},
		errorLog:  logLimiter{every: logEvery},
		requests:  make(chan struct{}, max(cfg.Concurrency, 1)),
	}
	s.log.Info("connected", "flavor", conn.info.Flavor, "version", conn.info.Version)
	return s, nil
}

// Info returns the flavor and version of the cluster.
func (s *Sink) Info() Info { return s.info.Info }

// Close releases the client and its idle connections. It is idempotent;
// Write fails with ErrClosed afterwards.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.backend.close()
		closeIdle(s.transport)
	})
	return s.closeErr
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Write applies events (see sink.Writer). Operations are collapsed per
// document: of several events about one document between two truncates, only
// the one with the highest version (the last one among equal versions) is
// sent, since each carries the whole document; the others get a nil result.
// If the cluster rejects that operation permanently, it gets the
// PermanentError and the next best event of the document is sent instead,
// so the document ends where applying the events one by one would leave it.
//
// A truncate or sweep is a barrier: the events before it are applied first.
func (s *Sink) Write(ctx context.Context, events []*event.Event) ([]error, error) {
	return s.WriteEncoded(ctx, events, nil)
}

// WriteEncoded is Write for events whose after rows may still be encoded
// (sink.EncodedWriter): they are rendered from their encoding.
func (s *Sink) WriteEncoded(ctx context.Context, events []*event.Event, after []event.EncodedRow) ([]error, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if after != nil && len(after) != len(events) {
		return nil, fmt.Errorf("%d encoded rows for %d events", len(after), len(events))
	}
	results := make([]error, len(events))
	start := 0
	for i, e := range events {
		if op := e.GetOp(); op != event.Op_OP_TRUNCATE && op != event.Op_OP_SWEEP {
			continue
		}
		if err := s.applySegment(ctx, events[start:i], part(after, start, i), results[start:i]); err != nil {
			return nil, err
		}
		if err := s.truncate(ctx, e, &results[i]); err != nil {
			return nil, err
		}
		start = i + 1
	}
	if err := s.applySegment(ctx, events[start:], part(after, start, len(events)), results[start:]); err != nil {
		return nil, err
	}
	return results, nil
}

// part returns after[lo:hi], or nil for no after rows.
func part(after []event.EncodedRow, lo, hi int) []event.EncodedRow {
	if after == nil {
		return nil
	}
	return after[lo:hi]
}
