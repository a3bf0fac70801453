package pipeline

import (
	"context"
	"time"
)

// How a pipeline removes from its stream what every sink acknowledged
// (bus.Trim): it looks every trimCheck, and purges once trimBatch
// messages are acknowledged, or whatever there is after trimMaxWait. A
// purge holds the stream while it works per message (5,000 one-row
// transactions took 10–40 ms, and publishing waited meanwhile: the p99
// latency at 5,000 events/s suffered), so streamed transactions are purged
// a few hundred at a time; a snapshot's few large messages once a second.
const (
	trimCheck   = 100 * time.Millisecond
	trimBatch   = 256
	trimMaxWait = time.Second
)

// trim runs bus.Trim until ctx is done.
func (p *Pipeline) trim(ctx context.Context) {
	t := time.NewTicker(trimCheck)
	defer t.Stop()
	var warned time.Time
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		least := uint64(trimBatch)
		if time.Since(last) >= trimMaxWait {
			least = 1
		}
		n, err := p.bus.Trim(ctx, p.set.Name, least)
		if err != nil && ctx.Err() == nil && time.Since(warned) > time.Minute {
			warned = time.Now()
			p.log.Warn("cannot remove acknowledged messages from the bus stream: it keeps them until this works (the source waits when the stream is full)",
				"pipeline", p.set.Name, "error", err)
		}
		if n > 0 || least == 1 {
			last = time.Now()
		}
	}
}
