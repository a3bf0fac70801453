package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// processTTL is how long the process metrics of one scrape are served
// again: the process collector reads /proc/stat and several files of
// /proc/self at every scrape, ~0.4 ms of CPU time. A scraper polling every
// 20 ms (make bench, a dashboard) made it 6 % of tidegate's CPU time
// during a snapshot; CPU seconds and resident memory a second old are
// fresh enough for any scrape interval.
const processTTL = time.Second

// cachedCollector serves the metrics its collector gathered last for ttl
// before gathering them again. Only for collectors whose metrics are
// constant once made (prometheus.MustNewConstMetric), as the process
// collector's are.
type cachedCollector struct {
	prometheus.Collector
	ttl time.Duration
	now func() time.Time

	mu  sync.Mutex
	at  time.Time
	got []prometheus.Metric
}

func newCachedCollector(c prometheus.Collector, ttl time.Duration) *cachedCollector {
	return &cachedCollector{Collector: c, ttl: ttl, now: time.Now}
}

func (c *cachedCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if now := c.now(); c.got == nil || now.Sub(c.at) >= c.ttl {
		fresh := make(chan prometheus.Metric)
		go func() { // owned: ends when the collector returns
			c.Collector.Collect(fresh)
			close(fresh)
		}()
		var got []prometheus.Metric // new: earlier scrapes may still read the old
		for m := range fresh {
			got = append(got, m)
		}
		c.got, c.at = got, now
	}
	got := c.got
	c.mu.Unlock()
	for _, m := range got {
		ch <- m
	}
}
