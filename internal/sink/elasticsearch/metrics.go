package elasticsearch

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a bulk request (label "outcome").
const (
	outcomeSuccess  = "success"  // every operation applied or stale
	outcomePartial  = "partial"  // some operations failed (retried or dead-lettered)
	outcomeError    = "error"    // the request failed as a whole and is retried
	outcomeRejected = "rejected" // too large or invalid as a whole: split
	outcomeCanceled = "canceled" // the caller gave up
)

// metrics of one sink; every series carries the constant label sink=<name>.
type metrics struct {
	requests *prometheus.CounterVec // outcome
	duration prometheus.Histogram
	retries  *prometheus.CounterVec // reason
	bytes    prometheus.Counter
	toast    *prometheus.CounterVec // outcome (toast.go)
}

func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	labels := prometheus.Labels{"sink": name}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "tidegate_sink_bulk_requests_total",
			Help:        "Bulk requests sent to Elasticsearch/OpenSearch, by outcome (success, partial, error, rejected, canceled).",
			ConstLabels: labels,
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "tidegate_sink_bulk_duration_seconds",
			Help:        "Duration of bulk requests to Elasticsearch/OpenSearch, including failed ones.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. ~41s
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "tidegate_sink_retries_total",
			Help:        "Retries of failed requests or bulk items, by reason (connection, timeout, status_429, status_5xx, auth, unexpected_status, bad_response, index_config, item).",
			ConstLabels: labels,
		}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "tidegate_sink_bulk_bytes_total",
			Help:        "Bytes of bulk request bodies sent to Elasticsearch/OpenSearch, retries included.",
			ConstLabels: labels,
		}),
		toast: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "tidegate_sink_toast_documents_total",
			Help:        "Events lacking unchanged TOAST columns that were to be written, by outcome (batch: filled in from an earlier event of the batch, index: filled in from the stored document, stale: the index holds a newer version, missing: dead-lettered).",
			ConstLabels: labels,
		}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	m.duration, err = register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	m.retries, err = register(reg, m.retries)
	if err != nil {
		return nil, err
	}
	m.bytes, err = register(reg, m.bytes)
	if err != nil {
		return nil, err
	}
	m.toast, err = register(reg, m.toast)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same name and labels (a sink re-created with the same name).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
