package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerConfig sizes a sink's durable consumer.
type ConsumerConfig struct {
	// MaxAckPending bounds messages delivered but not yet acknowledged.
	MaxAckPending int
	// AckWait before the server redelivers an unacknowledged message; the
	// consumer loop extends it while a write is still retrying.
	AckWait time.Duration
}

// ConsumerName is the durable consumer of a sink.
func ConsumerName(sink string) string { return "sink_" + Token(sink) }

// EnsureConsumer creates or updates the durable consumer of a sink on the
// pipeline stream. Create consumers before the source publishes: Trim keeps
// messages only for the consumers that exist.
func (b *Bus) EnsureConsumer(ctx context.Context, pipeline, sink string, cfg ConsumerConfig) (jetstream.Consumer, error) {
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = 20000
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 2 * time.Minute
	}
	c, err := b.js.CreateOrUpdateConsumer(ctx, StreamName(pipeline), jetstream.ConsumerConfig{
		Durable:     ConsumerName(sink),
		Description: "tidegate sink " + sink,
		// Sinks apply in stream order, so acknowledging the last message of
		// a batch acknowledges the batch: one synchronous ack per batch.
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s on stream %s: %w", ConsumerName(sink), StreamName(pipeline), err)
	}
	return c, nil
}

// Pending returns the number of messages a sink has not yet acknowledged
// (waiting plus in flight).
func (b *Bus) Pending(ctx context.Context, pipeline, sink string) (uint64, error) {
	c, err := b.js.Consumer(ctx, StreamName(pipeline), ConsumerName(sink))
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}
