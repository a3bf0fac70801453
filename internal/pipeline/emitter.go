package pipeline

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
)

// busEmitter publishes a source's events to the pipeline stream.
type busEmitter struct {
	pipeline string
	pub      *bus.Publisher
	metrics  *metrics.Metrics
}

var marshal = proto.MarshalOptions{Deterministic: true}

func (e *busEmitter) Emit(ctx context.Context, ev *event.Event) error {
	data, err := marshal.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", ev.GetId(), err)
	}
	o := ev.GetOrigin()
	// Snapshot rows carry no de-duplication id: the bus would remember one
	// entry per row for the whole window (hundreds of MB for a large
	// snapshot), and a row read twice after a crash is harmless.
	id := ev.GetId()
	if ev.GetOp() == event.Op_OP_SNAPSHOT {
		id = ""
	}
	if err := e.pub.Publish(ctx, bus.Subject(e.pipeline, o.GetSchema(), o.GetTable()), id, data); err != nil {
		return err
	}
	e.metrics.Events.WithLabelValues(e.pipeline, "source", o.GetSchema()+"."+o.GetTable(), event.OpName(ev.GetOp())).Inc()
	return nil
}

func (e *busEmitter) Mark(ctx context.Context, position any) error { return e.pub.Mark(ctx, position) }

func (e *busEmitter) Flush(ctx context.Context) error { return e.pub.Flush(ctx) }
