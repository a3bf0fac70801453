package pipeline

import (
	"math/bits"
	"sync"
)

// Batch buffers are recycled by capacity class once the bus has stored
// them (bus.PublisherConfig.Stored): powers of two from smallBatchSize,
// and fullBatchSize, which no batch outgrows.
//
// A snapshot batch gets the class that holds the table's last full batch
// (batchBuf.fullHint). Before, every snapshot batch took a full-size
// buffer, and one of small rows (512 events in ~30 KiB of 576) was copied
// into a new allocation to be published: 14 % of a snapshot reader's CPU
// time, and 60 MB allocated per million rows (make bench profile).
// Allocating and zeroing a full-size buffer per batch instead was a sixth
// of it. At 5,000 single-row transactions/s, allocating the small buffers
// was 30 % of the bytes tidegate allocated.
const (
	smallBatchSize = 4 << 10
	fullBatchSize  = batchMaxBytes + 64<<10
	// batchClasses: smallBatchSize << 0..6 (4 KiB to 256 KiB), then full.
	batchClasses = 8
)

var batchPools [batchClasses]sync.Pool

// batchClass returns the class of the smallest buffer with room for n
// bytes.
func batchClass(n int) int {
	if n <= smallBatchSize {
		return 0
	}
	c := bits.Len(uint((n - 1) / smallBatchSize)) // smallBatchSize<<c >= n
	return min(c, batchClasses-1)
}

func classSize(c int) int {
	if c == batchClasses-1 {
		return fullBatchSize
	}
	return smallBatchSize << c
}

// batchBuffer returns an empty buffer with room for at least n bytes: one
// of its class, recycled, up to fullBatchSize; one of its own above (a
// large event's).
func batchBuffer(n int) []byte {
	if n > fullBatchSize {
		return make([]byte, 0, n)
	}
	c := batchClass(n)
	if p, ok := batchPools[c].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, classSize(c))
}

// pooledClass returns the class of a buffer of that capacity, and whether
// it is one batchBuffer hands out (not one that grew, nor a large event's).
func pooledClass(capacity int) (int, bool) {
	c := batchClass(capacity)
	return c, classSize(c) == capacity
}

// recycleBatchBuffer takes back a buffer of batchBuffer once nothing uses
// it; other buffers are left to the garbage collector.
func recycleBatchBuffer(data []byte) {
	c, ok := pooledClass(cap(data))
	if !ok {
		return
	}
	data = data[:0]
	batchPools[c].Put(&data)
}

// fullHint is the room to give a snapshot batch of b: that of its table's
// last full batch and a sixteenth more (rows vary), or a full-size buffer
// before the first.
func (b *batchBuf) fullHint() int {
	if b.fullLen == 0 {
		return fullBatchSize
	}
	return b.fullLen + b.fullLen/16
}
