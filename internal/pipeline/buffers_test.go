package pipeline

import "testing"

// A batch buffer has room for what was asked, wastes less than half of it
// above smallBatchSize, and only buffers of a class go back to a pool.
func TestBatchBufferClasses(t *testing.T) {
	for _, n := range []int{0, 1, smallBatchSize, smallBatchSize + 1, 30 << 10, 256 << 10, 256<<10 + 1, batchMaxBytes, fullBatchSize} {
		b := batchBuffer(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("batchBuffer(%d): len %d cap %d", n, len(b), cap(b))
		}
		if n > smallBatchSize && n <= 256<<10 && cap(b) >= 2*n {
			t.Fatalf("batchBuffer(%d): cap %d, twice what was asked or more", n, cap(b))
		}
		if c := batchClass(cap(b)); classSize(c) != cap(b) {
			t.Fatalf("batchBuffer(%d): cap %d is not a class size", n, cap(b))
		}
	}
	// A buffer that grew past its class is left to the collector; a pool
	// would otherwise hand out a buffer smaller than its class promises.
	grown := append(make([]byte, 0, 5<<10), make([]byte, 5<<10)...)
	recycleBatchBuffer(grown)
	if b := batchBuffer(8 << 10); cap(b) < 8<<10 {
		t.Fatalf("class 8 KiB handed out a buffer of %d", cap(b))
	}
}

// The hint gives a table's next snapshot batch the room of its last full
// one, or a full-size buffer before the first.
func TestFullHint(t *testing.T) {
	b := &batchBuf{}
	if got := b.fullHint(); got != fullBatchSize {
		t.Fatalf("first hint %d, want %d", got, fullBatchSize)
	}
	b.fullLen = 30 << 10
	if got := cap(batchBuffer(b.fullHint())); got != 32<<10 {
		t.Fatalf("after a full batch of 30 KiB the next buffer holds %d, want 32 KiB", got)
	}
}
