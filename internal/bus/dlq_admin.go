package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
)

// Operations on stored dead letters, for the admin API: list, get, discard
// and replay. A dead letter is identified by its pipeline and its sequence
// in the pipeline's dead-letter stream.

// ErrDeadLetterNotFound: no dead letter with that sequence (never stored,
// or already replayed or discarded).
var ErrDeadLetterNotFound = errors.New("dead letter not found")

// ErrNotReplayable: the dead letter's body is not a decodable event (for
// example a message the sink could not decode at all); it can only be
// discarded.
var ErrNotReplayable = errors.New("dead letter cannot be replayed")

// ErrStreamFull: the pipeline stream has no room for a replay (its sinks
// are behind); replay the rest later.
var ErrStreamFull = errors.New("the pipeline stream is full")

// StoredDeadLetter is one dead letter as stored in a pipeline's DLQ stream.
type StoredDeadLetter struct {
	Pipeline string
	// Seq is the sequence in the DLQ stream: the dead letter's id.
	Seq uint64
	// Sink, EventID, Error, Attempts, FailedAt and OriginalSubject come from
	// the headers written by PublishDLQ.
	Sink            string
	EventID         string
	Error           string
	Attempts        int
	FailedAt        time.Time
	OriginalSubject string
	// Data is the body: one encoded event.Event.
	Data []byte
}

// Event decodes the body.
func (d *StoredDeadLetter) Event() (*event.Event, error) {
	ev := &event.Event{}
	if err := proto.Unmarshal(d.Data, ev); err != nil {
		return nil, fmt.Errorf("%w: its body (%d bytes) is not an event: %v", ErrNotReplayable, len(d.Data), err)
	}
	if ev.GetId() == "" || ev.GetOrigin().GetTable() == "" {
		return nil, fmt.Errorf("%w: its body (%d bytes) is not an event (no id or table)", ErrNotReplayable, len(d.Data))
	}
	return ev, nil
}

// DLQFilter selects dead letters of one pipeline.
type DLQFilter struct {
	// Sink: only this sink's dead letters (empty: every sink).
	Sink string
	// From is the first sequence to consider (0 and 1: the beginning).
	From uint64
	// To is the last sequence to consider, inclusive (0: no bound).
	To uint64
}

func (f DLQFilter) subject(pipeline string) string {
	if f.Sink == "" {
		return "tg.dlq." + Token(pipeline) + ".>"
	}
	return DLQSubject(pipeline, f.Sink)
}

// ScanDLQ calls fn with each dead letter of the pipeline matching f, in
// sequence order, until fn returns false or an error (returned as is).
// It holds one dead letter at a time: a page or a bulk operation of any
// size runs in bounded memory. A pipeline without a DLQ stream yet has no
// dead letters.
func (b *Bus) ScanDLQ(ctx context.Context, pipeline string, f DLQFilter, fn func(StoredDeadLetter) (bool, error)) error {
	s, err := b.js.Stream(ctx, DLQStreamName(pipeline))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening the dead-letter stream %s: %w", DLQStreamName(pipeline), err)
	}
	subject := f.subject(pipeline)
	seq := max(f.From, 1)
	for f.To == 0 || seq <= f.To {
		// The server returns the first message at or after seq on the
		// subject, skipping other sinks' and deleted ones.
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the dead-letter stream %s at sequence %d: %w", DLQStreamName(pipeline), seq, err)
		}
		if f.To != 0 && raw.Sequence > f.To {
			return nil
		}
		more, err := fn(storedDeadLetter(pipeline, raw))
		if err != nil || !more {
			return err
		}
		seq = raw.Sequence + 1
	}
	return nil
}

// DLQLastSeq returns the last sequence ever stored in the pipeline's DLQ
// stream (0 when it has none): a bulk operation stops there, so dead
// letters added while it runs (a replay failing again) are left alone.
func (b *Bus) DLQLastSeq(ctx context.Context, pipeline string) (uint64, error) {
	s, err := b.js.Stream(ctx, DLQStreamName(pipeline))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("opening the dead-letter stream %s: %w", DLQStreamName(pipeline), err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the state of %s: %w", DLQStreamName(pipeline), err)
	}
	return info.State.LastSeq, nil
}

// DLQCount returns the number of dead letters of the pipeline, for one
// sink or (sink empty) every sink.
func (b *Bus) DLQCount(ctx context.Context, pipeline, sink string) (uint64, error) {
	s, err := b.js.Stream(ctx, DLQStreamName(pipeline))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("opening the dead-letter stream %s: %w", DLQStreamName(pipeline), err)
	}
	if sink == "" {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("reading the state of %s: %w", DLQStreamName(pipeline), err)
		}
		return info.State.Msgs, nil
	}
	subject := DLQSubject(pipeline, sink)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("reading the state of %s: %w", DLQStreamName(pipeline), err)
	}
	return info.State.Subjects[subject], nil
}

// GetDLQ returns one dead letter, or ErrDeadLetterNotFound.
func (b *Bus) GetDLQ(ctx context.Context, pipeline string, seq uint64) (StoredDeadLetter, error) {
	s, err := b.js.Stream(ctx, DLQStreamName(pipeline))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return StoredDeadLetter{}, fmt.Errorf("%w: pipeline %s has no dead-letter stream", ErrDeadLetterNotFound, pipeline)
	}
	if err != nil {
		return StoredDeadLetter{}, fmt.Errorf("opening the dead-letter stream %s: %w", DLQStreamName(pipeline), err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StoredDeadLetter{}, fmt.Errorf("%w: pipeline %s has no dead letter %d (already replayed or discarded?)", ErrDeadLetterNotFound, pipeline, seq)
	}
	if err != nil {
		return StoredDeadLetter{}, fmt.Errorf("reading dead letter %d of pipeline %s: %w", seq, pipeline, err)
	}
	return storedDeadLetter(pipeline, raw), nil
}

// DiscardDLQ deletes a dead letter for good (ErrDeadLetterNotFound when it
// is not there).
func (b *Bus) DiscardDLQ(ctx context.Context, pipeline string, seq uint64) error {
	if _, err := b.GetDLQ(ctx, pipeline, seq); err != nil {
		return err
	}
	if err := b.deleteDLQ(ctx, pipeline, seq); err != nil {
		return err
	}
	return nil
}

// deleteDLQ removes a dead letter; one already gone is not an error.
func (b *Bus) deleteDLQ(ctx context.Context, pipeline string, seq uint64) error {
	s, err := b.js.Stream(ctx, DLQStreamName(pipeline))
	if err != nil {
		return fmt.Errorf("opening the dead-letter stream %s: %w", DLQStreamName(pipeline), err)
	}
	err = s.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	// The server answers "no message found" in text only: look again.
	if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("deleting dead letter %d of pipeline %s: %w", seq, pipeline, err)
}

// ReplayDLQ sends a dead letter back to its sink: it publishes the event,
// unchanged (same id, same version), as a one-event batch on its subject of
// the pipeline stream with HeaderReplaySink = its sink, so only that sink
// writes it and the others acknowledge it without writing. The dead letter
// is deleted only once the bus acknowledged the publish; if the deletion
// fails the event may be replayed twice, which is harmless (writes are
// versioned: a replay can never overwrite a newer version).
//
// The message id is derived from the dead letter (not the event), so a
// replay repeated within the duplicate window is stored once, and an event
// dead-lettered again and replayed again is not mistaken for a duplicate.
func (b *Bus) ReplayDLQ(ctx context.Context, d StoredDeadLetter) error {
	ev, err := d.Event()
	if err != nil {
		return err
	}
	if d.Sink == "" {
		return fmt.Errorf("%w: it has no %s header", ErrNotReplayable, HeaderSink)
	}
	// Only a sink that still consumes the pipeline can take the replay;
	// otherwise the event would be acknowledged by the others and vanish.
	if _, err := b.js.Consumer(ctx, StreamName(d.Pipeline), ConsumerName(d.Sink)); err != nil {
		if IsNotFound(err) {
			return fmt.Errorf("%w: sink %s has no consumer on pipeline %s (is it still one of the pipeline's sinks, and has the pipeline run?)", ErrNotReplayable, d.Sink, d.Pipeline)
		}
		return fmt.Errorf("looking up the consumer of sink %s on pipeline %s: %w", d.Sink, d.Pipeline, err)
	}
	// An event.Batch is the concatenation of its events as field 1.
	body := protowire.AppendTag(make([]byte, 0, len(d.Data)+8), 1, protowire.BytesType)
	body = protowire.AppendBytes(body, d.Data)
	if err := b.replayRoom(ctx, d.Pipeline, len(body)); err != nil {
		return err
	}
	subject := d.OriginalSubject
	if !strings.HasPrefix(subject, "tg."+Token(d.Pipeline)+".ev.") {
		subject = Subject(d.Pipeline, ev.GetOrigin().GetSchema(), ev.GetOrigin().GetTable())
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderReplaySink, d.Sink)
	msg.Header.Set(HeaderEvents, "1")
	id := "replay:" + d.Pipeline + ":" + strconv.FormatUint(d.Seq, 10) + ":" + ev.GetId()
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamName(d.Pipeline))); err != nil {
		return fmt.Errorf("publishing dead letter %d (event %s) to %s: %w", d.Seq, ev.GetId(), subject, err)
	}
	if err := b.deleteDLQ(ctx, d.Pipeline, d.Seq); err != nil {
		return fmt.Errorf("event %s was replayed but is still in the dead-letter queue (replaying it again is harmless): %w", ev.GetId(), err)
	}
	return nil
}

// replayRoom refuses a replay that would fill the pipeline stream: the
// source's publisher counts on the stream's margin above bus.max_bytes
// for what it has in flight (see EnsurePipeline), so replays stop at four
// fifths of the stream's limit (bus.max_bytes with the default margin).
func (b *Bus) replayRoom(ctx context.Context, pipeline string, size int) error {
	s, err := b.js.Stream(ctx, StreamName(pipeline))
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", StreamName(pipeline), err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading the state of %s: %w", StreamName(pipeline), err)
	}
	if limit := info.Config.MaxBytes; limit > 0 && int64(info.State.Bytes)+int64(size) > limit/5*4 {
		return fmt.Errorf("%w (%d of %d bytes): its sinks are behind; replay the rest once they caught up (tidegate_bus_pending_messages)",
			ErrStreamFull, info.State.Bytes, limit)
	}
	return nil
}

func storedDeadLetter(pipeline string, raw *jetstream.RawStreamMsg) StoredDeadLetter {
	d := StoredDeadLetter{Pipeline: pipeline, Seq: raw.Sequence, Data: raw.Data}
	h := raw.Header
	d.Sink = h.Get(HeaderSink)
	if d.Sink == "" {
		// Written before the header existed: the subject names the sink token.
		d.Sink = raw.Subject[strings.LastIndexByte(raw.Subject, '.')+1:]
	}
	d.EventID = h.Get(HeaderEventID)
	d.Error = h.Get(HeaderError)
	d.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	d.OriginalSubject = h.Get(HeaderOriginalSubject)
	if t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderFailedAt)); err == nil {
		d.FailedAt = t
	} else {
		d.FailedAt = raw.Time
	}
	return d
}
