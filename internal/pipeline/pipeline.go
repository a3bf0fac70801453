package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/sink"
)

// Source is what a pipeline runs on its source side.
//
// Run reads and emits until ctx is done (returning ctx.Err()) or it fails.
// Durable is called with each position the source passed to its emitter's
// Mark, once everything before it is in the bus.
type Source interface {
	Run(ctx context.Context) error
	Durable(position any)
}

// Fatal marks a source error that restarting cannot fix (lost position,
// configuration problems); the pipeline stops instead of retrying.
type Fatal struct{ Err error }

func (f *Fatal) Error() string { return f.Err.Error() }
func (f *Fatal) Unwrap() error { return f.Err }

// Sink is a named sink. Open connects it; the pipeline keeps calling it
// (with backoff) until it succeeds, so an unreachable sink at start does not
// keep the source from filling the bus.
type Sink struct {
	Name string
	Open func(ctx context.Context) (sink.Writer, error)
}

// Settings are a pipeline's tunables.
type Settings struct {
	Name             string
	MaxStreamBytes   int64
	DuplicateWindow  time.Duration
	MaxInflightBytes int64
	BatchMaxEvents   int
	BatchLinger      time.Duration
	// PublishLinger: how long the source keeps a committed transaction
	// back for the next ones to share its bus message (0: none).
	PublishLinger time.Duration
	AckWait       time.Duration
	// RestartMin/Max bound the backoff between source restarts.
	RestartMin, RestartMax time.Duration
}

// Pipeline is one source feeding N sinks through the bus.
type Pipeline struct {
	set     Settings
	bus     *bus.Bus
	sinks   []Sink
	log     *slog.Logger
	metrics *metrics.Metrics

	// newSource builds the source around an emitter (called at each (re)start).
	newSource func(em *busEmitter) (Source, error)
}

// Run creates the bus streams and consumers, then runs the source and the
// sinks until ctx is done or something fails for good.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.bus.EnsurePipeline(ctx, p.set.Name, bus.StreamConfig{MaxBytes: p.set.MaxStreamBytes, DuplicateWindow: p.set.DuplicateWindow, MaxInflightBytes: p.set.MaxInflightBytes}); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range p.sinks {
		cons, err := p.bus.EnsureConsumer(ctx, p.set.Name, s.Name, bus.ConsumerConfig{MaxAckPending: 4 * p.set.BatchMaxEvents, AckWait: p.set.AckWait})
		if err != nil {
			return err
		}
		r := &sinkRunner{
			pipeline: p.set.Name, name: s.Name, open: s.Open, bus: p.bus, cons: cons,
			batchMax: p.set.BatchMaxEvents, linger: p.set.BatchLinger, ackWait: p.set.AckWait, log: p.log, metrics: p.metrics,
		}
		g.Go(func() error { return r.run(gctx) })
	}
	g.Go(func() error { return p.runSource(gctx) })
	g.Go(func() error { p.gauges(gctx); return nil })
	g.Go(func() error { p.trim(gctx); return nil })
	err := g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// runSource runs the source, restarting it with backoff after transient
// failures (each restart resumes from the last durable position).
func (p *Pipeline) runSource(ctx context.Context) error {
	backoff := p.set.RestartMin
	for {
		started := time.Now()
		err := p.runSourceOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fatal *Fatal
		if errors.As(err, &fatal) {
			return fmt.Errorf("pipeline %s: %w", p.set.Name, err)
		}
		if time.Since(started) > time.Minute {
			backoff = p.set.RestartMin
		}
		p.log.Error("source failed; restarting from the last durable position", "pipeline", p.set.Name, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, p.set.RestartMax)
	}
}

func (p *Pipeline) runSourceOnce(ctx context.Context) error {
	var src Source
	var em *busEmitter
	pub := p.bus.NewPublisher(bus.PublisherConfig{
		Pipeline:         p.set.Name,
		MaxInflightBytes: p.set.MaxInflightBytes,
		MaxStreamBytes:   p.set.MaxStreamBytes,
		OnDurable:        func(pos any) { src.Durable(pos) },
		Stored:           recycleBatchBuffer,
		OnStored:         func(n uint64) { em.stored(n) },
		Logger:           p.log,
	})
	defer pub.Close()
	em = newBusEmitter(p.set.Name, pub, p.set.PublishLinger, p.metrics, p.log)
	defer em.Close()
	src, err := p.newSource(em)
	if err != nil {
		return &Fatal{Err: err}
	}
	return src.Run(ctx)
}

// gauges refreshes bus-derived gauges.
func (p *Pipeline) gauges(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for _, s := range p.sinks {
			if n, err := p.bus.Pending(ctx, p.set.Name, s.Name); err == nil {
				p.metrics.BusPending.WithLabelValues(p.set.Name, s.Name).Set(float64(n))
			}
			if n, err := p.bus.DLQDepth(ctx, p.set.Name, s.Name); err == nil {
				p.metrics.DLQDepth.WithLabelValues(p.set.Name, s.Name).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
