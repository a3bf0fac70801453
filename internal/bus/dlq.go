package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a dead-letter message. The body is the original event bytes.
const (
	HeaderError           = "Tidegate-Error"
	HeaderAttempts        = "Tidegate-Attempts"
	HeaderSink            = "Tidegate-Sink"
	HeaderEventID         = "Tidegate-Event-Id"
	HeaderOriginalSubject = "Tidegate-Original-Subject"
	HeaderFailedAt        = "Tidegate-Failed-At"
	// HeaderReplaySink on a pipeline-stream message: a dead letter replayed
	// for this sink only; the other sinks acknowledge it without writing.
	HeaderReplaySink = "Tidegate-Replay-Sink"
)

// DeadLetter is one event a sink rejected.
type DeadLetter struct {
	Pipeline, Sink, EventID, Subject, Error string
	Attempts                                int
	Data                                    []byte
	// StreamSeq is the pipeline-stream sequence of the failed message: with
	// the event id it de-duplicates a dead letter written twice (a retried
	// DLQ write), but not the same event failing again after a replay.
	StreamSeq uint64
}

// PublishDLQ stores a dead letter durably (it returns once the bus has it).
func (b *Bus) PublishDLQ(ctx context.Context, d DeadLetter) error {
	msg := &nats.Msg{Subject: DLQSubject(d.Pipeline, d.Sink), Data: d.Data, Header: nats.Header{}}
	msg.Header.Set(HeaderError, d.Error)
	msg.Header.Set(HeaderAttempts, strconv.Itoa(d.Attempts))
	msg.Header.Set(HeaderSink, d.Sink)
	msg.Header.Set(HeaderEventID, d.EventID)
	msg.Header.Set(HeaderOriginalSubject, d.Subject)
	msg.Header.Set(HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID("dlq:"+d.Sink+":"+strconv.FormatUint(d.StreamSeq, 10)+":"+d.EventID)); err != nil {
		return fmt.Errorf("writing event %s to the dead-letter queue of sink %s: %w", d.EventID, d.Sink, err)
	}
	return nil
}

// DLQDepth returns the number of dead letters held for a pipeline's sink.
func (b *Bus) DLQDepth(ctx context.Context, pipeline, sink string) (uint64, error) {
	s, err := b.js.Stream(ctx, DLQStreamName(pipeline))
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(DLQSubject(pipeline, sink)))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[DLQSubject(pipeline, sink)], nil
}
