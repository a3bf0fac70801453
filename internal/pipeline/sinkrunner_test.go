package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/sink"
)

// blockingWriter reports the size of each write as it starts and holds it
// until release is closed; peak is the most writes it had at once.
type blockingWriter struct {
	started      chan int
	release      chan struct{}
	active, peak atomic.Int32
}

func (w *blockingWriter) Write(ctx context.Context, evs []*event.Event) ([]error, error) {
	n := w.active.Add(1)
	defer w.active.Add(-1)
	for p := w.peak.Load(); n > p && !w.peak.CompareAndSwap(p, n); p = w.peak.Load() {
	}
	w.started <- len(evs)
	select {
	case <-w.release:
		return make([]error, len(evs)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *blockingWriter) Close() error { return nil }

// heldRunner is a sink runner on the embedded bus whose writes are held
// until release is closed.
type heldRunner struct {
	t       *testing.T
	w       *blockingWriter
	took    chan struct{}
	emitted int
	emit    func() // one transaction (one bus message) of one event
}

func startHeldRunner(t *testing.T, batchMax int) *heldRunner {
	return startHeldRunnerWith(t, heldRunnerOptions{batchMax: batchMax})
}

type heldRunnerOptions struct {
	batchMax int
	ackWait  time.Duration // the consumer's (0: the default, the runner's then a minute)
	linger   time.Duration
}

// startHeldRunnerWith is startHeldRunner with more options.
func startHeldRunnerWith(t *testing.T, o heldRunnerOptions) *heldRunner {
	t.Helper()
	batchMax, ackWait := o.batchMax, o.ackWait
	ctx := context.Background()
	em, cons, _, b := newTestBusEmitter(t)
	if ackWait > 0 {
		var err error
		if cons, err = b.EnsureConsumer(ctx, "p", "s", bus.ConsumerConfig{AckWait: ackWait}); err != nil {
			t.Fatal(err)
		}
	} else {
		ackWait = time.Minute
	}
	h := &heldRunner{t: t, w: &blockingWriter{started: make(chan int, 16), release: make(chan struct{})}, took: make(chan struct{}, 64)}
	r := &sinkRunner{
		pipeline: "p", name: "s", bus: b, cons: cons, batchMax: batchMax, ackWait: ackWait, linger: o.linger,
		open: func(context.Context) (sink.Writer, error) { return h.w, nil },
		log:  slog.New(slog.DiscardHandler), metrics: metrics.New(),
		testTook: func() { h.took <- struct{}{} },
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- r.run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("runner: %v", err)
		}
	})
	h.emit = func() {
		h.emitted++
		n := h.emitted
		ev := &event.Event{Id: fmt.Sprint("e", n), Op: event.Op_OP_INSERT, Version: uint64(n), Position: fmt.Sprint(n),
			TxId: fmt.Sprint(n), Origin: &event.Origin{Schema: "public", Table: "t"},
			Key: []*event.Column{{Name: "id", Value: event.Int(int64(n))}}}
		if err := em.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := em.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// taken waits until the runner has taken times more messages.
func (h *heldRunner) taken(what string, times int) {
	h.t.Helper()
	for i := range times {
		select {
		case <-h.took:
		case <-time.After(30 * time.Second): // a failure, not a measurement
			h.t.Fatalf("%s: %d of %d after 30 s", what, i, times)
		}
	}
}

// started waits for the next write to start and returns its size.
func (h *heldRunner) started() int {
	h.t.Helper()
	select {
	case size := <-h.w.started:
		return size
	case <-time.After(30 * time.Second):
		h.t.Fatal("no write started within 30 s")
		return 0
	}
}

// writeSingles starts writes of one event each, one after the other.
func (h *heldRunner) writeSingles(writes int) {
	h.t.Helper()
	for i := range writes {
		h.emit()
		h.taken("messages taken", 1)
		if size := h.started(); size != 1 {
			h.t.Fatalf("write %d holds %d events, want 1", i+1, size)
		}
	}
}

// While the write slots are busy, the runner keeps taking messages and
// cuts the next batch only when a slot frees, so that batch holds all that
// arrived meanwhile (one bulk request where there were several), instead of
// waiting with the first message alone. A batch that is not full gets only
// maxPartialWritesInFlight slots: it does not wait, cut, for a request slot
// of the sink's.
func TestSinkRunnerBatchesWhileWritesAreBusy(t *testing.T) {
	h := startHeldRunner(t, 5000)
	h.writeSingles(maxPartialWritesInFlight)
	// The first one taken alone: a batch cut from it would start a write
	// before the others arrive.
	const later = 10
	h.emit()
	h.taken("first message taken while the writes are busy", 1)
	for range later - 1 {
		h.emit()
	}
	h.taken(fmt.Sprintf("messages taken while %d writes are busy", maxPartialWritesInFlight), later-1)
	close(h.w.release)
	if size := h.started(); size != later {
		t.Fatalf("the write after the busy ones holds %d events, want all %d that arrived meanwhile", size, later)
	}
}

// Under a backlog a full batch takes the last write slot at once: it is
// rendered and ready when a request slot of the sink's frees.
func TestSinkRunnerFullBatchTakesLastSlot(t *testing.T) {
	const batchMax = 4
	h := startHeldRunner(t, batchMax)
	h.writeSingles(maxPartialWritesInFlight)
	for range maxWritesInFlight - maxPartialWritesInFlight {
		for range batchMax {
			h.emit()
		}
		h.taken("messages of a full batch taken", batchMax)
		if size := h.started(); size != batchMax {
			t.Fatalf("write holds %d events, want a full batch of %d", size, batchMax)
		}
	}
	// Every slot is busy now: what arrives waits, up to one batch taken.
	for range batchMax {
		h.emit()
	}
	h.taken("messages taken while every slot is busy", batchMax)
	close(h.w.release)
	if size := h.started(); size != batchMax {
		t.Fatalf("the write after the busy ones holds %d events, want %d", size, batchMax)
	}
	// A write started while the others were held would show here (the
	// next write's start above comes after every write before it began).
	if peak := h.w.peak.Load(); peak != maxWritesInFlight {
		t.Fatalf("%d writes at once, want at most %d (and that many reached)", peak, maxWritesInFlight)
	}
}

// A write that outlasts the ack wait is kept alive (in-progress
// acknowledgements), so the bus does not deliver its messages again while
// it runs.
func TestSinkRunnerKeepsSlowWriteAlive(t *testing.T) {
	// One second: the keep-alive ticks every 333 ms, so a stalled CI
	// machine would need a 667 ms pause to let the bus redeliver.
	const ackWait = time.Second
	h := startHeldRunnerWith(t, heldRunnerOptions{batchMax: 5000, ackWait: ackWait})
	h.writeSingles(1)
	// The scenario is time itself: the write is held for three ack waits
	// (without the keep-alive the bus delivers again after one).
	select {
	case <-h.took:
		t.Fatal("the message of a write in progress was delivered again")
	case <-time.After(3 * ackWait):
	}
	close(h.w.release)
}

// With a linger, a batch that is not full waits for more events when no
// write is in progress: here the linger outlasts the test, so the first
// write starts only once the batch is full, holding every event.
func TestSinkRunnerLingerGathersBatch(t *testing.T) {
	const batchMax = 8
	h := startHeldRunnerWith(t, heldRunnerOptions{batchMax: batchMax, linger: time.Hour})
	for range batchMax {
		h.emit()
	}
	h.taken("messages taken", batchMax)
	close(h.w.release)
	if size := h.started(); size != batchMax {
		t.Fatalf("the first write holds %d events, want the full batch of %d (without the linger it is cut at the first)", size, batchMax)
	}
}

// A lingering batch is written once the linger is over, full or not.
func TestSinkRunnerLingerEnds(t *testing.T) {
	h := startHeldRunnerWith(t, heldRunnerOptions{batchMax: 5000, linger: 20 * time.Millisecond})
	close(h.w.release)
	h.writeSingles(3)
}

// A dead letter keeps its whole event: an after row the sink got encoded
// is decoded back into it; one that does not decode gives no event (the
// whole message is dead-lettered instead).
func TestWithAfterRestoresEncodedRow(t *testing.T) {
	row := &event.Row{Columns: []*event.Column{{Value: event.Int(7)}, {Value: event.Text("x")}}}
	data, err := row.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	after := []event.EncodedRow{{Data: data, Names: []string{"id", "name"}}, {Data: []byte{0x0a, 0x05}}}
	ev := withAfter(&event.Event{Op: event.Op_OP_SNAPSHOT}, after, 0)
	if got := string(event.AppendRowJSON(nil, ev.GetAfter())); got != `{"id":7,"name":"x"}` {
		t.Errorf("restored after row %s", got)
	}
	if ev := withAfter(&event.Event{Op: event.Op_OP_SNAPSHOT}, after, 1); ev != nil {
		t.Errorf("a damaged row gave event %v, want none", ev)
	}
	decoded := &event.Event{Op: event.Op_OP_UPDATE, After: row}
	if ev := withAfter(decoded, nil, 0); ev != decoded || ev.After != row {
		t.Error("an event decoded in full was changed")
	}
}
