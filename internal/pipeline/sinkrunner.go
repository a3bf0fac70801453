package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"

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
	open     func(ctx context.Context) (sink.Writer, error)
	writer   sink.Writer
	// encoded is writer when it takes after rows encoded (their batches
	// are then decoded with DecodeKeepingAfter), else nil.
	encoded  sink.EncodedWriter
	bus      *bus.Bus
	cons     jetstream.Consumer
	batchMax int
	// linger is how long a batch that is not full may wait for more
	// events when no write is in progress (0: it is written at once).
	linger  time.Duration
	ackWait time.Duration
	log     *slog.Logger
	metrics *metrics.Metrics

	// dead counts dead letters since the last log line (logs are rate limited).
	dead        int
	lastDeadLog time.Time

	// testTook, when set (by tests), is called for each message the loop
	// takes from the reader.
	testTook func()
}

func (r *sinkRunner) run(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	defer r.writer.Close()
	ord, err := r.startOrderer(ctx)
	if err != nil {
		return err
	}
	// Pull with a bounded buffer: the client holds at most
	// consumeBufferBytes of messages we have not taken, and a reader hands
	// them over one by one (it waits while we write, so the bus keeps the
	// rest: backpressure without buffering in the client).
	it, err := r.cons.Messages(jetstream.PullMaxBytes(consumeBufferBytes))
	if err != nil {
		return fmt.Errorf("consuming for sink %s: %w", r.name, err)
	}
	// The hand-off holds up to consumeBufferMsgs messages (many small
	// transactions make one write) but at most handoffBytes of them (few
	// large snapshot batches).
	msgs := make(chan jetstream.Msg, consumeBufferMsgs)
	budget := semaphore.NewWeighted(handoffBytes)
	// heldSince is when the runner took the first message of the batch
	// being gathered (zero: it holds none taken since the last cut).
	var heldSince time.Time
	take := func(m jetstream.Msg) jetstream.Msg {
		budget.Release(msgCost(m))
		if heldSince.IsZero() && r.linger > 0 {
			heldSince = time.Now()
		}
		if r.testTook != nil {
			r.testTook()
		}
		return m
	}
	readerErr := make(chan error, 1)
	readerDone := make(chan struct{})
	readerCtx, stopReader := context.WithCancel(ctx)
	go func() {
		defer close(readerDone)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || readerCtx.Err() != nil {
					return
				}
				if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
					readerErr <- fmt.Errorf("sink %s: its bus consumer is gone: %w", r.name, err)
					return
				}
				// Missed heartbeats and the like: the iterator pulls again.
				r.log.Debug("consumer", "sink", r.name, "error", err)
				select {
				case <-readerCtx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			if budget.Acquire(readerCtx, msgCost(m)) != nil {
				_ = m.Nak() // stopping: let the next run have it at once
				return
			}
			select {
			case msgs <- m:
			case <-readerCtx.Done():
				_ = m.Nak()
				return
			}
		}
	}()
	batch := make([]jetstream.Msg, 0, consumeBufferMsgs)
	var inFlight flights
	defer func() {
		_ = inFlight.wait() // their failures were returned or are ctx's
		stopReader()
		it.Stop()
		<-readerDone
		// Hand back what was delivered but not processed, so that a
		// restart gets it without waiting for the ack wait to expire.
		for _, m := range batch {
			_ = m.Nak()
		}
		ord.nakAll()
		for {
			select {
			case m := <-msgs:
				_ = m.Nak()
			default:
				return
			}
		}
	}()

	gapSince := time.Time{}
	gapCheck := time.NewTicker(r.ackWait)
	defer gapCheck.Stop()
	lingerEnd := time.NewTimer(time.Hour)
	lingerEnd.Stop()
	defer lingerEnd.Stop()
	for {
		if err := inFlight.reap(); err != nil {
			return err
		}
		// The next batch is cut only once it may fly: what arrives while
		// the write slots are busy joins it (group commit), instead of
		// waiting behind a batch cut early. Meanwhile the runner takes up
		// to one batch's worth of messages (a backlog stays in the bus).
		batchFull := ord.holdsBatch(r.batchMax)
		if inFlight.full(batchFull) {
			in := msgs
			if batchFull {
				in = nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-readerErr:
				return err
			case m := <-in:
				ord.add(take(m))
			case <-inFlight.wrote:
			case <-inFlight.front():
			}
			continue
		}
		// Nothing is being written and the batch is not full: it may wait
		// up to the linger for more (fewer, larger writes). Otherwise the
		// batch is cut, or the runner waits for messages.
		var lingerC <-chan time.Time
		if wait := r.linger - time.Since(heldSince); !batchFull && !heldSince.IsZero() && wait > 0 {
			lingerEnd.Reset(wait)
			lingerC = lingerEnd.C
		} else if batch = ord.ready(batch[:0], r.batchMax); len(batch) == 0 {
			heldSince = time.Time{} // none ready: the linger starts with the next
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-readerErr:
				return err
			case m := <-msgs:
				ord.add(take(m))
			drain:
				for {
					select {
					case m := <-msgs:
						ord.add(take(m))
					default:
						break drain
					}
				}
			case <-inFlight.front():
			case <-lingerC:
			case <-gapCheck.C:
				// Held messages are behind a gap unless the batch lingers.
				if lingerC == nil && ord.waiting() {
					if gapSince.IsZero() {
						gapSince = time.Now()
					} else if err := r.checkGap(ctx, ord, time.Since(gapSince)); err != nil {
						return err
					}
				}
			}
			lingerEnd.Stop()
			continue // cut (or linger) at the top
		}
		gapSince, heldSince = time.Time{}, time.Time{}
		f, err := r.prepare(ctx, slices.Clone(batch)) // the flight keeps its own
		if err != nil {
			return err
		}
		batch = batch[:0]
		if err := inFlight.admit(ctx, f); err != nil {
			return err
		}
		inFlight.launch(f)
		go r.fly(ctx, f)
	}
}

// connect opens the sink, retrying with backoff until it works: events
// wait in the bus meanwhile.
func (r *sinkRunner) connect(ctx context.Context) error {
	backoff := time.Second
	for {
		w, err := r.open(ctx)
		if err == nil {
			r.writer = w
			r.encoded, _ = w.(sink.EncodedWriter)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Error("cannot open sink; events wait in the bus, retrying", "sink", r.name, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// startOrderer begins after the consumer's acknowledged floor.
func (r *sinkRunner) startOrderer(ctx context.Context) (*orderer, error) {
	info, err := r.cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading consumer of sink %s: %w", r.name, err)
	}
	next := info.AckFloor.Stream + 1
	if first, err := r.bus.FirstSeq(ctx, r.pipeline); err == nil && first > next {
		next = first
	}
	return newOrderer(next), nil
}

// checkGap handles messages held behind a missing one for long: a message
// that is gone from the stream is skipped; otherwise we keep waiting for its
// redelivery, and say so.
func (r *sinkRunner) checkGap(ctx context.Context, ord *orderer, waited time.Duration) error {
	for ord.waiting() {
		exists, err := r.bus.HasMsg(ctx, r.pipeline, ord.next)
		if err != nil {
			return fmt.Errorf("sink %s: checking stream sequence %d: %w", r.name, ord.next, err)
		}
		if exists {
			r.log.Warn("waiting for the bus to redeliver a message; later ones are held to keep order",
				"sink", r.name, "sequence", ord.next, "held", len(ord.pending), "waited", waited.Round(time.Second))
			return nil
		}
		low := ord.lowest()
		r.log.Warn("a message is gone from the bus stream; skipping it", "sink", r.name, "sequence", ord.next)
		ord.skipTo(min(ord.next+1, low))
	}
	return nil
}

// What a sink's consumer holds besides the batches being written: the
// client's pull buffer (bytes) and the hand-off to the writer (messages and
// bytes).
//
// The pull buffer must hold the largest message (a pull asks for at most
// this many bytes, and the bus never delivers a message larger than that:
// the sink would wait forever, TestLargeValues), and little more: a sink
// write takes a few messages (orderer.go: sinkBatchMaxBytes), and a pull
// within the process comes back in well under a millisecond. Everything
// held is live heap, which leaves the collector less room under the memory
// limit: with 16 MiB of pull buffer and 8 MiB of hand-off, message copies
// in the client were ~40 of ~90 MB live during a snapshot, and the
// collector ran ~5 times a second (make bench, heap profile).
const (
	consumeBufferBytes = bus.MaxMessageBytes + 1<<20
	consumeBufferMsgs  = 256
	handoffBytes       = 2 << 20
)

// msgCost is what a message counts against the hand-off budget (never more
// than the budget, so that any message can pass).
func msgCost(m jetstream.Msg) int64 {
	return min(int64(len(m.Data()))+512, handoffBytes)
}

// flightMemories hold what flights decode bus messages into, handed back
// once a flight is written: a snapshot's millions of events, rows and
// columns then cost the collector little, and neither do the lists of a
// batch's events (the pool lets go of them when the sink is idle).
var flightMemories = sync.Pool{New: func() any { return new(flightMemory) }}

// flightMemory is the memory of a flight's events.
type flightMemory struct {
	dec    event.Decoder
	events []*event.Event
	after  []event.EncodedRow
	idx    []int
}

// release forgets the events and hands the memory back.
func (m *flightMemory) release() {
	clear(m.events)
	clear(m.after)
	m.events, m.after, m.idx = m.events[:0], m.after[:0], m.idx[:0]
	m.dec.Reset()
	flightMemories.Put(m)
}

// prepare decodes a batch into a flight. Undecodable messages go to the
// dead-letter queue here; an error means that failed (nothing is
// acknowledged then).
func (r *sinkRunner) prepare(ctx context.Context, msgs []jetstream.Msg) (*flight, error) {
	f := &flight{msgs: msgs, mem: flightMemories.Get().(*flightMemory), written: make(chan struct{}), done: make(chan struct{})}
	f.events, f.idx = f.mem.events, f.mem.idx
	keepAfter := r.encoded != nil
	if keepAfter {
		f.after = f.mem.after
	}
	for i, m := range msgs {
		if s := m.Headers().Get(bus.HeaderReplaySink); s != "" && s != r.name {
			continue // a dead letter replayed for another sink
		}
		var b *event.Batch
		var after []event.EncodedRow
		var err error
		if keepAfter {
			b, after, err = f.mem.dec.DecodeKeepingAfter(m.Data())
			f.after = append(f.after, after...)
		} else {
			b, err = f.mem.dec.Decode(m.Data())
		}
		if err != nil {
			if err := r.deadLetter(ctx, m, nil, fmt.Sprintf("undecodable bus message (not an event batch): %v", err)); err != nil {
				return nil, err
			}
			continue
		}
		b.Expand()
		for _, ev := range b.GetEvents() {
			f.events = append(f.events, ev)
			f.idx = append(f.idx, i)
		}
	}
	f.index()
	return f, nil
}

// fly settles a flight: writes it, dead-letters what the sink rejected, and
// acknowledges it once the flight before it is acknowledged. On failure
// nothing of it is acknowledged and its messages are delivered again.
func (r *sinkRunner) fly(ctx context.Context, f *flight) {
	defer close(f.done)
	f.err = r.write(ctx, f)
	// Written: nothing uses the events any more (the sink keeps none), so
	// their memory serves the next flight (docs go with the flight).
	f.mem.events, f.mem.after, f.mem.idx = f.events, f.after, f.idx // as grown
	f.events, f.after, f.idx = nil, nil, nil
	f.mem.release()
	f.mem = nil
	f.markWritten()
	if prev := f.prev; prev != nil {
		// Dropped once waited for: flights would otherwise chain every
		// batch ever written.
		f.prev = nil
		<-prev.done
		if f.err == nil && prev.err != nil {
			f.err = errEarlierFailed
		}
	}
	if f.err == nil {
		f.err = r.ack(ctx, f.msgs)
	}
	if f.err != nil {
		for _, m := range f.msgs {
			_ = m.Nak()
		}
	}
}

// write applies a flight's events and dead-letters those the sink
// rejected. It returns an error only when the batch could not be settled
// (ctx done, DLQ unwritable).
func (r *sinkRunner) write(ctx context.Context, f *flight) error {
	events, idx, msgs := f.events, f.idx, f.msgs
	if len(events) == 0 {
		return nil
	}
	stop := r.keepAlive(msgs)
	start := time.Now()
	for _, ev := range events {
		if ct := ev.GetCommitTimeUs(); ct > 0 {
			r.metrics.SinkDequeue.WithLabelValues(r.pipeline, r.name).Observe(start.Sub(time.UnixMicro(ct)).Seconds())
			break
		}
	}
	var results []error
	var err error
	if r.encoded != nil {
		results, err = r.encoded.WriteEncoded(ctx, events, f.after)
	} else {
		results, err = r.writer.Write(ctx, events)
	}
	stop()
	if err != nil {
		return fmt.Errorf("sink %s: %w", r.name, err)
	}
	r.metrics.SinkWrite.WithLabelValues(r.pipeline, r.name).Observe(time.Since(start).Seconds())
	now := time.Now()
	e2e := r.metrics.EndToEnd.WithLabelValues(r.pipeline, r.name)
	applied := map[tableOp]int{}
	var lastCommit int64
	for i, ev := range events {
		if i < len(results) && results[i] != nil {
			if err := r.deadLetter(ctx, msgs[idx[i]], withAfter(ev, f.after, i), results[i].Error()); err != nil {
				return err
			}
			continue
		}
		applied[tableOp{ev.GetOrigin().GetSchema(), ev.GetOrigin().GetTable(), ev.GetOp()}]++
		if ct := ev.GetCommitTimeUs(); ct > 0 && ct != lastCommit {
			// One observation per transaction: its events share the commit time.
			lastCommit = ct
			e2e.Observe(now.Sub(time.UnixMicro(ct)).Seconds())
		}
	}
	for k, n := range applied {
		r.metrics.Events.WithLabelValues(r.pipeline, "sink:"+r.name, k.schema+"."+k.table, event.OpName(k.op)).Add(float64(n))
	}
	return nil
}

// withAfter returns ev with its after row decoded when it is still
// encoded (after[i]), for the dead-letter queue, which keeps whole events.
// It returns nil, so that the whole message is dead-lettered, when the row
// does not decode (a damaged message: the sink rejected the event for it).
func withAfter(ev *event.Event, after []event.EncodedRow, i int) *event.Event {
	if i >= len(after) || after[i].Data == nil || ev.After != nil {
		return ev
	}
	row, err := after[i].Decode()
	if err != nil {
		return nil
	}
	ev.After = row
	return ev
}

// ack acknowledges a processed batch. The consumer acknowledges everything
// up to a message (ack-all), and waits for the bus to confirm, so a stop
// right after loses no ack and the next run resumes exactly here.
func (r *sinkRunner) ack(ctx context.Context, msgs []jetstream.Msg) error {
	if err := msgs[len(msgs)-1].DoubleAck(ctx); err != nil {
		return fmt.Errorf("sink %s: acknowledging a batch: %w (it will be delivered again)", r.name, err)
	}
	return nil
}

// tableOp counts applied events (the table name is joined once per batch,
// not per event).
type tableOp struct {
	schema, table string
	op            event.Op
}

// deadLetter stores one event (nil: the whole undecodable message) in the
// sink's dead-letter queue, with the reason.
func (r *sinkRunner) deadLetter(ctx context.Context, m jetstream.Msg, ev *event.Event, reason string) error {
	attempts, seq := 1, uint64(0)
	if md, err := m.Metadata(); err == nil {
		attempts, seq = int(md.NumDelivered), md.Sequence.Stream
	}
	data := m.Data()
	if ev != nil {
		ev.Id = ev.ID() // snapshot rows travel without theirs
		var err error
		if data, err = ev.MarshalVT(); err != nil {
			return fmt.Errorf("sink %s: encoding dead letter %s: %w", r.name, ev.GetId(), err)
		}
	}
	err := r.bus.PublishDLQ(ctx, bus.DeadLetter{
		Pipeline: r.pipeline, Sink: r.name, EventID: ev.GetId(), Subject: m.Subject(),
		Error: reason, Attempts: attempts, Data: data, StreamSeq: seq,
	})
	if err != nil {
		return err
	}
	table := ev.GetOrigin().GetSchema() + "." + ev.GetOrigin().GetTable()
	r.metrics.Events.WithLabelValues(r.pipeline, "dlq:"+r.name, table, event.OpName(ev.GetOp())).Inc()
	r.dead++
	if r.lastDeadLog.IsZero() || time.Since(r.lastDeadLog) > 10*time.Second {
		r.log.Warn("events sent to the dead-letter queue (inspect with `tidegate dlq list` and the tidegate_events_total{stage=\"dlq:...\"} metric)",
			"sink", r.name, "since_last_report", r.dead, "last_event", ev.GetId(), "table", table, "error", reason)
		r.lastDeadLog = time.Now()
		r.dead = 0
	}
	return nil
}

// keepAlive tells the bus the batch is still being worked on while a write
// retries for longer than the ack wait, so it is not redelivered meanwhile.
// (A timer, not a goroutine: most writes end long before it fires.)
func (r *sinkRunner) keepAlive(msgs []jetstream.Msg) (stop func()) {
	every := r.ackWait / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}
