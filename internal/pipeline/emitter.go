package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

// Batch limits of one bus message. A message costs the bus about as much
// as a few hundred small events do to encode, so events of a table travel
// together; the limits keep a message well under the stream's maximum
// message size and bound what a consumer holds.
const (
	batchMaxEvents = 512
	batchMaxBytes  = 512 << 10
	// maxEventBytes bounds one event with its batch's header.
	maxEventBytes = bus.MaxMessageBytes - 64<<10
)

// busEmitter publishes a source's events to the pipeline stream, in
// batches: consecutive events of one table share a message (an
// event.Batch). A batch is published when it is full and at every Mark or
// Flush, so a position is reported durable only after every event emitted
// before it is stored. Emit, Mark and Flush may be called concurrently
// (snapshot workers); the events of one table keep their Emit order.
//
// Transactions of one table that commit within the publish linger, or while
// the bus is storing the message before them, share a message too (see
// hold): each message costs a dozen hand-offs between goroutines in
// tidegate and the bus, more than a small transaction's events cost to
// encode.
type busEmitter struct {
	pipeline string
	pub      *bus.Publisher
	metrics  *metrics.Metrics

	mu   sync.Mutex
	bufs map[tableID]*batchBuf
	last *batchBuf // the one used last, of bufs
	// order holds the buffers that have events, in the order of their
	// first one: a commit publishes them in that order, so the tables of a
	// transaction reach the bus in the order it first changed them.
	order []*batchBuf

	// held is a batch of committed transactions kept back until the bus has
	// stored holdUntil messages (0: none to wait for) and the linger has
	// passed since heldAt, and marks the positions marked since; they are
	// passed on once it is published. Only the emitter of a source run
	// holds (newBusEmitter): its flusher publishes the batch when both are
	// done, woken by stored and by lingerEnd.
	held      *batchBuf
	marks     []any
	holdUntil atomic.Uint64
	linger    time.Duration
	heldAt    time.Time
	lingerEnd *time.Timer
	wake      chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
	log       *slog.Logger
	err       error // the flusher's, returned by the next call
}

// maxHeldMarks bounds the positions kept with a held batch (transactions
// without events of their own add marks, not events).
const maxHeldMarks = batchMaxEvents

// newBusEmitter returns the emitter of a source run and starts its
// flusher; Close stops it. Pass its stored method as the publisher's
// OnStored. linger is the pipeline's publish_linger (0: none).
func newBusEmitter(pipeline string, pub *bus.Publisher, linger time.Duration, m *metrics.Metrics, log *slog.Logger) *busEmitter {
	ctx, stop := context.WithCancel(context.Background())
	e := &busEmitter{pipeline: pipeline, pub: pub, metrics: m, log: log, linger: linger,
		wake: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	e.lingerEnd = time.AfterFunc(time.Hour, e.wakeFlusher)
	e.lingerEnd.Stop()
	go e.flusher(ctx)
	return e
}

// Close stops the flusher; what it holds is dropped (never marked, so
// the next run reads it again).
func (e *busEmitter) Close() {
	if e.stop != nil {
		e.lingerEnd.Stop()
		e.stop()
		<-e.done
	}
}

// stored is the publisher's OnStored: it wakes the flusher once the bus
// has stored what was published before the held batch.
func (e *busEmitter) stored(n uint64) {
	if t := e.holdUntil.Load(); t != 0 && n >= t {
		e.wakeFlusher()
	}
}

func (e *busEmitter) wakeFlusher() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *busEmitter) flusher(ctx context.Context) {
	defer close(e.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		}
		e.mu.Lock()
		if h := e.held; h != nil && e.err == nil && e.due() {
			if err := e.publish(ctx, h); err != nil && ctx.Err() == nil {
				// Not marked, so not lost: the source stops at its next
				// call and reads these transactions again.
				e.err = fmt.Errorf("publishing transactions held for the bus: %w", err)
				e.log.Error("cannot publish to the bus; the source restarts from its last durable position", "pipeline", e.pipeline, "error", err)
			}
		}
		e.mu.Unlock()
	}
}

// hold keeps the transaction just committed (position) back, with the
// batch it is in, for the linger and while the bus stores messages
// published before it: the next transactions of the table join the batch
// meanwhile, and the flusher publishes it when both are over (the linger
// or one round trip to the bus, whichever is longer). It holds only a
// streamed batch of one table that is all the emitter buffers, so messages
// keep the order of transactions.
func (e *busEmitter) hold(position any) bool {
	if e.wake == nil || len(e.order) != 1 || len(e.marks) >= maxHeldMarks {
		return false
	}
	b := e.order[0]
	if b.id == "" || (e.held != nil && e.held != b) {
		return false
	}
	if e.held == nil {
		target := e.pub.Published()
		// The target first, then the check: either the check sees the
		// bus done, or stored sees the target and wakes the flusher.
		e.holdUntil.Store(target)
		if e.pub.Stored() >= target {
			e.holdUntil.Store(0)
			if e.linger <= 0 {
				return false // nothing in flight: publish now
			}
		}
		e.held = b
		if e.linger > 0 {
			e.heldAt = time.Now()
			e.lingerEnd.Reset(e.linger)
		}
	}
	e.marks = append(e.marks, position)
	return true
}

// due reports whether the held batch may be published; called with e.mu
// held. When only the linger is left, it makes sure the flusher is woken
// at its end.
func (e *busEmitter) due() bool {
	if t := e.holdUntil.Load(); t != 0 && e.pub.Stored() < t {
		return false // stored wakes the flusher
	}
	if left := e.linger - time.Since(e.heldAt); e.linger > 0 && left > 0 {
		e.lingerEnd.Reset(left)
		return false
	}
	return true
}

type tableID struct{ schema, table string }

// batchBuf is an event.Batch being built: its encoding is the shared
// fields (field 2) followed by field-1 length-delimited events, which leave
// the shared fields out.
type batchBuf struct {
	tid     tableID
	subject string
	table   string
	id      string // de-duplication id of the message: first event id + count
	data    []byte
	ops     [8]int // events per event.Op, counted when published
	n       int
	shared  shared
	commits []int64 // commit time of each transaction in the batch
	// columns and keyPos are the batch's row template (Batch.columns and
	// key_columns); header is the encoded size of the batch before its
	// events.
	columns []string
	keyPos  []uint32
	header  int
	// fullLen is the size of the table's last batch that filled up: the
	// next snapshot batch gets a buffer with room for it.
	fullLen int

	// The batch's metrics, looked up once: a lookup hashes every label,
	// and done per message it was 2 % of tidegate's CPU time at 5,000
	// transactions/s (make bench profile).
	messages  prometheus.Counter
	published prometheus.Observer
	events    [8]prometheus.Counter // by event.Op, on first use
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

// Lane returns an emitter with batches of its own on the same publisher
// (postgres.Laner): snapshot readers encode in parallel instead of in turn
// under one lock.
func (e *busEmitter) Lane() postgres.Emitter {
	return &busEmitter{pipeline: e.pipeline, pub: e.pub, metrics: e.metrics}
}

func (e *busEmitter) Emit(ctx context.Context, ev *event.Event) error {
	e.mu.Lock()
	err := e.err
	if err == nil {
		err = e.emit(ctx, ev)
	}
	e.mu.Unlock()
	return err
}

// buffer returns the batch of ev's table. (The last one is kept at hand:
// consecutive events are mostly of one table.)
func (e *busEmitter) buffer(ev *event.Event) *batchBuf {
	o := ev.GetOrigin()
	if b := e.last; b != nil && b.tid.schema == o.GetSchema() && b.tid.table == o.GetTable() {
		return b
	}
	tid := tableID{o.GetSchema(), o.GetTable()}
	if e.bufs == nil {
		e.bufs = map[tableID]*batchBuf{}
	}
	b := e.bufs[tid]
	if b == nil {
		b = &batchBuf{tid: tid, subject: bus.Subject(e.pipeline, tid.schema, tid.table), table: tid.schema + "." + tid.table,
			messages:  e.metrics.BusMessages.WithLabelValues(e.pipeline),
			published: e.metrics.SourcePublish.WithLabelValues(e.pipeline)}
		e.bufs[tid] = b
	}
	e.last = b
	return b
}

// emit is Emit with e.mu held. (No defer: with this many returns Go would
// not open-code it, and the slow path showed in snapshot profiles.)
func (e *busEmitter) emit(ctx context.Context, ev *event.Event) error {
	b := e.buffer(ev)
	if h := e.held; h != nil && h != b {
		// Another table: the held transactions go first.
		if err := e.publish(ctx, h); err != nil {
			return err
		}
	}
	sh := sharedOf(ev)
	own := false // a later transaction's event in a held batch
	if b.n > 0 && !b.shared.equal(sh) {
		if own = b == e.held && b.joins(ev, sh); !own {
			if err := e.publish(ctx, b); err != nil {
				return err
			}
		}
	}
	if b.n == 0 {
		b.start(ev, sh)
	}
	// The event without what the batch carries for it.
	o := b.omit(ev)
	o.OwnCommit = own
	at := len(b.data)
	b.data = event.AppendDelimitedOmitting(protowire.AppendTag(b.data, 1, protowire.BytesType), ev, o)
	if b.n > 0 && len(b.data)+16 > batchMaxBytes {
		// Full: this event starts the next batch.
		b.data = b.data[:at]
		if err := e.publish(ctx, b); err != nil {
			return err
		}
		b.start(ev, sh)
		o = b.omit(ev)
		at = len(b.data)
		b.data = event.AppendDelimitedOmitting(protowire.AppendTag(b.data, 1, protowire.BytesType), ev, o)
	}
	if size := len(b.data) - at; b.header+size > maxEventBytes {
		b.data = b.data[:at]
		// Skipping it would lose a change silently; the source stops here
		// and retries, saying why.
		return fmt.Errorf("event %s of table %s (op %s) is %d bytes, more than a bus message can hold (%d bytes): "+
			"tidegate cannot carry it and does not skip it (see \"Not guaranteed\" in docs/guarantees.md)",
			ev.ID(), b.table, event.OpName(ev.GetOp()), b.header+size, maxEventBytes)
	}
	if int(ev.GetOp()) < len(b.ops) {
		b.ops[ev.GetOp()]++
	}
	if c := b.commits; c[len(c)-1] != sh.commit {
		b.commits = append(c, sh.commit) // a later transaction's first event
	}
	b.n++
	if b.n == 1 {
		e.order = append(e.order, b)
	}
	if b.n >= batchMaxEvents || len(b.data) >= batchMaxBytes {
		b.fullLen = len(b.data)
		return e.publish(ctx, b)
	}
	return nil
}

// start begins a batch with ev as its first event: the shared fields, and
// the column template of ev's after row (Batch.columns, key_columns).
func (b *batchBuf) start(ev *event.Event, sh shared) {
	// A streamed batch is often a few events (one transaction); snapshot
	// batches fill up, to about the size of the table's last full one.
	n := 2 * ev.SizeVT()
	if ev.GetOp() == event.Op_OP_SNAPSHOT {
		n = b.fullHint()
	}
	b.data = batchBuffer(n)
	// Snapshot rows carry no de-duplication id: the bus would remember
	// one entry per message for the whole window, and a row read twice
	// after a crash is harmless. Streamed batches do, so a batch
	// published again after a source restart is stored once.
	b.id = ""
	if ev.GetOp() != event.Op_OP_SNAPSHOT {
		b.id = ev.GetId()
	}
	b.shared = sh
	b.commits = append(b.commits[:0], sh.commit)
	shared := event.Event{Origin: sh.origin, Schema: sh.schema, Version: sh.version, Position: sh.position, CommitTimeUs: sh.commit, TxId: sh.txID}
	b.data = event.AppendDelimited(protowire.AppendTag(b.data, 2, protowire.BytesType), &shared)
	b.columns, b.keyPos = b.columns[:0], b.keyPos[:0]
	after := ev.GetAfter().GetColumns()
	for _, c := range after {
		if c.GetName() == "" {
			b.columns = b.columns[:0]
			break
		}
		b.columns = append(b.columns, c.Name)
	}
	if len(b.columns) > 0 {
	key:
		for _, k := range ev.GetKey() {
			for i, c := range after {
				if c == k {
					b.keyPos = append(b.keyPos, uint32(i))
					continue key
				}
			}
			b.keyPos = b.keyPos[:0] // a key column not in the row
			break
		}
	}
	for _, name := range b.columns {
		b.data = protowire.AppendTag(b.data, 3, protowire.BytesType)
		b.data = protowire.AppendString(b.data, name)
	}
	if len(b.keyPos) > 0 {
		n := 0
		for _, p := range b.keyPos {
			n += protowire.SizeVarint(uint64(p))
		}
		b.data = protowire.AppendTag(b.data, 4, protowire.BytesType)
		b.data = protowire.AppendVarint(b.data, uint64(n))
		for _, p := range b.keyPos {
			b.data = protowire.AppendVarint(b.data, uint64(p))
		}
	}
	b.header = len(b.data)
}

// joins reports whether ev, a change of a later transaction than the
// batch's first, may join the batch with its own commit fields: a streamed
// change of the same table and schema with every commit field set
// (decoders fill unset ones from the batch's).
func (b *batchBuf) joins(ev *event.Event, sh shared) bool {
	return b.id != "" && ev.GetOp() != event.Op_OP_SNAPSHOT &&
		sh.version != 0 && sh.position != "" && sh.commit != 0 && sh.txID != "" &&
		(sh.origin == b.shared.origin || proto.Equal(sh.origin, b.shared.origin)) &&
		(sh.schema == b.shared.schema || proto.Equal(sh.schema, b.shared.schema))
}

// matches reports whether a row has exactly the batch's template columns.
func (b *batchBuf) matches(r *event.Row) bool {
	if r == nil || len(b.columns) == 0 || len(r.Columns) != len(b.columns) {
		return false
	}
	for i, c := range r.Columns {
		if c == nil || c.Name != b.columns[i] {
			return false
		}
	}
	return true
}

// omit says what the batch carries for ev: the shared fields, the names of
// template rows, and a key that is the template's key columns of the after
// row. (ev itself is not changed: the caller owns it.)
func (b *batchBuf) omit(ev *event.Event) event.Omit {
	o := event.Omit{Shared: true, AfterNames: b.matches(ev.After), BeforeNames: b.matches(ev.Before)}
	if o.AfterNames && len(b.keyPos) > 0 && len(ev.Key) == len(b.keyPos) {
		o.Key = true
		for i, p := range b.keyPos {
			o.Key = o.Key && ev.Key[i] == ev.After.Columns[p]
		}
	}
	return o
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
		// The bus holds the message until it is stored: keep capacity
		// close to the length (a batch cut short, a table's first).
		data = append(batchBuffer(len(data)), data...)
	}
	if err := e.pub.PublishBatch(ctx, b.subject, id, data, b.n); err != nil {
		return err
	}
	if &data[0] != &b.data[0] {
		recycleBatchBuffer(b.data) // published a copy
	}
	if i := slices.Index(e.order, b); i >= 0 {
		e.order = slices.Delete(e.order, i, i+1)
	}
	if b == e.held {
		e.held = nil
		e.holdUntil.Store(0)
		for _, pos := range e.marks {
			if err := e.pub.Mark(ctx, pos); err != nil {
				return err
			}
		}
		clear(e.marks)
		e.marks = e.marks[:0]
	}
	b.messages.Inc()
	now := time.Now()
	for _, ct := range b.commits {
		if ct > 0 {
			b.published.Observe(now.Sub(time.UnixMicro(ct)).Seconds())
		}
	}
	for op, n := range b.ops {
		if n > 0 {
			if b.events[op] == nil {
				b.events[op] = e.metrics.Events.WithLabelValues(e.pipeline, "source", b.table, event.OpName(event.Op(op)))
			}
			b.events[op].Add(float64(n))
		}
	}
	b.data, b.n, b.ops = nil, 0, [8]int{}
	return nil
}

// flushAll publishes every buffered batch, in the order of their first
// events; called with e.mu held.
func (e *busEmitter) flushAll(ctx context.Context) error {
	for len(e.order) > 0 {
		if err := e.publish(ctx, e.order[0]); err != nil {
			return err
		}
	}
	return nil
}

func (e *busEmitter) Mark(ctx context.Context, position any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	if err := e.pub.Err(); err != nil {
		return err // also while holding: the source restarts
	}
	if e.hold(position) {
		return nil
	}
	if err := e.flushAll(ctx); err != nil {
		return err
	}
	return e.pub.Mark(ctx, position)
}

func (e *busEmitter) Flush(ctx context.Context) error {
	e.mu.Lock()
	err := e.err
	if err == nil {
		err = e.flushAll(ctx)
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.pub.Flush(ctx)
}
