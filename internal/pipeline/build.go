package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/sink"
	"github.com/tidegate/tidegate/internal/sink/elasticsearch"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

// Deps are the process-wide things every pipeline shares.
type Deps struct {
	Bus     *bus.Bus
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Progress receives snapshot progress (optional).
	Progress func(pipeline string, p postgres.Progress)
}

// Build turns one configured pipeline into a runnable Pipeline: the one
// place where configuration meets concrete sources and sinks.
func Build(ctx context.Context, cfg *config.Config, pc config.Pipeline, d Deps) (*Pipeline, error) {
	log := d.Logger.With("pipeline", pc.Name)
	p := &Pipeline{
		set: Settings{
			Name:             pc.Name,
			MaxStreamBytes:   cfg.Bus.MaxBytes,
			DuplicateWindow:  cfg.Bus.DuplicateWindow,
			MaxInflightBytes: int64(cfg.Bus.MaxInflightBytes),
			BatchMaxEvents:   pc.BatchMaxEvents,
			BatchLinger:      max(pc.BatchLinger, 0), // DurationOff: none
			PublishLinger:    max(pc.PublishLinger, 0),
			AckWait:          5 * time.Second,
			RestartMin:       time.Second,
			RestartMax:       30 * time.Second,
		},
		bus:     d.Bus,
		log:     log,
		metrics: d.Metrics,
	}
	if p.set.BatchMaxEvents <= 0 {
		p.set.BatchMaxEvents = 2000
	}
	for _, name := range pc.Sinks {
		sc := findSink(cfg, name)
		if sc == nil {
			return nil, fmt.Errorf("pipeline %s: sink %q is not defined", pc.Name, name)
		}
		p.sinks = append(p.sinks, Sink{Name: name, Open: func(ctx context.Context) (sink.Writer, error) {
			return openSink(ctx, sc, log, d.Metrics)
		}})
	}
	srcCfg := findSource(cfg, pc.Source)
	if srcCfg == nil || srcCfg.Postgres == nil {
		return nil, fmt.Errorf("pipeline %s: source %q is not defined (or has no postgres section)", pc.Name, pc.Source)
	}
	pg := *srcCfg.Postgres
	p.newSource = func(em *busEmitter) (Source, error) {
		state, err := d.Bus.State(ctx)
		if err != nil {
			return nil, err
		}
		var progress func(postgres.Progress)
		if d.Progress != nil {
			progress = func(pr postgres.Progress) { d.Progress(pc.Name, pr) }
		}
		src, err := postgres.New(pg, postgres.Options{
			SourceName: srcCfg.Name, Pipeline: pc.Name, SnapshotMode: pc.Snapshot, OnPositionLost: pc.OnPositionLost,
			Emitter: em, State: state, Logger: log, Metrics: d.Metrics, Progress: progress,
		})
		if err != nil {
			return nil, err
		}
		return fatalOn{src}, nil
	}
	return p, nil
}

// fatalOn turns the source errors that a restart cannot fix into Fatal.
type fatalOn struct{ *postgres.Source }

func (f fatalOn) Run(ctx context.Context) error {
	err := f.Source.Run(ctx)
	if errors.Is(err, postgres.ErrPositionLost) || errors.Is(err, postgres.ErrSetup) {
		return &Fatal{Err: err}
	}
	return err
}

func openSink(ctx context.Context, sc *config.Sink, log *slog.Logger, m *metrics.Metrics) (*elasticsearch.Sink, error) {
	es := sc.Elasticsearch
	if es == nil {
		es = sc.OpenSearch
	}
	if es == nil {
		return nil, errors.New("no sink kind configured (elasticsearch or opensearch)")
	}
	return elasticsearch.New(ctx, *es,
		elasticsearch.WithName(sc.Name),
		elasticsearch.WithLogger(log.With("sink", sc.Name)),
		elasticsearch.WithRegisterer(m.Registry))
}

func findSink(cfg *config.Config, name string) *config.Sink {
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Name == name {
			return &cfg.Sinks[i]
		}
	}
	return nil
}

func findSource(cfg *config.Config, name string) *config.Source {
	for i := range cfg.Sources {
		if cfg.Sources[i].Name == name {
			return &cfg.Sources[i]
		}
	}
	return nil
}
