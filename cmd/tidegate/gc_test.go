package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// tidegate caps the heap at 200 MiB and, under that cap, collects less
// often (GOGC 400); with the limit turned off it keeps Go's default GOGC,
// as nothing would cap the heap; GOGC and GOMEMLIMIT win when set.
func TestTuneGC(t *testing.T) {
	oldLimit, oldGC := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(oldLimit); debug.SetGCPercent(oldGC) })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		gomemlimit, gogc string
		limit            int64 // set by the environment before tuneGC
		wantLimit        int64
		wantGC           int
	}{
		{"", "", math.MaxInt64, defaultMemoryLimit, defaultGCPercent},
		{"off", "", math.MaxInt64, math.MaxInt64, 100},
		{"1GiB", "", 1 << 30, 1 << 30, defaultGCPercent},
		{"", "50", math.MaxInt64, defaultMemoryLimit, 100}, // the runtime read GOGC=50 at start; tuneGC leaves it
	} {
		t.Setenv("GOMEMLIMIT", tc.gomemlimit)
		t.Setenv("GOGC", tc.gogc)
		debug.SetMemoryLimit(tc.limit)
		debug.SetGCPercent(100)
		tuneGC(quiet)
		if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
			t.Errorf("GOMEMLIMIT=%q GOGC=%q: memory limit %d, want %d", tc.gomemlimit, tc.gogc, got, tc.wantLimit)
		}
		if got := debug.SetGCPercent(100); got != tc.wantGC {
			t.Errorf("GOMEMLIMIT=%q GOGC=%q: GC percent %d, want %d", tc.gomemlimit, tc.gogc, got, tc.wantGC)
		}
	}
}
