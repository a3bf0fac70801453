package event

import (
	"bytes"
	"math"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// UnmarshalBatch decodes an encoded Batch as (*Batch).UnmarshalVT does,
// for less: the events, rows, columns and scalar values of the usual shapes
// come from slabs (a few allocations per batch instead of about five per
// column), and every string is a substring of one copy of data. Anything
// else — a field the fast path does not know, a message-valued value, a
// malformed encoding — goes to the generated decoder, for that event or
// value or, at the batch level, for the whole batch, so the result is the
// same. The strings keep the copy of data alive while any of them is
// referenced.
func UnmarshalBatch(data []byte) (*Batch, error) {
	var d Decoder
	return d.Decode(bytes.Clone(data))
}

// Decoder decodes batches as UnmarshalBatch does, without its copy and
// into memory it hands out again after Reset: a consumer that knows when it
// is done with a batch decodes it for a fraction of the allocations (a
// sink's batch of 5,000 rows is otherwise ~7 MB of events, rows, columns and
// values for the collector). The zero Decoder is ready to use.
//
// The strings of a decoded batch are parts of data, which must not change
// while the batch is in use. Every batch decoded since the last Reset must
// be out of use when Reset is called.
type Decoder struct{ d decoder }

// Decode decodes data. The batch's strings share data's memory.
func (x *Decoder) Decode(data []byte) (*Batch, error) {
	b := x.d.batches.next()
	if !x.d.batch(data, b) {
		b = &Batch{}
		if err := b.UnmarshalVT(data); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Reset zeroes the events, rows, columns and values handed out since the
// last Reset and makes them available to the next Decode. It keeps at most
// decoderKeepItems of each kind, so that one huge batch does not pin its
// memory for as long as the Decoder lives.
func (x *Decoder) Reset() {
	d := &x.d
	d.events.reset()
	d.rows.reset()
	d.cols.reset()
	d.values.reset()
	d.ints.reset()
	d.uints.reset()
	d.floats.reset()
	d.bools.reset()
	d.texts.reset()
	d.decimals.reset()
	d.jsons.reset()
	d.stamps.reset()
	d.dates.reset()
	d.stampMsg.reset()
	d.dateMsg.reset()
	d.times.reset()
	d.timeMsg.reset()
	d.intervals.reset()
	d.intervalMsg.reset()
	d.lists.reset()
	d.listMsg.reset()
	d.valPtrs.reset()
	d.ptrs.reset()
	d.batches.reset()
	d.evPtrs.reset()
	d.names.reset()
	d.keyPos.reset()
	clear(d.encoded) // they point into the messages
	clear(d.colBytes)
	d.encoded, d.colBytes = d.encoded[:0], d.colBytes[:0]
}

// decoderKeepItems bounds what a slab keeps across Reset: 64 Ki items, a
// few MB for the larger kinds (a 64-byte Column: 4 MiB).
const decoderKeepItems = 64 << 10

// decoder is the state of a Decoder.
type decoder struct {
	events   slab[Event]
	rows     slab[Row]
	cols     slab[Column]
	values   slab[Value]
	ints     slab[Value_Int]
	uints    slab[Value_Uint]
	floats   slab[Value_Float]
	bools    slab[Value_Bool]
	texts    slab[Value_Text]
	decimals slab[Value_Decimal]
	jsons    slab[Value_Json]
	stamps   slab[Value_Timestamp]
	dates    slab[Value_Date]
	stampMsg slab[Timestamp]
	dateMsg  slab[Date]
	// Times, intervals and lists (arrays): a snapshot of a table with an
	// array and an interval column allocated ~1.4 values per row in the
	// generated decoder, half of a sink's allocations.
	times       slab[Value_Time]
	timeMsg     slab[Time]
	intervals   slab[Value_Interval]
	intervalMsg slab[Interval]
	lists       slab[Value_List]
	listMsg     slab[List]
	valPtrs     slab[*Value]  // chunks that lists' values are cut from
	ptrs        slab[*Column] // chunks that rows' and keys' column lists are cut from
	batches     slab[Batch]
	evPtrs      slab[*Event] // chunks that batches' event lists are cut from
	names       slab[string] // and their column templates
	keyPos      slab[uint32] // and their key columns

	// DecodeKeepingAfter's state: keepAfter leaves after rows encoded,
	// after is the encoded after row of the event being decoded, and
	// encoded lists the batch's (lazy.go).
	keepAfter bool
	after     []byte
	encoded   []EncodedRow
	colBytes  [][]byte // scratch: a row's columns
}

// slab hands out T's from chunks; a chunk stays alive as long as any of
// its items is referenced. Chunks grow from 1 item to 256, so that a batch
// of one event (a streamed transaction) does not allocate for hundreds.
// After reset, the chunks filled before are handed out again.
type slab[T any] struct {
	items []T   // the chunk being handed out
	full  [][]T // chunks handed out since the last reset
	spare [][]T // zeroed chunks to hand out
}

func (s *slab[T]) next() *T {
	if len(s.items) == cap(s.items) {
		s.grow(1)
	}
	s.items = s.items[:len(s.items)+1]
	return &s.items[len(s.items)-1]
}

// grow replaces the current chunk by one with room for at least n items.
func (s *slab[T]) grow(n int) {
	if cap(s.items) > 0 {
		s.full = append(s.full, s.items)
	}
	for len(s.spare) > 0 {
		c := s.spare[len(s.spare)-1]
		s.spare = s.spare[:len(s.spare)-1]
		if cap(c) >= n {
			s.items = c
			return
		}
	}
	s.items = make([]T, 0, max(n, min(256, max(1, 2*cap(s.items)))))
}

// reset zeroes what was handed out (dropping its references) and keeps up
// to decoderKeepItems of it for the next items.
func (s *slab[T]) reset() {
	if cap(s.items) > 0 {
		s.full = append(s.full, s.items)
		s.items = nil
	}
	kept := 0
	for _, c := range s.spare {
		kept += cap(c)
	}
	for i, c := range s.full {
		if kept+cap(c) <= decoderKeepItems {
			clear(c)
			s.spare = append(s.spare, c[:0])
			kept += cap(c)
		}
		s.full[i] = nil
	}
	s.full = s.full[:0]
}

// substr returns v, a part of the data being decoded, as a string sharing
// its memory.
func substr(v []byte) string {
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// field reads one field: its number, wire type, and its value's bytes
// (length-delimited) or number (varint, fixed64). ok is false on malformed
// input.
func field(b []byte) (num protowire.Number, typ protowire.Type, val []byte, x uint64, rest []byte, ok bool) {
	// Most fields have a one-byte tag (numbers 1-15) and a one-byte length
	// or varint (below 128): read those inline (field was ~40 % of the
	// decoding time through protowire's general functions).
	if len(b) >= 2 && b[0] < 0x80 && b[0] >= 8 && b[1] < 0x80 {
		num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		switch typ {
		case protowire.BytesType:
			if n := int(b[1]); n <= len(b)-2 {
				return num, typ, b[2 : 2+n : 2+n], 0, b[2+n:], true
			}
		case protowire.VarintType:
			return num, typ, nil, uint64(b[1]), b[2:], true
		}
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, 0, nil, false
	}
	b = b[n:]
	switch typ {
	case protowire.BytesType:
		val, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		x, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		x, n = protowire.ConsumeFixed64(b)
	default:
		return 0, 0, nil, 0, nil, false
	}
	if n < 0 {
		return 0, 0, nil, 0, nil, false
	}
	return num, typ, val, x, b[n:], true
}

// eachElement calls fn with the index and encoding of each element of b,
// a message of one repeated message field 1 (a Row's columns, a List's
// values). It returns false, having stopped, when fn does or when b holds
// anything else or is malformed.
func eachElement(b []byte, fn func(i int, val []byte) bool) bool {
	for i := 0; len(b) > 0; i++ {
		num, typ, val, _, rest, ok := field(b)
		if !ok || num != 1 || typ != protowire.BytesType || !fn(i, val) {
			return false
		}
		b = rest
	}
	return true
}

func (d *decoder) batch(b []byte, out *Batch) bool {
	// The lists are cut from chunks shared by the batches decoded until
	// Reset (-1: not started).
	evStart, nameStart, keyStart := -1, -1, -1
	defer func() {
		out.Events = cut(&d.evPtrs, evStart)
		out.Columns = cut(&d.names, nameStart)
		out.KeyColumns = cut(&d.keyPos, keyStart)
	}()
	for len(b) > 0 {
		num, typ, val, _, rest, ok := field(b)
		if !ok || typ != protowire.BytesType {
			return false
		}
		b = rest
		switch num {
		case 1:
			ev := d.events.next()
			d.after = nil
			if !d.event(val, ev) {
				*ev = Event{}
				d.after = nil // decoded in full
				if ev.UnmarshalVT(val) != nil {
					return false
				}
			}
			appendTo(&d.evPtrs, &evStart, ev)
			if d.keepAfter {
				d.encoded = append(d.encoded, EncodedRow{Data: d.after})
			}
		case 2:
			if out.Shared == nil { // seen twice, it merges (as the generated decoder does)
				out.Shared = d.events.next()
			}
			if out.Shared.UnmarshalVT(val) != nil {
				return false
			}
		case 3:
			appendTo(&d.names, &nameStart, substr(val))
		case 4: // packed key_columns
			for len(val) > 0 {
				p, n := protowire.ConsumeVarint(val)
				if n < 0 {
					return false
				}
				appendTo(&d.keyPos, &keyStart, uint32(p))
				val = val[n:]
			}
		default:
			return false
		}
	}
	return true
}

// event decodes the usual event fields; false sends the event to the
// generated decoder.
func (d *decoder) event(b []byte, ev *Event) bool {
	keyStart, keyDone := -1, false
	for len(b) > 0 {
		num, typ, val, x, rest, ok := field(b)
		if !ok {
			return false
		}
		b = rest
		if keyStart >= 0 && num != 8 {
			keyDone = true // the key's columns are contiguous (encoders write fields in order)
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			ev.Id = substr(val)
		case num == 2 && typ == protowire.VarintType:
			ev.Op = Op(int32(x))
		case num == 4 && typ == protowire.VarintType:
			ev.Version = x
		case num == 5 && typ == protowire.BytesType:
			ev.Position = substr(val)
		case num == 6 && typ == protowire.VarintType:
			ev.CommitTimeUs = int64(x)
		case num == 7 && typ == protowire.BytesType:
			ev.TxId = substr(val)
		case num == 8 && typ == protowire.BytesType && !keyDone:
			c := d.cols.next()
			if keyStart < 0 {
				keyStart = len(d.ptrs.items)
			}
			if !d.column(val, c) {
				return false
			}
			d.appendPtr(&keyStart, c)
			ev.Key = d.ptrs.items[keyStart:len(d.ptrs.items):len(d.ptrs.items)]
		case num == 10 && typ == protowire.BytesType && d.keepAfter:
			if d.after != nil || ev.After != nil {
				return false // twice: the generated decoder merges them
			}
			if val == nil {
				val = []byte{} // present, empty
			}
			d.after = val
		case (num == 9 || num == 10) && typ == protowire.BytesType:
			if (num == 9 && ev.Before != nil) || (num == 10 && ev.After != nil) {
				return false // twice: the generated decoder merges them (found by FuzzDecodeKeepingAfter)
			}
			r := d.rows.next()
			if !d.row(val, r) {
				return false
			}
			if num == 9 {
				ev.Before = r
			} else {
				ev.After = r
			}
		case num == 11 && typ == protowire.BytesType:
			ev.Unchanged = append(ev.Unchanged, substr(val))
		default:
			return false
		}
	}
	return true
}

// appendPtr appends c to the list that starts at *start in d.ptrs' chunk.
func (d *decoder) appendPtr(start *int, c *Column) { appendTo(&d.ptrs, start, c) }

// appendTo appends v to the list that starts at *start in p's chunk (-1:
// the list starts with v), moving the list to a new chunk when the current
// one is full.
func appendTo[T any](p *slab[T], start *int, v T) {
	if *start < 0 {
		*start = len(p.items)
	}
	if len(p.items) == cap(p.items) {
		list := p.items[*start:]
		p.grow(max(min(1024, 2*cap(p.items)), 8, 2*(len(list)+1)))
		p.items = append(p.items, list...)
		*start = 0
	}
	p.items = append(p.items, v)
}

// cut returns the list that starts at start in p's chunk and ends at its
// end (nil for -1), with no room to append into the chunk.
func cut[T any](p *slab[T], start int) []T {
	if start < 0 {
		return nil
	}
	n := len(p.items)
	return p.items[start:n:n]
}

func (d *decoder) row(b []byte, r *Row) bool {
	start := len(d.ptrs.items)
	ok := eachElement(b, func(_ int, val []byte) bool {
		c := d.cols.next()
		if !d.column(val, c) {
			return false
		}
		d.appendPtr(&start, c)
		return true
	})
	if !ok {
		return false
	}
	r.Columns = d.ptrs.items[start:len(d.ptrs.items):len(d.ptrs.items)]
	if len(r.Columns) == 0 {
		r.Columns = nil
	}
	return true
}

func (d *decoder) column(b []byte, c *Column) bool {
	for len(b) > 0 {
		num, typ, val, _, rest, ok := field(b)
		if !ok || typ != protowire.BytesType {
			return false
		}
		b = rest
		switch num {
		case 1:
			c.Name = substr(val)
		case 2:
			v := d.values.next()
			if !d.value(val, v) {
				*v = Value{}
				if v.UnmarshalVT(val) != nil {
					return false
				}
			}
			c.Value = v
		default:
			return false
		}
	}
	return true
}

// value decodes a scalar value; false for message-valued kinds (and
// anything unusual), which the generated decoder then reads.
func (d *decoder) value(b []byte, v *Value) bool {
	for len(b) > 0 {
		num, typ, val, x, rest, ok := field(b)
		if !ok {
			return false
		}
		b = rest
		switch {
		case num == 1 && typ == protowire.VarintType:
			k := d.bools.next()
			k.Bool = x != 0
			v.Kind = k
		case num == 2 && typ == protowire.VarintType:
			k := d.ints.next()
			k.Int = protowire.DecodeZigZag(x)
			v.Kind = k
		case num == 3 && typ == protowire.VarintType:
			k := d.uints.next()
			k.Uint = x
			v.Kind = k
		case num == 4 && typ == protowire.Fixed64Type:
			k := d.floats.next()
			k.Float = math.Float64frombits(x)
			v.Kind = k
		case num == 5 && typ == protowire.BytesType:
			k := d.decimals.next()
			k.Decimal = substr(val)
			v.Kind = k
		case num == 6 && typ == protowire.BytesType:
			k := d.texts.next()
			k.Text = substr(val)
			v.Kind = k
		case num == 12 && typ == protowire.BytesType:
			k := d.jsons.next()
			k.Json = substr(val)
			v.Kind = k
		case num == 8 && typ == protowire.BytesType && v.Kind == nil:
			// (A message field seen twice merges in the generated
			// decoder: left to it, as is one after another kind.)
			t := d.stampMsg.next()
			if !varintFields(val, t.setField) {
				return false
			}
			k := d.stamps.next()
			k.Timestamp = t
			v.Kind = k
		case num == 9 && typ == protowire.BytesType && v.Kind == nil:
			t := d.dateMsg.next()
			if !varintFields(val, t.setField) {
				return false
			}
			k := d.dates.next()
			k.Date = t
			v.Kind = k
		case num == 10 && typ == protowire.BytesType && v.Kind == nil:
			t := d.timeMsg.next()
			if !varintFields(val, t.setField) {
				return false
			}
			k := d.times.next()
			k.Time = t
			v.Kind = k
		case num == 11 && typ == protowire.BytesType && v.Kind == nil:
			t := d.intervalMsg.next()
			if !varintFields(val, t.setField) {
				return false
			}
			k := d.intervals.next()
			k.Interval = t
			v.Kind = k
		case num == 14 && typ == protowire.BytesType && v.Kind == nil:
			l := d.listMsg.next()
			if !d.list(val, l) {
				return false
			}
			k := d.lists.next()
			k.List = l
			v.Kind = k
		case num == 7 && typ == protowire.BytesType:
			v.Kind = &Value_Bytes{Bytes: append([]byte{}, val...)}
		case num == 13 && typ == protowire.BytesType:
			v.Kind = &Value_Uuid{Uuid: append([]byte{}, val...)}
		default:
			return false
		}
	}
	return true
}

// list decodes a List. Its values are counted first and their pointers
// reserved together, so that the values of a nested list (a
// multi-dimensional array) take the slots after them.
func (d *decoder) list(b []byte, l *List) bool {
	n := 0
	if !eachElement(b, func(int, []byte) bool { n++; return true }) {
		return false
	}
	if n == 0 {
		return true
	}
	ptrs := reserve(&d.valPtrs, n)
	for i := range ptrs {
		_, _, val, _, rest, _ := field(b)
		b = rest
		v := d.values.next()
		if !d.value(val, v) {
			return false
		}
		ptrs[i] = v
	}
	l.Values = ptrs
	return true
}

// reserve returns n consecutive items of p's chunk, with no room to append
// into the chunk.
func reserve[T any](p *slab[T], n int) []T {
	if cap(p.items)-len(p.items) < n {
		p.grow(max(n, min(1024, 2*cap(p.items)), 8))
	}
	at := len(p.items)
	p.items = p.items[:at+n]
	return p.items[at : at+n : at+n]
}

// varintFields reads a message whose fields are all varints, handing each
// to set, which reports false for a field it does not know.
func varintFields(b []byte, set func(num protowire.Number, x uint64) bool) bool {
	for len(b) > 0 {
		num, typ, _, x, rest, ok := field(b)
		if !ok || typ != protowire.VarintType || !set(num, x) {
			return false
		}
		b = rest
	}
	return true
}

func (t *Timestamp) setField(num protowire.Number, x uint64) bool {
	switch num {
	case 1:
		t.UnixMicros = int64(x)
	case 2:
		t.Local = x != 0
	case 3:
		t.Infinity = int32(x)
	default:
		return false
	}
	return true
}

func (t *Time) setField(num protowire.Number, x uint64) bool {
	switch num {
	case 1:
		t.Micros = int64(x)
	case 2:
		t.HasOffset = x != 0
	case 3:
		t.OffsetSeconds = int32(x)
	default:
		return false
	}
	return true
}

func (t *Interval) setField(num protowire.Number, x uint64) bool {
	switch num {
	case 1:
		t.Months = int32(x)
	case 2:
		t.Days = int32(x)
	case 3:
		t.Micros = int64(x)
	default:
		return false
	}
	return true
}

func (t *Date) setField(num protowire.Number, x uint64) bool {
	switch num {
	case 1:
		t.Days = int32(x)
	case 2:
		t.Infinity = int32(x)
	default:
		return false
	}
	return true
}
