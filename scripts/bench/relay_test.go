package main

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"
)

// The relay's queue hands out at most bulkMaxActions rows per request and
// cuts only between rows (an action line and its document).
func TestRelayQueueTakeSplitsAtRows(t *testing.T) {
	q := &relayQueue{wake: make(chan struct{}, 1)}
	n := bulkMaxActions + 7
	var lines []byte
	commits := make([]time.Time, n)
	for i := range n {
		lines = fmt.Appendf(lines, "{\"index\":{\"_id\":\"%d\"}}\n{\"n\":%d}\n", i, i)
		commits[i] = time.UnixMicro(int64(i))
	}
	q.push(lines, commits)

	body, got := q.take()
	if len(got) != bulkMaxActions || bytes.Count(body, []byte("\n")) != 2*bulkMaxActions {
		t.Fatalf("first take: %d commits, %d lines; want %d and %d", len(got), bytes.Count(body, []byte("\n")), bulkMaxActions, 2*bulkMaxActions)
	}
	if !bytes.HasSuffix(body, fmt.Appendf(nil, "{\"n\":%d}\n", bulkMaxActions-1)) {
		t.Fatalf("first take does not end with row %d: ...%s", bulkMaxActions-1, body[len(body)-40:])
	}
	body, got = q.take()
	if len(got) != 7 || !bytes.HasPrefix(body, fmt.Appendf(nil, "{\"index\":{\"_id\":\"%d\"}}\n", bulkMaxActions)) {
		t.Fatalf("second take: %d commits, body %.60s", len(got), body)
	}
	if got[0] != time.UnixMicro(int64(bulkMaxActions)) {
		t.Fatalf("second take starts with the commit of row %d, want row %d", got[0].UnixMicro(), bulkMaxActions)
	}
	if body, got = q.take(); body != nil || got != nil {
		t.Fatalf("empty queue gave %d commits", len(got))
	}
}

// Relay latencies, counted into tidegate's buckets, read back through
// quantiles as tidegate's histogram is.
func TestBucketedReadsLikeTheHistogram(t *testing.T) {
	bounds := []float64{0.01, 0.05, 0.1, 0.5}
	var ds []time.Duration
	for i := range 100 {
		ds = append(ds, time.Duration(i+1)*time.Millisecond) // 1..100 ms
	}
	h := bucketed(ds, bounds)
	if h[0.01] != 10 || h[0.05] != 50 || h[0.1] != 100 || h[0.5] != 100 {
		t.Fatalf("cumulative counts %v", h)
	}
	q, count := quantiles(nil, h, 0.5, 0.99)
	if count != 100 || q[0] != 0.05 || q[1] < 0.09 || q[1] > 0.1 {
		t.Fatalf("quantiles %v of %v observations; want p50 0.05 and p99 in (0.09, 0.1]", q, count)
	}
}

// Exact quantiles are nearest ranks of the sorted durations.
func TestExactQuantileMs(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond) // 100..1 ms, unsorted
	}
	s := sorted(ds)
	for p, want := range map[float64]float64{0.5: 51, 0.99: 100, 1: 100, 0: 1} {
		if got := exactQuantileMs(s, p); got != want {
			t.Errorf("p%v = %v ms, want %v", p, got, want)
		}
	}
	if got := exactQuantileMs(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("quantile of nothing = %v, want NaN", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("sorted changed its input")
	}
}
