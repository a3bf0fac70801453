package elasticsearch

import (
	"context"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/tidegate/tidegate/event"
)

// maxIDBytes is Elasticsearch's limit on document ids.
const maxIDBytes = 512

// docKey identifies a document.
type docKey struct{ index, id string }

// doc is one document of a segment and the events about it, chained in
// arrival order.
type doc struct {
	key        docKey
	head, tail int32 // first and last event about the document
	cur        int32 // the event being applied; -1 when done
	// probed: the document was found absent and no tombstone says its
	// events are stale (toast.go).
	probed bool
}

// plan is a segment (events between truncates) collapsed per document.
type plan struct {
	events  []*event.Event
	results []error
	ops     []op    // per event; kind 0 for events rejected up front
	next    []int32 // next event about the same document, -1 at the end
	failed  []bool  // the event was rejected permanently
	docs    []doc
	byKey   map[docKey]int32 // index of each document in docs
	// storedDocBytes is the average size of the stored documents read
	// last to fill in unchanged TOAST columns (toast.go).
	storedDocBytes int64
}

// newPlan prepares every event and groups them per document. The plan's
// arrays come from s.plans (a snapshot allocated ~0.5 MB of them per
// batch of 5,000 rows, an eighth of tidegate's allocations); release gives
// them back.
func (s *Sink) newPlan(events []*event.Event, after []event.EncodedRow, results []error) *plan {
	p, _ := s.plans.Get().(*plan)
	if p == nil {
		p = &plan{byKey: make(map[docKey]int32)}
	}
	n := len(events)
	p.events, p.results = events, results
	p.ops = resize(p.ops, n)
	p.next = resize(p.next, n)
	p.failed = resize(p.failed, n)
	// Mostly one event per document.
	p.docs = slices.Grow(p.docs[:0], n)
	// Document ids are rendered in id, then copied once.
	var id idBuf
	var names originCache
	rows := false // an event has unchanged TOAST columns
	for i, e := range events {
		p.next[i] = -1
		var enc event.EncodedRow
		if after != nil {
			enc = after[i]
		}
		if err := s.prepare(e, enc, &p.ops[i], &id, &names); err != nil {
			results[i] = err
			p.failed[i] = true
			continue
		}
		rows = rows || len(p.ops[i].unchanged) > 0
		k := docKey{p.ops[i].index, p.ops[i].id}
		if d, ok := p.byKey[k]; ok {
			p.next[p.docs[d].tail] = int32(i)
			p.docs[d].tail = int32(i)
			continue
		}
		p.byKey[k] = int32(len(p.docs))
		p.docs = append(p.docs, doc{key: k, head: int32(i), tail: int32(i)})
	}
	for d := range p.docs {
		if rows {
			p.decodeRows(int32(d))
		}
		p.docs[d].cur = p.pick(int32(d))
	}
	return p
}

// decodeRows decodes the encoded rows of the events about document d when
// one of them has unchanged TOAST columns: toast.go fills those in from
// the rows of the others. A row that does not decode rejects its event.
func (p *plan) decodeRows(d int32) {
	fill := false
	for i := p.docs[d].head; i >= 0 && !fill; i = p.next[i] {
		fill = len(p.ops[i].unchanged) > 0
	}
	for i := p.docs[d].head; fill && i >= 0; i = p.next[i] {
		if o := &p.ops[i]; o.row == nil && o.enc.Data != nil && !p.failed[i] {
			row, err := o.enc.Decode()
			if err != nil {
				p.results[i], p.failed[i] = permanent("the event's row does not decode: %v", err), true
				continue
			}
			o.row, o.enc = row, event.EncodedRow{}
		}
	}
}

// release gives p's arrays back for the next plan, keeping nothing of the
// events; a plan of more than maxPooledPlan events is left to the garbage
// collector.
func (s *Sink) release(p *plan) {
	if cap(p.ops) > maxPooledPlan {
		return
	}
	clear(p.ops)
	clear(p.docs)
	clear(p.byKey)
	*p = plan{ops: p.ops[:0], next: p.next[:0], failed: p.failed[:0], docs: p.docs[:0], byKey: p.byKey}
	s.plans.Put(p)
}

// maxPooledPlan is the largest plan (in events) kept for reuse: a few
// batches of the default size.
const maxPooledPlan = 4 * 5000

// resize returns s with length n and zero values, reusing its array when
// it is large enough.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// originCache remembers the index of the last origin seen: a batch's
// events share their Origin (event.Batch.Expand), so one lookup serves
// them all.
type originCache struct {
	origin *event.Origin
	index  string
}

// pick returns the event to apply for document d: the highest version not
// rejected yet, the last one among equal versions; -1 when none is left.
func (p *plan) pick(d int32) int32 {
	best := int32(-1)
	for i := p.docs[d].head; i >= 0; i = p.next[i] {
		if p.failed[i] {
			continue
		}
		if best < 0 || p.ops[i].version >= p.ops[best].version {
			best = i
		}
	}
	return best
}

// reject records a permanent failure of the current event of d and moves
// on to the next best one. It reports whether d has an event left to apply.
func (p *plan) reject(d int32, err error) bool {
	cur := p.docs[d].cur
	p.results[cur] = err
	p.failed[cur] = true
	p.docs[d].cur = p.pick(d)
	return p.docs[d].cur >= 0
}

// rejectAll rejects every event of d.
func (p *plan) rejectAll(d int32, err error) {
	for i := p.docs[d].head; i >= 0; i = p.next[i] {
		if !p.failed[i] {
			p.results[i] = err
			p.failed[i] = true
		}
	}
	p.docs[d].cur = -1
}

// prepare turns an event into an operation, or rejects it with a permanent
// error when it cannot be written.
func (s *Sink) prepare(e *event.Event, enc event.EncodedRow, o *op, id *idBuf, names *originCache) error {
	if e == nil {
		return permanent("nil event")
	}
	switch e.GetOp() {
	case event.Op_OP_INSERT, event.Op_OP_UPDATE, event.Op_OP_SNAPSHOT:
		o.kind = opIndex
		if e.GetAfter() == nil && enc.Data == nil {
			return permanent("%s event has no after row", event.OpName(e.GetOp()))
		}
		o.row, o.enc = e.GetAfter(), enc
		// Columns the source did not send (unchanged TOAST values) are
		// filled in from the batch or the index before the operation is
		// sent (toast.go): writing the row without them would erase them.
		o.unchanged = e.GetUnchanged()
	case event.Op_OP_DELETE:
		o.kind = opDelete
	default:
		return permanent("unsupported op %s (%d)", event.OpName(e.GetOp()), e.GetOp())
	}
	if len(e.GetKey()) == 0 {
		return permanent("event has no key: the document id comes from the primary key (give the table a primary key or a replica identity index)")
	}
	if e.GetVersion() > math.MaxInt64 {
		return permanent("version %d is larger than Elasticsearch's maximum external version %d", e.GetVersion(), int64(math.MaxInt64))
	}
	o.version = e.GetVersion()
	if origin := e.GetOrigin(); origin != names.origin || origin == nil {
		index, err := s.namer.name(origin)
		if err != nil {
			return err
		}
		names.origin, names.index = origin, index
	}
	o.index = names.index
	o.id = id.render(e.GetKey())
	switch {
	case o.id == "":
		return permanent("the key renders an empty document id, which Elasticsearch does not accept")
	case len(o.id) > maxIDBytes:
		return permanent("the document id is %d bytes long; Elasticsearch accepts at most %d", len(o.id), maxIDBytes)
	}
	return nil
}

// idBuf renders document ids and copies them into shared append-only
// chunks: one allocation per hundred ids or so instead of one each (the
// ids were a third of a sink's allocations during a snapshot). A chunk is
// never written again where a string points into it, so the ids are as
// immutable as any string; a chunk lives as long as one of its ids does.
type idBuf struct {
	scratch []byte
	chunk   []byte
}

// idChunk is the size of an id chunk; longer ids get their own allocation.
const idChunk = 8 << 10

func (b *idBuf) render(key []*event.Column) string {
	b.scratch = event.AppendDocumentID(b.scratch[:0], key)
	n := len(b.scratch)
	switch {
	case n == 0:
		return ""
	case n > idChunk/8:
		return string(b.scratch)
	case cap(b.chunk)-len(b.chunk) < n:
		b.chunk = make([]byte, 0, idChunk)
	}
	at := len(b.chunk)
	b.chunk = append(b.chunk, b.scratch...)
	return unsafe.String(&b.chunk[at], n)
}

// applySegment applies the events of one segment: rounds of bulk requests
// until every document has an outcome. Items that fail with a retryable
// error are sent again in the next round, after a backoff; since every
// document has at most one operation in flight, retrying cannot reorder.
func (s *Sink) applySegment(ctx context.Context, events []*event.Event, after []event.EncodedRow, results []error) error {
	if len(events) == 0 {
		return nil
	}
	p := s.newPlan(events, after, results)
	defer s.release(p)
	pending := make([]int32, 0, len(p.docs))
	for d := range p.docs {
		if p.docs[d].cur >= 0 {
			pending = append(pending, int32(d))
		}
	}
	itemAttempt := 0
	for len(pending) > 0 {
		var later []int32 // documents whose TOAST values wait for a later round
		var err error
		if pending, later, err = s.fillUnchanged(ctx, p, pending); err != nil {
			return err
		}
		if pending, err = s.ensureIndexes(ctx, p, pending); err != nil {
			return err
		}
		b := requestBuilder{pool: &s.bufs, maxBytes: s.cfg.BulkMaxBytes, maxActions: s.requestActions(len(pending))}
		for _, d := range pending {
			for p.docs[d].cur >= 0 {
				if len(p.ops[p.docs[d].cur].unchanged) > 0 {
					later = append(later, d) // the next best event needs filling in
					break
				}
				if err := b.add(&p.ops[p.docs[d].cur], d); err == nil {
					break
				} else if !p.reject(d, err) {
					break
				}
			}
		}
		reqs := b.finish()
		out, err := s.execute(ctx, reqs)
		if err != nil {
			for _, r := range reqs {
				b.release(r)
			}
			return err
		}
		pending = pending[:0]
		var retried int
		var lastErr error
		for ri, r := range reqs {
			for j, res := range out[ri] {
				d := r.tags[j]
				switch res.outcome {
				case itemOK:
					p.ops[p.docs[d].cur].row = nil // values filled in by toast.go can go
					p.docs[d].cur = -1
				case itemRetry, itemIndexMissing:
					if res.outcome == itemIndexMissing {
						s.indexes.forget(p.docs[d].key.index)
					}
					pending = append(pending, d)
					retried++
					lastErr = res.err
				case itemPermanent:
					if p.reject(d, res.err) {
						pending = append(pending, d)
					}
				}
			}
			b.release(r)
		}
		pending = append(pending, later...)
		if retried > 0 {
			itemAttempt++
			s.metrics.retries.WithLabelValues("item").Add(float64(retried - 1))
			re := &requestError{Cause: "item", Reason: lastErr.Error()}
			if err := s.retryWait(ctx, "bulk items", itemAttempt, re); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureIndexes makes sure the indexes of the pending documents exist,
// retrying until they do. Documents whose index can never be created are
// rejected and dropped from the returned pending list.
func (s *Sink) ensureIndexes(ctx context.Context, p *plan, pending []int32) ([]int32, error) {
	var names []string
	for _, d := range pending {
		name := p.docs[d].key.index
		if !s.indexes.isKnown(name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		for attempt := 1; ; attempt++ {
			f := s.indexes.ensure(ctx, name)
			if f == nil {
				break
			}
			if f.permanentErr != nil {
				kept := pending[:0]
				for _, d := range pending {
					if p.docs[d].key.index == name {
						p.rejectAll(d, f.permanentErr)
					} else {
						kept = append(kept, d)
					}
				}
				pending = kept
				break
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("creating index %s: %w", name, ctx.Err())
			}
			re := f.req
			if f.config {
				re = &requestError{Status: f.req.Status, Reason: f.Error(), Cause: "index_config"}
			}
			if err := s.retryWait(ctx, "creating index "+name, attempt, re); err != nil {
				return nil, err
			}
		}
	}
	return pending, nil
}

// minSplitActions is the smallest request the sink splits a batch into to
// use its concurrency: below it, one request costs less than two.
const minSplitActions = 256

// requestActions is the most operations per request for n operations: the
// configured maximum, lowered so that a large batch spreads over the
// request slots free when it is sent (each document appears once per
// batch, so splitting cannot reorder writes to one document). Slots taken
// by other writes are not counted: under a backlog the runner keeps
// several batches in flight, which fill the slots with one request each.
// Splitting those as well only doubled the requests (a 1M-row snapshot:
// ~440 requests of ~2,300 documents, against the bulk loader's 200 of
// 5,000), and each request costs the cluster (Elasticsearch used 8 % more
// CPU than for the loader's requests).
func (s *Sink) requestActions(n int) int {
	free := max(s.cfg.Concurrency-len(s.requests), 1)
	per := (n + free - 1) / free
	return min(s.cfg.BulkMaxActions, max(per, minSplitActions))
}
