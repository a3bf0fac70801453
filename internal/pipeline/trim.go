package pipeline

import (
	"context"
	"time"
)

// trimInterval is how often a pipeline removes from its stream what every
// sink acknowledged (bus.Trim). What waits meanwhile is what the sinks
// acknowledged in that time: a few MiB at snapshot speed.
const trimInterval = time.Second

// trim runs bus.Trim every trimInterval until ctx is done.
func (p *Pipeline) trim(ctx context.Context) {
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	var warned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := p.bus.Trim(ctx, p.set.Name)
		if err != nil && ctx.Err() == nil && time.Since(warned) > time.Minute {
			warned = time.Now()
			p.log.Warn("cannot remove acknowledged messages from the bus stream: it keeps them until this works (the source waits when the stream is full)",
				"pipeline", p.set.Name, "error", err)
		}
	}
}
