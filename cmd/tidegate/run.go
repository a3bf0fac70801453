package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/platform/log"
	"github.com/tidegate/tidegate/internal/service"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

func runCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the configured pipelines in the foreground",
		Long: `Run the pipelines of the configuration file in the foreground until SIGINT or
SIGTERM, which stop cleanly (positions are confirmed only for what is durable,
so a stop at any moment — even kill -9 — loses nothing).

On first start each pipeline creates its publication and replication slot,
snapshots the tables (in parallel key-range chunks, resumable), then streams.
Progress is shown on a terminal and logged every 10 s otherwise.

For performance work, TIDEGATE_CPUPROFILE=FILE writes a CPU profile of the
whole run (go tool pprof); /debug/pprof on the admin address covers a window.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			logger := log.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			tuneGC(logger)
			opts := service.Options{Logger: logger}
			if term.IsTerminal(int(os.Stderr.Fd())) {
				bar := &progressBar{}
				opts.Progress = bar.update
			}
			logger.Info("tidegate starting", "version", version, "config", path, "data_dir", cfg.DataDir, "pipelines", len(cfg.Pipelines))
			stopProfile, err := startCPUProfile(os.Getenv("TIDEGATE_CPUPROFILE"))
			if err != nil {
				return err
			}
			defer stopProfile()
			return service.Run(cmd.Context(), cfg, opts)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "tidegate.yaml", "configuration file (YAML or JSON)")
	return cmd
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT says otherwise. What tidegate holds is bounded by configuration
// (bytes in flight, batch sizes); the limit keeps the garbage collector from
// letting the heap grow to twice that. Measured: peak RSS 244 MiB without a
// limit, 150 MiB with 128 MiB, same throughput (250k-row demo snapshot).
//
// It was 160 MiB. During a snapshot into Elasticsearch ~100 MB is live
// (batches being written, the bus client's and server's buffers), so the
// collector ran whenever ~45 MB more had been allocated: 33 collections and
// 1.3 s of CPU in the first 11 s of the 1M-row bench, a third of tidegate's
// CPU. At 200 MiB: 18 collections and 0.56 s, tidegate's CPU 3.9 -> 3.4 s;
// peak RSS 175 -> 212 MiB, and 188 -> 217 MiB for a 200-column table, under
// the 256 MiB bound (make bench with GODEBUG=gctrace=1).
const defaultMemoryLimit = 200 << 20

// defaultGCPercent is the garbage collector's target unless GOGC says
// otherwise, when a memory limit caps the heap: between collections the
// heap may grow to five times what is live, up to the limit. When little is
// live (streaming: 20–40 MiB), the default 100 collected every 300 ms at
// 5,000 events/s, and a collection's marking took a core from the stream
// for 20–180 ms: source publish p99 went from 20 to 10 ms, streaming into
// the bus 10% faster, peak RSS unchanged (make bench). Without a limit
// (GOMEMLIMIT=off) it stays at Go's default: nothing would cap the heap.
const defaultGCPercent = 400

// tuneGC sets the soft memory limit and, under it, the GC target.
func tuneGC(logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	limit := debug.SetMemoryLimit(-1) // reads it
	gogc := os.Getenv("GOGC")
	if gogc == "" && limit != math.MaxInt64 {
		debug.SetGCPercent(defaultGCPercent)
		gogc = strconv.Itoa(defaultGCPercent)
	}
	logger.Debug("garbage collector tuned (override with GOMEMLIMIT and GOGC)", "memory_limit_bytes", limit, "gogc", gogc)
}

// startCPUProfile writes a CPU profile of the whole run to path (the
// TIDEGATE_CPUPROFILE environment variable; make bench's -profile), for
// performance work: /debug/pprof/profile covers a fixed window, this covers
// start to stop. An empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("TIDEGATE_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("TIDEGATE_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// progressBar draws snapshot progress on a terminal.
type progressBar struct {
	mu    sync.Mutex
	start time.Time
}

func (b *progressBar) update(pipeline string, p postgres.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.start.IsZero() {
		b.start = time.Now()
	}
	total := max(p.RowsEstimated, p.RowsDone, 1)
	frac := float64(p.RowsDone) / float64(total)
	const width = 30
	filled := int(frac * width)
	rate := float64(p.RowsDone) / max(time.Since(b.start).Seconds(), 1e-3)
	eta := "?"
	if rate > 0 && total > p.RowsDone {
		eta = (time.Duration(float64(total-p.RowsDone)/rate) * time.Second).String()
	}
	line := fmt.Sprintf("\r%s snapshot [%s%s] %5.1f%% %d/~%d rows %.0f rows/s ETA %s ",
		pipeline, strings.Repeat("#", filled), strings.Repeat(".", width-filled), 100*frac, p.RowsDone, total, rate, eta)
	if p.Done {
		line = fmt.Sprintf("\r%s snapshot done: %d rows in %s%s\n", pipeline, p.RowsDone, time.Since(b.start).Round(time.Second), strings.Repeat(" ", 30))
	}
	fmt.Fprint(os.Stderr, line)
}
