// Package sink defines what every sink implements. The consumer loop that
// feeds a sink from the bus, acknowledges and writes the DLQ lives in
// internal/pipeline; the sinks themselves live in sub-packages.
package sink

import (
	"context"
	"errors"

	"github.com/tidegate/tidegate/event"
)

// Writer applies batches of events to a target system.
//
// Write applies events in the given order for each document (events about
// different documents may be applied concurrently). It may be called
// concurrently for batches that have no document in common, and must then
// keep its own limits (requests in flight) across the calls. It retries retryable
// failures (rate limits, 5xx, timeouts, lost connections) itself, with
// backoff, until they succeed or ctx is done.
//
// It returns one result per event: nil when the event was applied or was
// stale (the target already holds a newer version: that counts as done), or
// a *PermanentError the caller must send to the dead-letter queue. A non-nil
// err means the batch was not durably applied: the caller must not
// acknowledge any of it and will deliver it again (writes are idempotent).
//
// Write must not keep the events, or anything reached from them, after it
// returns: the caller reuses their memory for the next batch. (Strings may
// be kept: they are never reused.)
//
// Close releases resources; Write must not be called after Close.
type Writer interface {
	Write(ctx context.Context, events []*event.Event) (results []error, err error)
	Close() error
}

// EncodedWriter is a Writer that also takes events whose after rows are
// still encoded: a sink that renders each row once (JSON) reads them with
// event.AppendEncodedRowJSON instead of having them decoded into Columns
// and Values first. The runner then decodes batches with
// (*event.Decoder).DecodeKeepingAfter.
type EncodedWriter interface {
	Writer
	// WriteEncoded is Write for events of which after[i].Data, when set,
	// holds the after row of events[i] (whose After is then nil).
	WriteEncoded(ctx context.Context, events []*event.Event, after []event.EncodedRow) (results []error, err error)
}

// PermanentError is a failure that retrying cannot fix (a mapping conflict,
// a document the target rejects). The event goes to the dead-letter queue
// with Reason.
type PermanentError struct {
	// Reason is the target's own error text, e.g.
	// "mapper_parsing_exception: failed to parse field [price] of type [long]".
	Reason string
	// Status is the target's status code when it has one (e.g. HTTP 400).
	Status int
}

func (e *PermanentError) Error() string { return e.Reason }

// IsPermanent reports whether err is (or wraps) a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
