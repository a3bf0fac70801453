package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingCollector reports how often it was collected.
type countingCollector struct {
	desc *prometheus.Desc
	n    int
}

func (c *countingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *countingCollector) Collect(ch chan<- prometheus.Metric) {
	c.n++
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.n))
}

// Scrapes within the TTL get the metrics of the last collection; the next
// scrape after it collects again.
func TestCachedCollector(t *testing.T) {
	inner := &countingCollector{desc: prometheus.NewDesc("collections_total", "Collections.", nil, nil)}
	c := newCachedCollector(inner, time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	scrape := func(want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(r, strings.NewReader("# HELP collections_total Collections.\n# TYPE collections_total counter\ncollections_total "+want+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	scrape("1")
	now = now.Add(999 * time.Millisecond)
	scrape("1")
	scrape("1")
	if inner.n != 1 {
		t.Fatalf("collected %d times within the TTL, want once", inner.n)
	}
	now = now.Add(time.Millisecond)
	scrape("2")
	now = now.Add(5 * time.Second)
	scrape("3")
}

// The registry's process metrics are served (through the cache).
func TestProcessMetricsServed(t *testing.T) {
	m := New()
	n, err := testutil.GatherAndCount(m.Registry, "process_cpu_seconds_total", "process_resident_memory_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d process metrics gathered, want 2", n)
	}
}
