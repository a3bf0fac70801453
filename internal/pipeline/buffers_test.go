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
	if b := batchBuffer(fullBatchSize + 1); cap(b) < fullBatchSize+1 {
		t.Fatalf("batchBuffer above the full size: cap %d", cap(b))
	}
	// Only buffers of a class go back to a pool: one that grew past its
	// class would be handed out as a larger one than it is.
	for capacity, want := range map[int]bool{4 << 10: true, 5 << 10: false, 8 << 10: true, 512 << 10: false, fullBatchSize: true, fullBatchSize + 1: false} {
		if c, ok := pooledClass(capacity); ok != want || (ok && classSize(c) != capacity) {
			t.Errorf("pooledClass(%d) = %d, %v; want pooled %v", capacity, c, ok, want)
		}
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
