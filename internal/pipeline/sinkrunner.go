package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/sink"
)

// sinkRunner feeds one sink from its durable consumer: it takes what is
// available (up to a batch), writes it, sends permanent failures to the
// DLQ, and only then acknowledges.
type sinkRunner struct {
	pipeline string
	name     string
	writer   sink.Writer
	bus      *bus.Bus
	cons     jetstream.Consumer
	batchMax int
	ackWait  time.Duration
	log      *slog.Logger
	metrics  *metrics.Metrics

	// dead counts dead letters since the last log line (logs are rate limited).
	dead        int
	lastDeadLog time.Time
}

func (r *sinkRunner) run(ctx context.Context) error {
	msgs := make(chan jetstream.Msg, r.batchMax)
	cc, err := r.cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(r.batchMax), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			r.log.Debug("consumer", "error", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("consuming for sink %s: %w", r.name, err)
	}
	defer cc.Stop()

	batch := make([]jetstream.Msg, 0, r.batchMax)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < r.batchMax {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if err := r.process(ctx, batch); err != nil {
			return err
		}
	}
}

// process writes one batch. It returns an error only when the batch could
// not be settled (ctx done, DLQ unwritable): nothing is acknowledged then.
func (r *sinkRunner) process(ctx context.Context, msgs []jetstream.Msg) error {
	events := make([]*event.Event, 0, len(msgs))
	idx := make([]int, 0, len(msgs)) // events[i] came from msgs[idx[i]]
	for i, m := range msgs {
		ev := &event.Event{}
		if err := proto.Unmarshal(m.Data(), ev); err != nil {
			if err := r.deadLetter(ctx, m, ev, fmt.Sprintf("undecodable message: %v", err)); err != nil {
				return err
			}
			continue
		}
		events = append(events, ev)
		idx = append(idx, i)
	}

	stop := r.keepAlive(msgs)
	start := time.Now()
	results, err := r.writer.Write(ctx, events)
	stop()
	if err != nil {
		return fmt.Errorf("sink %s: %w", r.name, err)
	}
	r.metrics.SinkWrite.WithLabelValues(r.pipeline, r.name).Observe(time.Since(start).Seconds())
	now := time.Now()
	e2e := r.metrics.EndToEnd.WithLabelValues(r.pipeline, r.name)
	for i, ev := range events {
		table := ev.GetOrigin().GetSchema() + "." + ev.GetOrigin().GetTable()
		if i < len(results) && results[i] != nil {
			if err := r.deadLetter(ctx, msgs[idx[i]], ev, results[i].Error()); err != nil {
				return err
			}
			continue
		}
		r.metrics.Events.WithLabelValues(r.pipeline, "sink:"+r.name, table, event.OpName(ev.GetOp())).Inc()
		if ct := ev.GetCommitTimeUs(); ct > 0 {
			e2e.Observe(now.Sub(time.UnixMicro(ct)).Seconds())
		}
	}
	for _, m := range msgs {
		if err := m.Ack(); err != nil && ctx.Err() == nil {
			// The message will be redelivered and re-applied: idempotent.
			r.log.Warn("acknowledging a message failed; it will be delivered again", "sink", r.name, "error", err)
		}
	}
	return nil
}

func (r *sinkRunner) deadLetter(ctx context.Context, m jetstream.Msg, ev *event.Event, reason string) error {
	attempts := 1
	if md, err := m.Metadata(); err == nil {
		attempts = int(md.NumDelivered)
	}
	err := r.bus.PublishDLQ(ctx, bus.DeadLetter{
		Pipeline: r.pipeline, Sink: r.name, EventID: ev.GetId(), Subject: m.Subject(),
		Error: reason, Attempts: attempts, Data: m.Data(),
	})
	if err != nil {
		return err
	}
	table := ev.GetOrigin().GetSchema() + "." + ev.GetOrigin().GetTable()
	r.metrics.Events.WithLabelValues(r.pipeline, "dlq:"+r.name, table, event.OpName(ev.GetOp())).Inc()
	r.dead++
	if r.dead == 1 || time.Since(r.lastDeadLog) > 10*time.Second {
		r.log.Warn("events sent to the dead-letter queue (inspect with the tidegate_events_total{stage=\"dlq:...\"} metric and the DLQ stream)",
			"sink", r.name, "since_last_report", r.dead, "last_event", ev.GetId(), "table", table, "error", reason)
		r.lastDeadLog = time.Now()
		r.dead = 0
	}
	return nil
}

// keepAlive tells the bus the batch is still being worked on while a write
// retries for longer than the ack wait, so it is not redelivered meanwhile.
func (r *sinkRunner) keepAlive(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
