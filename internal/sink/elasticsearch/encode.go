package elasticsearch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/tidegate/tidegate/event"
)

// opKind is the bulk action of an operation.
type opKind uint8

const (
	opIndex  opKind = iota + 1 // full document, external_gte version
	opDelete                   // delete, external_gte version
	// opProbe is a delete with version_type=external (strictly greater):
	// sent only for a document known to be absent, it answers 409 when a
	// delete of the same or a newer version is remembered (a tombstone;
	// index.gc_deletes, 60 s by default), i.e. an event is stale (toast.go).
	opProbe
)

// op is one bulk operation.
type op struct {
	kind    opKind
	index   string
	id      string
	version uint64
	row     *event.Row       // the document of an index operation
	enc     event.EncodedRow // or its encoding, when row is nil
	// unchanged lists columns the source did not send (unchanged TOAST
	// values) that row still lacks; toast.go fills them in before the
	// operation may be encoded.
	unchanged []string
}

// appendOp appends the NDJSON lines of o to b: the action line, written by
// hand, and for an index operation the document. It fails (leaving b as it
// was) when the document is not valid JSON and cannot be made one line.
func appendOp(b []byte, o *op) ([]byte, error) {
	start := len(b)
	if o.kind == opDelete || o.kind == opProbe {
		b = append(b, `{"delete":{"_index":`...)
	} else {
		b = append(b, `{"index":{"_index":`...)
	}
	b = event.AppendString(b, o.index)
	b = append(b, `,"_id":`...)
	b = event.AppendString(b, o.id)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, o.version, 10)
	if o.kind == opProbe {
		return append(b, ",\"version_type\":\"external\"}}\n"...), nil
	}
	b = append(b, ",\"version_type\":\"external_gte\"}}\n"...)
	if o.kind == opDelete {
		return b, nil
	}
	if len(o.unchanged) > 0 {
		// Never reached (fillUnchanged runs first); writing the row would
		// erase the columns from the document.
		return b[:start], permanent("unchanged TOAST columns %q were not filled in", o.unchanged)
	}
	doc := len(b)
	if o.row != nil {
		b = event.AppendRowJSON(b, o.row)
	} else {
		var ok bool
		if b, ok = event.AppendEncodedRowJSON(b, o.enc.Data, o.enc.Names); !ok {
			// A shape the fast path does not read.
			row, err := o.enc.Decode()
			if err != nil {
				return b[:start], permanent("the event's row does not decode: %v", err)
			}
			b = event.AppendRowJSON(b, row)
		}
	}
	// AppendRowJSON copies json values verbatim, and PostgreSQL's json type
	// keeps the text as entered, newlines included: a newline would end the
	// NDJSON line in the middle of the document.
	if bytes.IndexByte(b[doc:], '\n') >= 0 {
		var compact bytes.Buffer
		if err := json.Compact(&compact, b[doc:]); err != nil {
			return b[:start], permanent("the document is not valid JSON: %v", err)
		}
		b = append(b[:doc], compact.Bytes()...)
	}
	return append(b, '\n'), nil
}

// bulkRequest is one bulk request body and what each of its operations is.
type bulkRequest struct {
	buf   *[]byte  // pooled backing array of body
	body  []byte   // NDJSON
	offs  []int    // start of each operation in body, plus len(body)
	kinds []opKind // kind of each operation
	tags  []int32  // the caller's reference of each operation
}

func (r *bulkRequest) len() int { return len(r.kinds) }

// part returns the body of operations [lo, hi).
func (r *bulkRequest) part(lo, hi int) []byte { return r.body[r.offs[lo]:r.offs[hi]] }

// bufferPool recycles request bodies between writes.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (p *bufferPool) put(b *[]byte, maxBytes int) {
	if cap(*b) > 2*maxBytes+(1<<20) {
		return // one huge document: do not keep its buffer
	}
	*b = (*b)[:0]
	p.pool.Put(b)
}

// requestBuilder encodes operations into bulk requests of at most maxBytes
// bytes (a single larger operation gets a request of its own) and
// maxActions operations.
type requestBuilder struct {
	pool       *bufferPool
	maxBytes   int
	maxActions int
	reqs       []*bulkRequest
}

// add encodes o, tagged with the caller's reference. On error nothing is
// added.
func (b *requestBuilder) add(o *op, tag int32) error {
	cur := b.current()
	if cur.len() >= b.maxActions {
		cur = b.start()
	}
	start := len(cur.body)
	body, err := appendOp(cur.body, o)
	if err != nil {
		cur.body = body
		return err
	}
	if len(body) > b.maxBytes && cur.len() > 0 {
		// Move the operation that overflows into a new request.
		cur.body = body[:start]
		next := b.start()
		next.body = append(next.body, body[start:]...)
		cur = next
		start = 0
	} else {
		cur.body = body
	}
	cur.offs[len(cur.offs)-1] = start
	cur.offs = append(cur.offs, len(cur.body))
	cur.kinds = append(cur.kinds, o.kind)
	cur.tags = append(cur.tags, tag)
	return nil
}

func (b *requestBuilder) current() *bulkRequest {
	if len(b.reqs) == 0 {
		return b.start()
	}
	return b.reqs[len(b.reqs)-1]
}

func (b *requestBuilder) start() *bulkRequest {
	buf := b.pool.get()
	r := &bulkRequest{buf: buf, body: (*buf)[:0], offs: []int{0}}
	b.reqs = append(b.reqs, r)
	return r
}

// finish returns the non-empty requests.
func (b *requestBuilder) finish() []*bulkRequest {
	out := b.reqs[:0]
	for _, r := range b.reqs {
		if r.len() > 0 {
			out = append(out, r)
		} else {
			b.release(r)
		}
	}
	b.reqs = nil
	return out
}

// release returns the body buffer of r to the pool.
func (b *requestBuilder) release(r *bulkRequest) {
	if r.buf != nil {
		*r.buf = r.body
		b.pool.put(r.buf, b.maxBytes)
		r.buf, r.body = nil, nil
	}
}
