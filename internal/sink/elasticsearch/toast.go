package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/event"
)

// Unchanged TOAST values. PostgreSQL leaves a large out-of-line value that
// an UPDATE did not change out of the new row (unless the table has REPLICA
// IDENTITY FULL); the event lists the column in Unchanged. Indexing the row
// as it is would erase the field, the update API that could merge it cannot
// be combined with external versions, and scripted updates need painless,
// which not every cluster has. So the sink completes the document and then
// writes it like any other, with version_type=external_gte:
//
//  1. from the batch: the latest earlier event about the document (by
//     version, then arrival) that carries the column;
//  2. otherwise from the index: the stored documents are read with _mget
//     (real time, so the writes of earlier batches are seen without a
//     refresh). If the stored version is not newer than the event's, the
//     value is copied; if it is newer, the event is stale (result nil, as
//     for a 409); if the document is absent, a probe asks whether it was
//     deleted by a newer event (below); if it was not, or the field is
//     missing, the event gets a PermanentError that says how to avoid it
//     (dead-letter queue).
//
// The probe: a document can be absent because a newer delete was applied
// already, when events are delivered again after a crash (the first run
// applied a batch holding the update and a later delete of the row, and
// did not acknowledge it; the second run's batch ends between the two).
// The update is then stale, not an error. The sink sends a delete with
// version_type=external (strictly greater) and the event's version: the
// cluster answers 409 when it remembers a delete of the same or a newer
// version (tombstones are kept for index.gc_deletes, 60 s by default, and
// not across a restart of the cluster). Otherwise the delete finds nothing
// and leaves a tombstone at the event's version, which only rejects older
// writes of a document that is absent anyway.
//
// Copying from the index is race-free: this sink is the only writer of the
// document while the batch is applied, and the write that follows still
// carries the event's version, so it cannot overwrite a newer document.
//
// The whole _source is fetched, not only the needed fields: source
// filtering makes the cluster re-encode the values it returns, which turns
// 1.50 into 1.5 and 12345678901234567890.1 into 1.2345678901234567E19,
// while an unfiltered _source comes back byte for byte as it was written.
//
// Memory stays bounded: documents are fetched in waves of cfg.Concurrency
// _mget requests of at most toastFetchDocs documents (and bulk_max_actions);
// a round of bulk requests takes fetched documents only until about
// bulk_max_bytes × concurrency bytes were read (waves shrink to what the
// documents read so far say fits), and the other documents wait for the next
// round, after the values of the previous one were written and dropped.

// toastFetchDocs is the most documents per _mget request.
const toastFetchDocs = 100

// Outcomes of a document with unchanged TOAST columns (label "outcome").
const (
	toastFromBatch = "batch"
	toastFromIndex = "index"
	toastStale     = "stale"
	toastMissing   = "missing"
)

// storedDoc is what _mget found for a document.
type storedDoc struct {
	found        bool
	indexMissing bool
	version      uint64
	source       map[string]json.RawMessage // top-level fields, verbatim
	err          *esError                   // a permanent error reading it
}

// fillState is the outcome of completing one document.
type fillState uint8

const (
	fillReady fillState = iota // the current operation can be sent
	fillDone                   // nothing left to send (stale, or every event rejected)
	fillFetch                  // the stored document is needed
	fillProbe                  // the stored document is absent: probe for a newer delete
)

// fillUnchanged completes the current operations of the pending documents
// that lack unchanged TOAST columns. It returns the documents to send now
// (pending, filtered in place) and those left for a later round; it fails
// only when ctx is done.
func (s *Sink) fillUnchanged(ctx context.Context, p *plan, pending []int32) (ready, later []int32, err error) {
	ready = pending[:0]
	var fetch []int32
	for _, d := range pending {
		if p.docs[d].cur < 0 || len(p.ops[p.docs[d].cur].unchanged) == 0 {
			ready = append(ready, d)
			continue
		}
		switch s.complete(p, d, nil) {
		case fillReady:
			ready = append(ready, d)
		case fillFetch:
			fetch = append(fetch, d)
		}
	}
	budget := int64(s.cfg.BulkMaxBytes) * int64(s.cfg.Concurrency)
	var read int64
	for len(fetch) > 0 {
		if read >= budget {
			later = append(make([]int32, 0, len(fetch)), fetch...)
			break
		}
		// A wave is cfg.Concurrency requests of at most chunk documents,
		// fewer when the documents seen so far say they would not fit in
		// what is left of the budget.
		chunk := min(toastFetchDocs, s.cfg.BulkMaxActions)
		n := chunk * s.cfg.Concurrency
		if p.storedDocBytes > 0 {
			n = int(min(int64(n), max((budget-read)/p.storedDocBytes, 1)))
		}
		wave := fetch[:min(len(fetch), n)]
		fetch = fetch[len(wave):]
		stored := make([]*storedDoc, len(wave))
		got, err := s.fetchStored(ctx, p, wave, stored, min(chunk, (len(wave)+s.cfg.Concurrency-1)/s.cfg.Concurrency))
		if err != nil {
			return nil, nil, err
		}
		read += got
		p.storedDocBytes = max(got/int64(len(wave)), 1)
		var probe []int32
		var probeStored []*storedDoc
		for i, d := range wave {
			switch s.complete(p, d, stored[i]) {
			case fillReady:
				ready = append(ready, d)
			case fillProbe:
				probe, probeStored = append(probe, d), append(probeStored, stored[i])
			}
		}
		if len(probe) == 0 {
			continue
		}
		stale, err := s.probeDeleted(ctx, p, probe)
		if err != nil {
			return nil, nil, err
		}
		for i, d := range probe {
			if stale[i] {
				s.metrics.toast.WithLabelValues(toastStale).Inc()
				p.docs[d].cur = -1
				continue
			}
			p.docs[d].probed = true
			if s.complete(p, d, probeStored[i]) == fillReady {
				ready = append(ready, d)
			}
		}
	}
	return ready, later, nil
}

// probeDeleted reports, for each document (absent from its index), whether
// the cluster remembers a delete of it with the version of its current
// event or a newer one: see the probe above.
func (s *Sink) probeDeleted(ctx context.Context, p *plan, docs []int32) ([]bool, error) {
	ops := make([]op, len(docs))
	for i, d := range docs {
		o := &p.ops[p.docs[d].cur]
		ops[i] = op{kind: opProbe, index: o.index, id: o.id, version: o.version}
	}
	stale := make([]bool, len(docs))
	err := s.sendUntilSettled(ctx, "probing for deleted documents", ops, func(i int32, res opResult) bool {
		// Anything but a 409 or a retryable failure (not found, a missing
		// index, a permanent failure): no newer delete is known.
		stale[i] = res.outcome == itemStale
		return res.outcome == itemRetry
	})
	return stale, err
}

// complete fills the current operation of document d from the batch and,
// when stored is given, from the stored document. A current event that
// cannot be completed is rejected and the next best one is tried.
func (s *Sink) complete(p *plan, d int32, stored *storedDoc) fillState {
	for {
		c := p.docs[d].cur
		if c < 0 {
			return fillDone
		}
		o := &p.ops[c]
		if len(o.unchanged) == 0 {
			return fillReady
		}
		vals, missing, err := p.valuesFromBatch(d, c)
		if err != nil {
			s.metrics.toast.WithLabelValues(toastMissing).Inc()
			p.reject(d, err)
			continue
		}
		from := toastFromBatch
		if missing > 0 {
			if stored == nil {
				return fillFetch
			}
			from = toastFromIndex
			if stored.found && stored.version > o.version {
				// The index holds a newer version: this event and the
				// older ones of the batch are stale.
				s.metrics.toast.WithLabelValues(toastStale).Inc()
				p.docs[d].cur = -1
				return fillDone
			}
			if !stored.found && !stored.indexMissing && stored.err == nil && !p.docs[d].probed {
				return fillProbe
			}
			if err := fillFromStored(p, c, vals, stored); err != nil {
				s.metrics.toast.WithLabelValues(toastMissing).Inc()
				p.reject(d, err)
				continue
			}
		}
		s.metrics.toast.WithLabelValues(from).Inc()
		cols := make([]*event.Column, 0, len(o.row.GetColumns())+len(o.unchanged))
		cols = append(cols, o.row.GetColumns()...)
		for i, name := range o.unchanged {
			cols = append(cols, &event.Column{Name: name, Value: vals[i]})
		}
		o.row = &event.Row{Columns: cols}
		o.unchanged = nil
		return fillReady
	}
}

// valuesFromBatch finds the values of the unchanged columns of event c (the
// current event of document d) in the events about d that come before it:
// for each column, the latest earlier event (highest version, then latest
// arrival) that carries it. Events that list the column as unchanged too
// are skipped (the value did not change in between). vals is aligned with
// the operation's unchanged list; missing counts the nil entries, to be
// taken from the index. A delete later than every event carrying a column
// makes the value unknowable: that is a permanent error.
func (p *plan) valuesFromBatch(d, c int32) (vals []*event.Value, missing int, err error) {
	o := &p.ops[c]
	vals = make([]*event.Value, len(o.unchanged))
	for k, name := range o.unchanged {
		best, lastDelete := int32(-1), int32(-1)
		for i := p.docs[d].head; i >= 0; i = p.next[i] {
			if i == c || !p.earlier(i, c) {
				continue
			}
			if p.ops[i].kind == opDelete {
				if lastDelete < 0 || p.earlier(lastDelete, i) {
					lastDelete = i
				}
				continue
			}
			if v := columnValue(p.ops[i].row, name); v != nil && (best < 0 || p.earlier(best, i)) {
				best, vals[k] = i, v
			}
		}
		switch {
		case lastDelete >= 0 && (best < 0 || p.earlier(best, lastDelete)):
			return nil, 0, toastError(p.events[c], o, []string{name}, false,
				"the row was deleted earlier in the batch, and no later event carries the value")
		case best < 0:
			missing++
		}
	}
	return vals, missing, nil
}

// earlier reports whether event i precedes event j in the row's history:
// a lower version, or the same version and an earlier arrival.
func (p *plan) earlier(i, j int32) bool {
	vi, vj := p.ops[i].version, p.ops[j].version
	return vi < vj || (vi == vj && i < j)
}

// columnValue returns the value of a column of r, nil when r lacks it.
func columnValue(r *event.Row, name string) *event.Value {
	for _, col := range r.GetColumns() {
		if col.GetName() == name {
			if col.GetValue() == nil {
				return event.Null()
			}
			return col.GetValue()
		}
	}
	return nil
}

// fillFromStored sets the nil entries of vals from the stored document.
// The stored JSON is kept verbatim (a json value is written as it is).
func fillFromStored(p *plan, c int32, vals []*event.Value, stored *storedDoc) error {
	o := &p.ops[c]
	if stored.err != nil {
		return toastError(p.events[c], o, missingNames(o.unchanged, vals), false,
			"reading the stored document failed: "+stored.err.String())
	}
	if !stored.found {
		why := "the document is not there"
		if stored.indexMissing {
			why = "the index does not exist"
		}
		return toastError(p.events[c], o, missingNames(o.unchanged, vals), true, why)
	}
	var absent []string
	for k, name := range o.unchanged {
		if vals[k] != nil {
			continue
		}
		raw, ok := stored.source[name]
		if !ok {
			absent = append(absent, name)
			continue
		}
		vals[k] = event.JSON(string(raw))
	}
	if len(absent) > 0 {
		return toastError(p.events[c], o, absent, true, fmt.Sprintf(
			"the stored document (version %d) has no such field: is it excluded from _source in the mapping?", stored.version))
	}
	return nil
}

func missingNames(names []string, vals []*event.Value) []string {
	var out []string
	for k, name := range names {
		if vals[k] == nil {
			out = append(out, name)
		}
	}
	return out
}

// toastError is the PermanentError of an event whose unchanged columns
// cannot be filled in, with the way to avoid it: either they are not in the
// index (why says what was found there), or the batch makes them unknowable.
func toastError(e *event.Event, o *op, cols []string, notInIndex bool, why string) error {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = strconv.Quote(c)
	}
	subject, verb, pronoun := "column "+quoted[0], "is", "it"
	if len(cols) > 1 {
		subject, verb, pronoun = "columns "+strings.Join(quoted, ", "), "are", "them"
	}
	table := e.GetOrigin().GetTable()
	if s := e.GetOrigin().GetSchema(); s != "" {
		table = s + "." + table
	}
	problem := fmt.Sprintf("cannot be filled in (%s)", why)
	if notInIndex {
		problem = fmt.Sprintf("%s not in index %s (%s)", verb, o.index, why)
	}
	return permanent("unchanged TOAST %s of document %s %s; set REPLICA IDENTITY FULL on %s so that PostgreSQL sends %s",
		subject, o.id, problem, table, pronoun)
}

// mgetResponse is the answer of _mget. Sources are decoded field by field,
// each kept verbatim.
type mgetResponse struct {
	Docs []struct {
		ID      string                     `json:"_id"`
		Version int64                      `json:"_version"`
		Found   bool                       `json:"found"`
		Source  map[string]json.RawMessage `json:"_source"`
		Error   *esError                   `json:"error"`
	} `json:"docs"`
}

// fetchStored reads the stored documents of docs into stored (aligned with
// docs), in _mget requests of at most chunk documents, cfg.Concurrency at a
// time. It returns the bytes read and fails only when ctx is done.
func (s *Sink) fetchStored(ctx context.Context, p *plan, docs []int32, stored []*storedDoc, chunk int) (int64, error) {
	var read atomic.Int64
	var g errgroup.Group
	g.SetLimit(s.cfg.Concurrency)
	for lo := 0; lo < len(docs); lo += chunk {
		hi := min(lo+chunk, len(docs))
		g.Go(func() error {
			return s.mget(ctx, p, docs[lo:hi], stored[lo:hi], &read)
		})
	}
	err := g.Wait()
	return read.Load(), err
}

// mget reads the stored documents of docs with one _mget request, retrying
// the request, and the documents that fail with a transient error.
func (s *Sink) mget(ctx context.Context, p *plan, docs []int32, stored []*storedDoc, read *atomic.Int64) error {
	const what = "reading documents to fill in unchanged TOAST columns"
	todo := make([]int, len(docs))
	for i := range todo {
		todo[i] = i
	}
	var body []byte
	for attempt := 1; ; attempt++ {
		body = append(body[:0], `{"docs":[`...)
		for i, k := range todo {
			if i > 0 {
				body = append(body, ',')
			}
			key := p.docs[docs[k]].key
			body = append(body, `{"_index":`...)
			body = event.AppendString(body, key.index)
			body = append(body, `,"_id":`...)
			body = event.AppendString(body, key.id)
			body = append(body, '}')
		}
		body = append(body, "]}"...)
		_, resBody, err := s.call(ctx, what, func(ctx context.Context) (*response, error) {
			return s.backend.mget(ctx, body)
		})
		if err != nil {
			return err
		}
		read.Add(int64(len(resBody)))
		var res mgetResponse
		re := &requestError{Cause: "bad_response"}
		switch err := json.Unmarshal(resBody, &res); {
		case err != nil:
			re.Reason = fmt.Sprintf("decoding _mget response: %v", err)
		case len(res.Docs) != len(todo):
			re.Reason = fmt.Sprintf("_mget response has %d documents for %d requested", len(res.Docs), len(todo))
		default:
			re = nil
		}
		if re == nil {
			var retry []int
			for i, k := range todo {
				doc := &res.Docs[i]
				switch {
				case doc.ID != p.docs[docs[k]].key.id:
					re = &requestError{Cause: "bad_response", Reason: fmt.Sprintf("_mget response has document %q where %q was requested", doc.ID, p.docs[docs[k]].key.id)}
				case doc.Error != nil:
					switch classifyGetError(doc.Error) {
					case itemIndexMissing:
						stored[k] = &storedDoc{indexMissing: true}
					case itemRetry:
						retry = append(retry, k)
						re = &requestError{Cause: "item", Reason: doc.Error.String()}
					default:
						stored[k] = &storedDoc{err: doc.Error}
					}
				default:
					stored[k] = &storedDoc{found: doc.Found, version: uint64(max(doc.Version, 0)), source: doc.Source}
				}
				if re != nil && re.Cause == "bad_response" {
					break
				}
			}
			if re == nil {
				return nil
			}
			if re.Cause == "item" {
				todo = retry
			}
		}
		if err := s.retryWait(ctx, what, attempt, re); err != nil {
			return err
		}
	}
}
