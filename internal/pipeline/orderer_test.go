package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stubMsg is a delivered message with a stream sequence; it records acks.
type stubMsg struct {
	seq         uint64
	data        []byte
	acked, naks int
}

func (m *stubMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}
func (m *stubMsg) Data() []byte                     { return m.data }
func (m *stubMsg) Headers() nats.Header             { return nil }
func (m *stubMsg) Subject() string                  { return "" }
func (m *stubMsg) Reply() string                    { return "" }
func (m *stubMsg) Ack() error                       { m.acked++; return nil }
func (m *stubMsg) DoubleAck(context.Context) error  { m.acked++; return nil }
func (m *stubMsg) Nak() error                       { m.naks++; return nil }
func (m *stubMsg) NakWithDelay(time.Duration) error { m.naks++; return nil }
func (m *stubMsg) InProgress() error                { return nil }
func (m *stubMsg) Term() error                      { return nil }
func (m *stubMsg) TermWithReason(string) error      { return nil }

func seqs(ms []jetstream.Msg) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.(*stubMsg).seq
	}
	return out
}

func TestOrdererReleasesInStreamOrder(t *testing.T) {
	o := newOrderer(10)
	// After a crash, new messages (12, 13) arrive before the redelivery of 10, 11.
	for _, s := range []uint64{12, 13} {
		o.add(&stubMsg{seq: s})
	}
	if got := o.ready(nil, 100); len(got) != 0 {
		t.Fatalf("released %v before the gap was filled", seqs(got))
	}
	o.add(&stubMsg{seq: 11})
	o.add(&stubMsg{seq: 10})
	got := seqs(o.ready(nil, 100))
	want := []uint64{10, 11, 12, 13}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	// A late redelivery of something already released is acknowledged and dropped.
	late := &stubMsg{seq: 11}
	o.add(late)
	if late.acked != 1 || o.waiting() {
		t.Fatalf("late redelivery not dropped: acked=%d waiting=%v", late.acked, o.waiting())
	}
}

func TestOrdererBatchLimitAndSkip(t *testing.T) {
	o := newOrderer(1)
	for s := uint64(1); s <= 5; s++ {
		o.add(&stubMsg{seq: s})
	}
	if got := seqs(o.ready(nil, 2)); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("first batch %v", got)
	}
	if got := seqs(o.ready(nil, 10)); len(got) != 3 || got[0] != 3 {
		t.Fatalf("second batch %v", got)
	}
	// A gap that never fills (message gone) can be skipped.
	o.add(&stubMsg{seq: 9})
	if o.lowest() != 9 {
		t.Fatalf("lowest = %d", o.lowest())
	}
	o.skipTo(o.lowest())
	if got := seqs(o.ready(nil, 10)); len(got) != 1 || got[0] != 9 {
		t.Fatalf("after skip %v", got)
	}
	held := &stubMsg{seq: 20}
	o.add(held)
	o.nakAll()
	if held.naks != 1 || o.waiting() {
		t.Fatal("nakAll did not hand back held messages")
	}
}

// The orderer counts the events and bytes it holds, gaps included, so that
// the runner takes no more than a batch's worth while its writes are busy.
func TestOrdererHoldsBatch(t *testing.T) {
	o := newOrderer(1)
	o.add(&stubMsg{seq: 1})
	o.add(&stubMsg{seq: 2})
	if o.holdsBatch(3) {
		t.Fatal("2 events held, yet a batch of 3")
	}
	o.add(&stubMsg{seq: 3})
	o.add(&stubMsg{seq: 3}) // a second delivery counts once
	if !o.holdsBatch(3) || o.holdsBatch(4) {
		t.Fatalf("3 events held: holdsBatch(3) %v, holdsBatch(4) %v", o.holdsBatch(3), o.holdsBatch(4))
	}
	o.ready(nil, 2)
	if o.holdsBatch(2) {
		t.Fatal("1 event held after a batch of 2 left, yet a batch of 2")
	}
	o.add(&stubMsg{seq: 6, data: make([]byte, sinkBatchMaxBytes)}) // behind a gap
	if !o.holdsBatch(100) {
		t.Fatal("sinkBatchMaxBytes held behind a gap, yet not a batch")
	}
	o.skipTo(6) // drops 3 with the gap
	if got := seqs(o.ready(nil, 100)); len(got) != 1 || o.events != 0 || o.bytes != 0 {
		t.Fatalf("released %v; still counted: %d events, %d bytes", got, o.events, o.bytes)
	}
	o.add(&stubMsg{seq: 9})
	o.skipTo(10)
	o.add(&stubMsg{seq: 11})
	o.nakAll()
	if o.events != 0 || o.bytes != 0 {
		t.Fatalf("after skipTo and nakAll: %d events, %d bytes counted", o.events, o.bytes)
	}
}
