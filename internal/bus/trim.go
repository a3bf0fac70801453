package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Trim removes from the pipeline stream the messages every consumer has
// acknowledged, when there are at least least (and at least one) of them,
// and returns how many sequences it removed.
//
// The stream has limits retention: acknowledging removes nothing, Trim
// does, a range at a time. Under interest retention the server removed
// each message as it was acknowledged: it loaded the message back (for its
// subject, to check the other consumers' interest) and cut it out of its
// block, reading the block from disk again when its cache was gone. That
// was ~10% of tidegate's CPU during a snapshot into Elasticsearch (make
// bench profile). A purge up to a sequence drops whole blocks at once.
// It still costs per message (bookkeeping, a tombstone) and holds the
// stream meanwhile: 5,000 small messages took 10–40 ms, during which
// publishing waits; least lets the caller purge small batches often.
//
// With no consumer, nothing is removed: a sink's consumer is created
// before the source publishes, and one that is gone keeps nothing.
// Consumers of sinks no longer configured still hold their messages, as
// they did under interest retention.
func (b *Bus) Trim(ctx context.Context, pipeline string, least uint64) (uint64, error) {
	s, err := b.js.Stream(ctx, StreamName(pipeline))
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", StreamName(pipeline), err)
	}
	first := s.CachedInfo().State.FirstSeq
	floor, n := uint64(0), 0
	consumers := s.ListConsumers(ctx)
	for info := range consumers.Info() {
		if n == 0 || info.AckFloor.Stream < floor {
			floor = info.AckFloor.Stream
		}
		n++
	}
	if err := consumers.Err(); err != nil {
		return 0, fmt.Errorf("listing the consumers of stream %s: %w", StreamName(pipeline), err)
	}
	if n == 0 || floor < first || floor+1-first < max(least, 1) {
		return 0, nil
	}
	// Everything up to the lowest acknowledged floor; the purge keeps the
	// sequence it is given.
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(floor+1)); err != nil {
		return 0, fmt.Errorf("removing acknowledged messages from stream %s: %w", StreamName(pipeline), err)
	}
	return floor + 1 - first, nil
}
