package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// lagAlertEvery is how often a slot above max_slot_lag_bytes is logged again.
const lagAlertEvery = time.Minute

// watchLag reports the WAL the slot retains (tidegate_source_slot_lag_bytes)
// every status interval for as long as the source runs — during snapshots
// too, when WAL piles up most — and raises the max_slot_lag alert. It uses
// its own connection and returns when ctx is done.
func (s *Source) watchLag(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	gauge := s.opts.Metrics.SlotLag.WithLabelValues(s.opts.Pipeline, s.cfg.Slot)
	exceeded := s.opts.Metrics.SlotLagExceeded.WithLabelValues(s.opts.Pipeline, s.cfg.Slot)
	var lastAlert time.Time
	t := time.NewTicker(s.cfg.StatusInterval)
	defer t.Stop()
	for {
		if conn == nil || conn.IsClosed() {
			c, err := s.connect(ctx)
			if err == nil {
				conn = c
			}
		}
		if conn != nil {
			var lag *int64
			err := conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&lag)
			if err == nil && lag != nil {
				gauge.Set(float64(*lag))
				over := s.cfg.MaxSlotLagBytes > 0 && *lag > s.cfg.MaxSlotLagBytes
				switch {
				case over:
					exceeded.Set(1)
					if time.Since(lastAlert) >= lagAlertEvery {
						lastAlert = time.Now()
						s.log.Error("replication slot retains more WAL than max_slot_lag_bytes: PostgreSQL keeps this WAL on disk until tidegate confirms it; check the sinks (bus full?), a long snapshot, or tidegate's throughput",
							"slot", s.cfg.Slot, "lag_bytes", *lag, "max_slot_lag_bytes", s.cfg.MaxSlotLagBytes)
					}
				default:
					if !lastAlert.IsZero() {
						s.log.Info("replication slot lag is back under max_slot_lag_bytes", "slot", s.cfg.Slot, "lag_bytes", *lag)
						lastAlert = time.Time{}
					}
					exceeded.Set(0)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
