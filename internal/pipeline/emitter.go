package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
)

// Batch limits of one bus message. A message costs the bus about as much
// as a few hundred small events do to encode, so events of a table travel
// together; the limits keep a message well under the stream's maximum
// message size and bound what a consumer holds.
const (
	batchMaxEvents = 512
	batchMaxBytes  = 512 << 10
)

// busEmitter publishes a source's events to the pipeline stream, in
// batches: consecutive events of one table share a message (an
// event.Batch). A batch is published when it is full and at every Mark or
// Flush, so a position is reported durable only after every event emitted
// before it is stored. Emit, Mark and Flush may be called concurrently
// (snapshot workers); the events of one table keep their Emit order.
type busEmitter struct {
	pipeline string
	pub      *bus.Publisher
	metrics  *metrics.Metrics

	mu   sync.Mutex
	bufs map[tableID]*batchBuf
}

type tableID struct{ schema, table string }

// batchBuf is an event.Batch being built: its encoding is the shared
// fields (field 2) followed by field-1 length-delimited events, which leave
// the shared fields out.
type batchBuf struct {
	subject string
	table   string
	id      string // de-duplication id of the message: first event id + count
	data    []byte
	ops     [8]int // events per event.Op, counted when published
	n       int
	shared  shared
}

// shared are the fields the events of a batch have in common (those of its
// first event); an event that differs starts a new batch. Within one
// transaction or snapshot chunk of a table they are all the same, and they
// are about half of a small row's encoding.
type shared struct {
	origin   *event.Origin
	schema   *event.SchemaRef
	version  uint64
	position string
	commit   int64
	txID     string
}

func sharedOf(ev *event.Event) shared {
	return shared{ev.Origin, ev.Schema, ev.Version, ev.Position, ev.CommitTimeUs, ev.TxId}
}

func (a shared) equal(b shared) bool {
	return a.version == b.version && a.position == b.position && a.commit == b.commit && a.txID == b.txID &&
		(a.origin == b.origin || proto.Equal(a.origin, b.origin)) &&
		(a.schema == b.schema || proto.Equal(a.schema, b.schema))
}

// appendShared appends the Batch.shared field.
func appendShared(b []byte, sh shared) ([]byte, error) {
	ev := event.Event{Origin: sh.origin, Schema: sh.schema, Version: sh.version, Position: sh.position, CommitTimeUs: sh.commit, TxId: sh.txID}
	size := ev.SizeVT()
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	start := len(b)
	b = slices.Grow(b, size)[:start+size]
	if _, err := ev.MarshalToSizedBufferVT(b[start:]); err != nil {
		return nil, fmt.Errorf("encoding the shared fields of a batch: %w", err)
	}
	return b, nil
}

func (e *busEmitter) Emit(ctx context.Context, ev *event.Event) error {
	size := ev.SizeVT()
	o := ev.GetOrigin()
	tid := tableID{o.GetSchema(), o.GetTable()}
	if size > bus.MaxMessageBytes-(64<<10) {
		// Skipping it would lose a change silently; the source stops here
		// and retries, saying why.
		return fmt.Errorf("event %s of table %s.%s (op %s) is %d bytes, more than a bus message can hold (%d bytes): "+
			"tidegate cannot carry it and does not skip it (see \"Not guaranteed\" in docs/guarantees.md)",
			ev.GetId(), o.GetSchema(), o.GetTable(), event.OpName(ev.GetOp()), size, bus.MaxMessageBytes-(64<<10))
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bufs == nil {
		e.bufs = map[tableID]*batchBuf{}
	}
	b := e.bufs[tid]
	if b == nil {
		b = &batchBuf{subject: bus.Subject(e.pipeline, tid.schema, tid.table), table: tid.schema + "." + tid.table}
		e.bufs[tid] = b
	}
	sh := sharedOf(ev)
	if b.n > 0 && (len(b.data)+size > batchMaxBytes || !b.shared.equal(sh)) {
		if err := e.publish(ctx, b); err != nil {
			return err
		}
	}
	if b.n == 0 {
		// Snapshot batches fill up: their buffer is allocated once at full
		// size. Streamed ones are often a few events (one transaction).
		capacity := max(4<<10, 2*size)
		if ev.GetOp() == event.Op_OP_SNAPSHOT {
			capacity = batchMaxBytes + 64<<10
		}
		b.data = make([]byte, 0, max(capacity, size+16))
		// Snapshot rows carry no de-duplication id: the bus would remember
		// one entry per message for the whole window, and a row read twice
		// after a crash is harmless. Streamed batches do, so a batch
		// published again after a source restart is stored once.
		b.id = ""
		if ev.GetOp() != event.Op_OP_SNAPSHOT {
			b.id = ev.GetId()
		}
		b.shared = sh
		var err error
		if b.data, err = appendShared(b.data, sh); err != nil {
			return err
		}
	}
	// The event without the shared fields (restored before returning: the
	// caller owns it).
	ev.Origin, ev.Schema, ev.Version, ev.Position, ev.CommitTimeUs, ev.TxId = nil, nil, 0, "", 0, ""
	size = ev.SizeVT()
	b.data = protowire.AppendTag(b.data, 1, protowire.BytesType)
	b.data = protowire.AppendVarint(b.data, uint64(size))
	start := len(b.data)
	b.data = slices.Grow(b.data, size)[:start+size]
	_, err := ev.MarshalToSizedBufferVT(b.data[start:])
	ev.Origin, ev.Schema, ev.Version, ev.Position, ev.CommitTimeUs, ev.TxId = sh.origin, sh.schema, sh.version, sh.position, sh.commit, sh.txID
	if err != nil {
		b.data = b.data[:start-protowire.SizeTag(1)-protowire.SizeVarint(uint64(size))]
		return fmt.Errorf("encoding event %s: %w", ev.GetId(), err)
	}
	if int(ev.GetOp()) < len(b.ops) {
		b.ops[ev.GetOp()]++
	}
	b.n++
	if b.n >= batchMaxEvents || len(b.data) >= batchMaxBytes {
		return e.publish(ctx, b)
	}
	return nil
}

// publish sends a buffer and empties it; called with e.mu held, so the
// messages of a subject are published in order.
func (e *busEmitter) publish(ctx context.Context, b *batchBuf) error {
	if b.n == 0 {
		return nil
	}
	id := b.id
	if id != "" {
		id = fmt.Sprintf("%s+%d", id, b.n)
	}
	data := b.data
	if cap(data) > 2*len(data)+4<<10 {
		// The bus holds the message until it is stored, and in-flight
		// bytes are counted by length: keep capacity close to it.
		data = slices.Clone(data)
	}
	if err := e.pub.PublishBatch(ctx, b.subject, id, data, b.n); err != nil {
		return err
	}
	for op, n := range b.ops {
		if n > 0 {
			e.metrics.Events.WithLabelValues(e.pipeline, "source", b.table, event.OpName(event.Op(op))).Add(float64(n))
		}
	}
	b.data, b.n, b.ops = nil, 0, [8]int{}
	return nil
}

// flushAll publishes every buffered batch; called with e.mu held.
func (e *busEmitter) flushAll(ctx context.Context) error {
	for _, b := range e.bufs {
		if err := e.publish(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (e *busEmitter) Mark(ctx context.Context, position any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.flushAll(ctx); err != nil {
		return err
	}
	return e.pub.Mark(ctx, position)
}

func (e *busEmitter) Flush(ctx context.Context) error {
	e.mu.Lock()
	err := e.flushAll(ctx)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.pub.Flush(ctx)
}
