package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/platform/metrics"
	"github.com/tidegate/tidegate/internal/sink"
)

// blockingWriter reports the size of each write as it starts and holds it
// until release is closed.
type blockingWriter struct {
	started chan int
	release chan struct{}
}

func (w *blockingWriter) Write(ctx context.Context, evs []*event.Event) ([]error, error) {
	w.started <- len(evs)
	select {
	case <-w.release:
		return make([]error, len(evs)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *blockingWriter) Close() error { return nil }

// While every write slot is busy, the runner keeps taking messages and
// cuts the next batch only when a slot frees, so that batch holds all that
// arrived meanwhile (one bulk request where there were several), instead of
// waiting with the first message alone.
func TestSinkRunnerBatchesWhileWritesAreBusy(t *testing.T) {
	ctx := context.Background()
	em, cons, _, b := newTestBusEmitter(t)
	w := &blockingWriter{started: make(chan int, 16), release: make(chan struct{})}
	took := make(chan struct{}, 64)
	r := &sinkRunner{
		pipeline: "p", name: "s", bus: b, cons: cons, batchMax: 5000, ackWait: time.Minute,
		open: func(context.Context) (sink.Writer, error) { return w, nil },
		log:  slog.New(slog.DiscardHandler), metrics: metrics.New(),
		testTook: func() { took <- struct{}{} },
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- r.run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("runner: %v", err)
		}
	}()

	// One transaction (one bus message) of one event per call.
	n := 0
	emit := func() {
		n++
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
	wait := func(what string, ch <-chan struct{}, times int) {
		t.Helper()
		for i := range times {
			select {
			case <-ch:
			case <-time.After(30 * time.Second): // a failure, not a measurement
				t.Fatalf("%s: %d of %d after 30 s", what, i, times)
			}
		}
	}
	startedSize := func() int {
		t.Helper()
		select {
		case size := <-w.started:
			return size
		case <-time.After(30 * time.Second):
			t.Fatal("no write started within 30 s")
			return 0
		}
	}

	for i := range maxWritesInFlight {
		emit()
		wait("messages taken", took, 1)
		if size := startedSize(); size != 1 {
			t.Fatalf("write %d holds %d events, want 1", i+1, size)
		}
	}
	const later = 10
	for range later {
		emit()
	}
	wait(fmt.Sprintf("messages taken while %d writes are busy", maxWritesInFlight), took, later)
	close(w.release)
	if size := startedSize(); size != later {
		t.Fatalf("the write after the busy ones holds %d events, want all %d that arrived meanwhile", size, later)
	}
}
