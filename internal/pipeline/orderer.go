package pipeline

import (
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidegate/tidegate/internal/bus"
)

// orderer releases a consumer's messages strictly in stream order.
//
// JetStream redelivers unacknowledged messages after the ack wait, which can
// put an old message after newer ones (after a crash: the dead run's
// messages come back while new ones already flow). Writes must follow the
// stream order — several changes of one row in one transaction share a
// version, so only their order decides which wins — so the orderer holds
// messages that arrive early until the gap before them is filled, and drops
// (acknowledging) those already processed. It holds at most the consumer's
// max-ack-pending messages.
type orderer struct {
	next    uint64 // stream sequence of the next message to process
	pending map[uint64]jetstream.Msg
	// events and bytes held in pending (message data)
	events, bytes int
}

func newOrderer(next uint64) *orderer {
	return &orderer{next: next, pending: map[uint64]jetstream.Msg{}}
}

// add takes one delivered message.
func (o *orderer) add(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to order it by.
		o.hold(o.next, m)
		return
	}
	seq := md.Sequence.Stream
	if seq < o.next {
		_ = m.Ack() // already processed (a late redelivery)
		return
	}
	if _, dup := o.pending[seq]; dup {
		// A second delivery of a message still waiting here: keep the
		// first; it is acknowledged once processed (acknowledging now could
		// lose it if the process died before processing it).
		return
	}
	o.hold(seq, m)
}

func (o *orderer) hold(seq uint64, m jetstream.Msg) {
	o.pending[seq] = m
	o.events += eventCount(m)
	o.bytes += len(m.Data())
}

func (o *orderer) drop(seq uint64, m jetstream.Msg) {
	delete(o.pending, seq)
	o.events -= eventCount(m)
	o.bytes -= len(m.Data())
}

// holdsBatch reports whether the orderer holds a full batch (maxEvents
// events or sinkBatchMaxBytes), counting messages behind a gap too.
func (o *orderer) holdsBatch(maxEvents int) bool {
	return o.events >= maxEvents || o.bytes >= sinkBatchMaxBytes
}

// ready appends to batch, in order, the messages that can be processed now
// and advances past them: at most maxEvents events (a message holds the
// number its events header says, 1 without one) and sinkBatchMaxBytes of
// message data, but always at least one message.
func (o *orderer) ready(batch []jetstream.Msg, maxEvents int) []jetstream.Msg {
	events, size := 0, 0
	for _, m := range batch {
		events += eventCount(m)
		size += len(m.Data())
	}
	for {
		m, ok := o.pending[o.next]
		if !ok {
			break
		}
		n := eventCount(m)
		if len(batch) > 0 && (events+n > maxEvents || size+len(m.Data()) > sinkBatchMaxBytes) {
			break
		}
		o.drop(o.next, m)
		o.next++
		batch = append(batch, m)
		events += n
		size += len(m.Data())
	}
	return batch
}

// sinkBatchMaxBytes bounds the encoded events of one sink write, and so
// its decoded events: decoded, a batch takes 20-35 times its encoded size
// (every column is a Column, a Value and its kind: ~136 bytes for a small
// integer encoded in 6; measured: 5 integer columns 33x, 200 columns 22x).
// At 4 MiB a batch of a 200-column table took ~94 MB, three batches being
// written ~280 MB; at 1 MiB, ~25-35 MB each. Typical rows are not
// limited by it: 5,000 rows of 40-200 encoded bytes fit in 1 MiB.
const sinkBatchMaxBytes = 1 << 20

// eventCount is the number of events a message carries.
func eventCount(m jetstream.Msg) int {
	if h := m.Headers(); h != nil {
		if v := h.Get(bus.HeaderEvents); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}

// skipTo moves past a gap that will never fill (the message is gone from
// the stream).
func (o *orderer) skipTo(seq uint64) {
	for s := o.next; s < seq; s++ {
		if m, ok := o.pending[s]; ok {
			_ = m.Ack()
			o.drop(s, m)
		}
	}
	if seq > o.next {
		o.next = seq
	}
}

// waiting reports whether messages are held behind a gap.
func (o *orderer) waiting() bool { return len(o.pending) > 0 }

// lowest returns the lowest held sequence (0 when none).
func (o *orderer) lowest() uint64 {
	var low uint64
	for s := range o.pending {
		if low == 0 || s < low {
			low = s
		}
	}
	return low
}

// nakAll hands every held message back to the bus.
func (o *orderer) nakAll() {
	for s, m := range o.pending {
		_ = m.Nak()
		o.drop(s, m)
	}
}
