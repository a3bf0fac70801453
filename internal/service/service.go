// Package service runs a whole tidegate process from its configuration: the
// bus, the admin server and every pipeline, until the context is done.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/internal/admin"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/pipeline"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

// Options tune a run.
type Options struct {
	Logger *slog.Logger
	// Progress receives snapshot progress for display (optional).
	Progress func(pipeline string, p postgres.Progress)
	// Ready is called once every pipeline has started (optional).
	Ready func(adminAddr string)
}

// Run runs every configured pipeline until ctx is done (a clean stop
// returns nil) or one fails for good.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := metrics.New()
	b, err := bus.Open(ctx, bus.Config{URL: cfg.Bus.URL, DataDir: cfg.DataDir, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()

	var mu sync.Mutex
	var failed error
	health := func() error {
		mu.Lock()
		defer mu.Unlock()
		return failed
	}
	adminAddr := ""
	if cfg.Admin.Listen != "" && cfg.Admin.Listen != config.AdminOff {
		var pipes []admin.Pipeline
		for _, pc := range cfg.Pipelines {
			pipes = append(pipes, admin.Pipeline{Name: pc.Name, Sinks: pc.Sinks})
		}
		srv, err := admin.Start(admin.Options{
			Addr: cfg.Admin.Listen, Token: cfg.Admin.Token, Registry: m.Registry, Health: health, Logger: log,
			DeadLetters: b, Pipelines: pipes,
		})
		if err != nil {
			return err
		}
		defer srv.Close()
		adminAddr = srv.Addr()
		log.Info("admin listening", "address", adminAddr, "metrics", "http://"+adminAddr+"/metrics",
			"api", "http://"+adminAddr+" (gRPC and HTTP/JSON; tidegate dlq ...)", "token_required", cfg.Admin.Token != "")
	}

	var pipes []*pipeline.Pipeline
	for _, pc := range cfg.Pipelines {
		p, err := pipeline.Build(ctx, cfg, pc, pipeline.Deps{Bus: b, Logger: log, Metrics: m, Progress: opts.Progress})
		if err != nil {
			return err
		}
		pipes = append(pipes, p)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range pipes {
		name := cfg.Pipelines[i].Name
		g.Go(func() error {
			err := p.Run(gctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				mu.Lock()
				failed = fmt.Errorf("pipeline %s: %w", name, err)
				mu.Unlock()
			}
			return err
		})
	}
	if opts.Ready != nil {
		opts.Ready(adminAddr)
	}
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		log.Info("stopped")
		return nil
	}
	return err
}
