// Package metrics holds tidegate's Prometheus collectors. Names follow
// tidegate_<noun>_<unit>. One Metrics value is created per process and
// passed to the components that record into it.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the process-wide collectors.
type Metrics struct {
	Registry *prometheus.Registry

	// Events counts events per pipeline, stage (source, sink, dlq, filtered),
	// table and op.
	Events *prometheus.CounterVec
	// SinkWrite observes the duration of one sink batch write.
	SinkWrite *prometheus.HistogramVec
	// EndToEnd observes the delay from source commit to sink acknowledgement.
	EndToEnd *prometheus.HistogramVec
	// SourcePublish observes the delay from source commit to the source
	// publishing the transaction's batch to the bus, once per batch.
	SourcePublish *prometheus.HistogramVec
	// SourceServer observes the delay from source commit to the source
	// server sending the transaction (PostgreSQL: its WAL flush and logical
	// decoding, before tidegate has anything to do), once per transaction.
	SourceServer *prometheus.HistogramVec
	// SinkDequeue observes the delay from source commit to a sink starting
	// to write the batch holding it (bus and queueing included).
	SinkDequeue *prometheus.HistogramVec
	// BusMessages counts the messages a source published to the bus.
	BusMessages *prometheus.CounterVec
	// BusPending is the number of messages a sink has yet to acknowledge.
	BusPending *prometheus.GaugeVec
	// DLQDepth is the number of events held in a sink's dead-letter queue.
	DLQDepth *prometheus.GaugeVec
	// SlotLag is the WAL retained by the replication slot, in bytes.
	SlotLag *prometheus.GaugeVec
	// ConfirmedLSN is the position last confirmed to the source.
	ConfirmedLSN *prometheus.GaugeVec
	// SnapshotRows counts rows read by snapshots.
	SnapshotRows *prometheus.CounterVec
	// SnapshotProgress is the estimated fraction (0..1) of the running snapshot done.
	SnapshotProgress *prometheus.GaugeVec
	// SlotLagExceeded is 1 while the slot retains more WAL than max_slot_lag.
	SlotLagExceeded *prometheus.GaugeVec
	// PositionLost counts starts that found the stream position gone.
	PositionLost *prometheus.CounterVec
}

// New creates and registers the collectors, plus Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), newCachedCollector(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), processTTL))
	// Finer around 100 ms, the usual latency objective: a quantile between
	// two buckets is interpolated, so 100 ms and 250 ms as neighbours made
	// any p99 in between a guess.
	latency := []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .125, .15, .2, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		Registry: r,
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidegate_events_total", Help: "Events per pipeline, stage (source, sink, dlq, filtered), table and op.",
		}, []string{"pipeline", "stage", "table", "op"}),
		SinkWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidegate_sink_write_seconds", Help: "Duration of one sink batch write, retries included.", Buckets: latency,
		}, []string{"pipeline", "sink"}),
		EndToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidegate_end_to_end_latency_seconds", Help: "Delay from source commit to sink acknowledgement.", Buckets: latency,
		}, []string{"pipeline", "sink"}),
		SourcePublish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidegate_source_publish_latency_seconds", Help: "Delay from source commit to publishing the batch to the bus (streamed changes).", Buckets: latency,
		}, []string{"pipeline"}),
		SourceServer: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidegate_source_server_delay_seconds", Help: "Delay from source commit to the source server sending the transaction (PostgreSQL: WAL flush and logical decoding; streamed changes).", Buckets: latency,
		}, []string{"pipeline"}),
		SinkDequeue: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidegate_sink_dequeue_latency_seconds", Help: "Delay from source commit to the sink starting to write the batch holding the change.", Buckets: latency,
		}, []string{"pipeline", "sink"}),
		BusMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidegate_bus_messages_total", Help: "Messages the source published to the bus (each a batch of events: divide tidegate_events_total{stage=\"source\"} by it for events per message).",
		}, []string{"pipeline"}),
		BusPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidegate_bus_pending_messages", Help: "Messages a sink has not yet acknowledged.",
		}, []string{"pipeline", "sink"}),
		DLQDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidegate_dlq_messages", Help: "Events held in a sink's dead-letter queue.",
		}, []string{"pipeline", "sink"}),
		SlotLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidegate_source_slot_lag_bytes", Help: "WAL retained by the replication slot (current WAL position minus restart_lsn).",
		}, []string{"pipeline", "slot"}),
		ConfirmedLSN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidegate_source_confirmed_lsn", Help: "Last position confirmed to the source (durable in the bus).",
		}, []string{"pipeline"}),
		SnapshotRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidegate_snapshot_rows_total", Help: "Rows read by snapshots.",
		}, []string{"pipeline", "table"}),
		SnapshotProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidegate_snapshot_progress_ratio", Help: "Estimated fraction of the running snapshot done (0..1).",
		}, []string{"pipeline"}),
		SlotLagExceeded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidegate_source_slot_lag_exceeded", Help: "1 while the replication slot retains more WAL than the pipeline's max_slot_lag (alert on it).",
		}, []string{"pipeline", "slot"}),
		PositionLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidegate_source_position_lost_total", Help: "Starts that found the replication slot gone or invalidated (see on_position_lost).",
		}, []string{"pipeline"}),
	}
	r.MustRegister(m.Events, m.SinkWrite, m.EndToEnd, m.SourcePublish, m.SourceServer, m.SinkDequeue, m.BusMessages, m.BusPending, m.DLQDepth, m.SlotLag, m.ConfirmedLSN, m.SnapshotRows, m.SnapshotProgress,
		m.SlotLagExceeded, m.PositionLost)
	return m
}
