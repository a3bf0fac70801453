package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig sizes a pipeline stream.
type StreamConfig struct {
	// MaxBytes the stream may hold; the publisher waits when it is near full.
	MaxBytes int64
	// DuplicateWindow for message-id de-duplication.
	DuplicateWindow time.Duration
	// MaxInflightBytes the publisher may have in flight (sizes the margin).
	MaxInflightBytes int64
}

// StreamName is the JetStream stream of a pipeline.
func StreamName(pipeline string) string { return "TG_" + Token(pipeline) }

// DLQStreamName is the dead-letter stream of a pipeline (one subject per sink).
func DLQStreamName(pipeline string) string { return "TG_DLQ_" + Token(pipeline) }

// Subject is the subject of a table's events in a pipeline stream.
func Subject(pipeline, schema, table string) string {
	return "tg." + Token(pipeline) + ".ev." + Token(schema) + "." + Token(table)
}

// DLQSubject is the dead-letter subject of a sink in a pipeline.
func DLQSubject(pipeline, sink string) string {
	return "tg.dlq." + Token(pipeline) + "." + Token(sink)
}

// EnsurePipeline creates or updates the pipeline's event and DLQ streams.
func (b *Bus) EnsurePipeline(ctx context.Context, pipeline string, cfg StreamConfig) error {
	// The stream may hold a little more than MaxBytes: the publisher stops
	// when it sees the stream above MaxBytes, and the margin absorbs what is
	// in flight and published since its last look, so the server never has
	// to refuse a message (a refusal inside an async batch could reorder).
	limit := cfg.MaxBytes + max(cfg.MaxBytes/4, 2*cfg.MaxInflightBytes+2*roomCheckBytes(cfg.MaxBytes))
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName(pipeline),
		Description: "tidegate pipeline " + pipeline,
		Subjects:    []string{"tg." + Token(pipeline) + ".ev.>"},
		Storage:     jetstream.FileStorage,
		// Acknowledged messages are removed by Trim (trim.go), not one
		// by one as interest retention does. A stream created with
		// interest retention by an earlier version switches here.
		Retention:  jetstream.LimitsPolicy,
		MaxBytes:   limit,
		Discard:    jetstream.DiscardNew,
		Duplicates: cfg.DuplicateWindow,
		MaxMsgSize: MaxMessageBytes,
	})
	if err != nil {
		return fmt.Errorf("creating stream %s: %w", StreamName(pipeline), err)
	}
	_, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DLQStreamName(pipeline),
		Description: "tidegate dead-letter queue of pipeline " + pipeline,
		Subjects:    []string{"tg.dlq." + Token(pipeline) + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  cfg.DuplicateWindow,
		MaxMsgSize:  16 << 20,
	})
	if err != nil {
		return fmt.Errorf("creating stream %s: %w", DLQStreamName(pipeline), err)
	}
	return nil
}

// DeletePipeline removes the pipeline's streams (events, DLQ) and consumers.
func (b *Bus) DeletePipeline(ctx context.Context, pipeline string) error {
	for _, s := range []string{StreamName(pipeline), DLQStreamName(pipeline)} {
		if err := b.js.DeleteStream(ctx, s); err != nil && !IsNotFound(err) {
			return fmt.Errorf("deleting stream %s: %w", s, err)
		}
	}
	return nil
}

// StreamBytes returns the bytes currently stored in the pipeline stream.
func (b *Bus) StreamBytes(ctx context.Context, pipeline string) (uint64, error) {
	st, err := b.streamState(ctx, pipeline)
	return st.Bytes, err
}

func (b *Bus) streamState(ctx context.Context, pipeline string) (jetstream.StreamState, error) {
	// Stream fetches the stream's info: one request, not two.
	s, err := b.js.Stream(ctx, StreamName(pipeline))
	if err != nil {
		return jetstream.StreamState{}, err
	}
	return s.CachedInfo().State, nil
}

// FirstSeq returns the first sequence held by the pipeline stream.
func (b *Bus) FirstSeq(ctx context.Context, pipeline string) (uint64, error) {
	st, err := b.streamState(ctx, pipeline)
	return st.FirstSeq, err
}

// HasMsg reports whether the pipeline stream still holds sequence seq.
func (b *Bus) HasMsg(ctx context.Context, pipeline string, seq uint64) (bool, error) {
	s, err := b.js.Stream(ctx, StreamName(pipeline))
	if err != nil {
		return false, err
	}
	_, err = s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}
