package pgdecode

import (
	"unsafe"

	"github.com/tidegate/tidegate/event"
)

// Arena recycles the values of one row for the next: a snapshot reader
// decodes millions of rows whose events are encoded, then dropped, one at a
// time, and allocating each value (and copying its text) was most of the
// per-row cost. Values decoded into an arena are valid only until its next
// Reset. Strings are still copied to the heap (a string pointing into a
// reused buffer would change under anyone who kept it, proto.Clone
// included), and so are arrays, composites and hstore. A nil *Arena
// allocates everything: Decode's behaviour.
type Arena struct {
	texts      slab[textBox]
	ints       slab[intBox]
	floats     slab[floatBox]
	bools      slab[boolBox]
	decimals   slab[decimalBox]
	jsons      slab[jsonBox]
	timestamps slab[timestampBox]
	dates      slab[dateBox]
	intervals  slab[intervalBox]
	uuids      slab[uuidBox]
	bytes      slab[bytesBox]
	nulls      slab[event.Value]
	// strs is the current chunk strings are copied into (see str).
	strs []byte
}

// strChunk is the size of a string chunk; strings longer than an eighth
// of it get their own allocation.
const strChunk = 8 << 10

// str copies b into a string. Short strings share append-only chunks
// instead of costing an allocation each; a chunk is never written again
// once a string points into it (Reset leaves it), so the strings stay valid
// and immutable for as long as anything holds them, like any Go string. A
// nil arena allocates.
func (a *Arena) str(b []byte) string {
	if a == nil || len(b) == 0 || len(b) > strChunk/8 {
		return string(b)
	}
	if cap(a.strs)-len(a.strs) < len(b) {
		a.strs = make([]byte, 0, strChunk)
	}
	at := len(a.strs)
	a.strs = append(a.strs, b...)
	return unsafe.String(&a.strs[at], len(b))
}

// Reset makes the arena's values available again; values decoded before
// must not be used any more.
func (a *Arena) Reset() {
	a.texts.n, a.ints.n, a.floats.n, a.bools.n, a.decimals.n = 0, 0, 0, 0, 0
	a.jsons.n, a.timestamps.n, a.dates.n, a.uuids.n, a.bytes.n, a.nulls.n = 0, 0, 0, 0, 0, 0
	a.intervals.n = 0
}

// slab hands out T's from an array it reuses after a reset. When it is
// full it starts a larger one; values in the old one stay valid (they keep
// it alive) until no longer referenced.
type slab[T any] struct {
	items []T
	n     int
}

func (s *slab[T]) next() *T {
	if s.n == len(s.items) {
		s.items = make([]T, max(16, 2*len(s.items)))
		s.n = 0
	}
	p := &s.items[s.n]
	s.n++
	var zero T
	*p = zero
	return p
}

func (a *Arena) text(s string) *event.Value {
	if a == nil {
		return newText(s)
	}
	x := a.texts.next()
	x.k.Text = s
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) int(i int64) *event.Value {
	if a == nil {
		return newInt(i)
	}
	return a.ints.next().set(i)
}

func (a *Arena) float(f float64) *event.Value {
	if a == nil {
		return newFloat(f)
	}
	return a.floats.next().set(f)
}

func (a *Arena) bool(b bool) *event.Value {
	if a == nil {
		return newBool(b)
	}
	x := a.bools.next()
	x.k.Bool = b
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) decimal(s string) *event.Value {
	if a == nil {
		return newDecimal(s)
	}
	x := a.decimals.next()
	x.k.Decimal = s
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) json(s string) *event.Value {
	if a == nil {
		return newJSON(s)
	}
	x := a.jsons.next()
	x.k.Json = s
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) timestamp(us int64, local bool, inf int32) *event.Value {
	if a == nil {
		return newTimestamp(us, local, inf)
	}
	x := a.timestamps.next()
	x.t.UnixMicros, x.t.Local, x.t.Infinity = us, local, inf
	x.k.Timestamp = &x.t
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) date(days, inf int32) *event.Value {
	if a == nil {
		return newDate(days, inf)
	}
	x := a.dates.next()
	x.d.Days, x.d.Infinity = days, inf
	x.k.Date = &x.d
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) interval(months, days int32, us int64) *event.Value {
	if a == nil {
		return newInterval(months, days, us)
	}
	x := a.intervals.next()
	x.i.Months, x.i.Days, x.i.Micros = months, days, us
	x.k.Interval = &x.i
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) uuid(u [16]byte) *event.Value {
	if a == nil {
		return newUUID(u)
	}
	x := a.uuids.next()
	x.b = u
	x.k.Uuid = x.b[:]
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) bytesValue(b []byte) *event.Value {
	if a == nil {
		return newBytes(b)
	}
	x := a.bytes.next()
	x.k.Bytes = b
	x.v.Kind = &x.k
	return &x.v
}

func (a *Arena) null() *event.Value {
	if a == nil {
		return event.Null()
	}
	return a.nulls.next()
}
