package pipeline

import (
	"context"
	"errors"
	"hash/maphash"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidegate/tidegate/event"
)

// maxWritesInFlight is how many batches a sink runner writes at once. Two
// keep the sink busy: while one batch waits for its last bulk response,
// the next is decoded, rendered and sent. (Written one after the other,
// the cluster idled a third of a snapshot: 1.1 of 2 cores busy.) A third
// is rendered and ready when a request slot frees (the sink bounds its
// own requests in flight): bulk requests in flight during a snapshot went
// from 1.84 to 1.91 on average (make bench), with the same peak RSS.
const maxWritesInFlight = 3

// maxPartialWritesInFlight is how many batches may be in writing when the
// next one is not full (fewer events than a batch holds): without a
// backlog, one write at a time, and the next batch gathers everything that
// arrives meanwhile (group commit). Writes in parallel only pay under a
// backlog. Cut from a trickle, a second or third write carried the few
// events that had arrived and took a bulk request of its own (each costs
// Elasticsearch a translog sync and ~0.6 ms of CPU), or waited for a
// request slot. Measured against both in interleaved bench runs: lower
// end-to-end p50 at 5,000 transactions/s, 15–25 % less Elasticsearch CPU
// at 1,000 and 5,000/s (docs/design.md).
const maxPartialWritesInFlight = 1

// maxFlightsHeld bounds the batches a runner holds: written ones wait for
// the acknowledgement of those before them.
const maxFlightsHeld = 2 * maxWritesInFlight

// flight is one batch on its way to the sink: decoded, then written,
// dead-lettered where needed and acknowledged by its own goroutine.
//
// Batches in flight together never write the same document: a batch that
// shares a document with one in flight waits for it, so each document's
// events are applied in stream order. Truncates and sweeps (which touch
// every document of a table) and batches whose documents are unknown fly
// alone. Acknowledgements stay in stream order (the consumer acknowledges
// everything up to a message): a batch is acknowledged only after the one
// before it, and not at all if that one failed.
type flight struct {
	msgs   []jetstream.Msg
	events []*event.Event
	after  []event.EncodedRow // after rows left encoded, for an EncodedWriter
	idx    []int              // events[i] came from msgs[idx[i]]
	mem    *flightMemory      // the events' memory, reused once they are written
	// docs are the hashes of the documents the batch writes, sorted;
	// alone: it must be the only batch in flight.
	docs  []uint64
	alone bool

	prev    *flight       // the batch launched before, or nil
	written chan struct{} // closed when the write is over (applied or failed)
	wrote   chan struct{} // the runner's: signalled after written is closed
	done    chan struct{} // closed when the batch is settled (acknowledged) or failed
	err     error         // set before done is closed
}

// isWritten reports whether the batch's write is over: its documents no
// longer conflict, and it no longer counts against maxWritesInFlight (its
// acknowledgement, a round trip to the bus, need not hold up the next
// write).
func (f *flight) isWritten() bool {
	select {
	case <-f.written:
		return true
	default:
		return false
	}
}

// errEarlierFailed ends a batch whose predecessor failed: it is not
// acknowledged (the bus delivers both again).
var errEarlierFailed = errors.New("an earlier batch failed")

var docSeed = maphash.MakeSeed()

// index records the documents of the batch's events.
func (f *flight) index() {
	f.docs = make([]uint64, 0, len(f.events))
	var h maphash.Hash
	h.SetSeed(docSeed)
	var buf []byte
	for _, ev := range f.events {
		switch ev.GetOp() {
		case event.Op_OP_TRUNCATE, event.Op_OP_SWEEP:
			f.alone = true
			return
		}
		o := ev.GetOrigin()
		h.Reset()
		h.WriteString(o.GetSchema())
		h.WriteByte(0)
		h.WriteString(o.GetTable())
		h.WriteByte(0)
		buf = event.AppendDocumentID(buf[:0], ev.GetKey())
		h.Write(buf)
		f.docs = append(f.docs, h.Sum64())
	}
	// Sorted, two batches compare in one pass over both: cheaper than a
	// map per batch and a lookup per document (a map cost a snapshot
	// ~4% of tidegate's CPU time).
	slices.Sort(f.docs)
}

// conflicts reports whether f and g may not be in flight together.
func (f *flight) conflicts(g *flight) bool {
	if f.alone || g.alone {
		return true
	}
	a, b := f.docs, g.docs
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			a = a[1:]
		case a[0] > b[0]:
			b = b[1:]
		default:
			return true
		}
	}
	return false
}

// flights are a sink runner's batches in flight, in launch order.
type flights struct {
	list []*flight
	// wrote is signalled (without blocking: one signal stands for any
	// number) each time a batch's write is over.
	wrote chan struct{}
}

// launch records f, admitted, as the last batch in flight.
func (fs *flights) launch(f *flight) {
	if fs.wrote == nil {
		fs.wrote = make(chan struct{}, 1)
	}
	f.prev, f.wrote = fs.last(), fs.wrote
	fs.list = append(fs.list, f)
}

// markWritten closes f.written and signals the runner.
func (f *flight) markWritten() {
	close(f.written)
	select {
	case f.wrote <- struct{}{}:
	default:
	}
}

// admit waits until f may fly: fewer than maxWritesInFlight batches being
// written (the runner applies the lower bound for a batch that is not full
// before cutting it), none of them sharing a document with f, and fewer
// than maxFlightsHeld held. It returns the error of a batch that failed (the
// runner stops then) or ctx's.
func (fs *flights) admit(ctx context.Context, f *flight) error {
	// clear are the batches known not to share a document with f: each
	// pair is compared once, however often f waits.
	var clear []*flight
	for {
		if err := fs.reap(); err != nil {
			return err
		}
		var wake <-chan struct{} = fs.wrote
		if !fs.full(true) {
			var blocker *flight
			for _, g := range fs.list {
				if g.isWritten() || slices.Contains(clear, g) {
					continue
				}
				if f.conflicts(g) {
					blocker = g
					break
				}
				clear = append(clear, g)
			}
			if blocker == nil {
				return nil
			}
			wake = blocker.written
		}
		select {
		case <-fs.list[0].done:
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// full reports whether a new batch would have to wait for room:
// maxFlightsHeld batches held, or maxWritesInFlight being written
// (maxPartialWritesInFlight when the batch is not full). Room may have
// freed when fs.wrote or fs.front() is ready.
func (fs *flights) full(batchFull bool) bool {
	if len(fs.list) >= maxFlightsHeld {
		return true
	}
	writing := 0
	for _, g := range fs.list {
		if !g.isWritten() {
			writing++
		}
	}
	if !batchFull {
		return writing >= maxPartialWritesInFlight
	}
	return writing >= maxWritesInFlight
}

// reap forgets the settled batches at the front, returning the first
// failure.
func (fs *flights) reap() error {
	for len(fs.list) > 0 {
		select {
		case <-fs.list[0].done:
		default:
			return nil
		}
		if err := fs.list[0].err; err != nil {
			return err
		}
		fs.list = fs.list[1:]
	}
	return nil
}

// front is closed when the oldest batch in flight is settled; nil (never
// ready) when none is in flight.
func (fs *flights) front() <-chan struct{} {
	if len(fs.list) == 0 {
		return nil
	}
	return fs.list[0].done
}

// last is the batch launched last, or nil.
func (fs *flights) last() *flight {
	if len(fs.list) == 0 {
		return nil
	}
	return fs.list[len(fs.list)-1]
}

// wait waits for every batch in flight to settle and returns the first
// failure.
func (fs *flights) wait() error {
	var first error
	for _, f := range fs.list {
		<-f.done
		if first == nil && f.err != nil {
			first = f.err
		}
	}
	fs.list = nil
	return first
}
