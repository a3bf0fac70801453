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
	acked, naks int
}

func (m *stubMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}
func (m *stubMsg) Data() []byte                     { return nil }
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
