package pgdecode

import "github.com/tidegate/tidegate/event"

// Single-allocation value constructors. The event constructors allocate the
// Value and its oneof wrapper (and the inner message) separately; here they
// share one allocation, which halves allocations on the hot path. The
// result is an ordinary *event.Value: the enclosing struct only keeps the
// parts alive together.

type boolBox struct {
	v event.Value
	k event.Value_Bool
}

func newBool(b bool) *event.Value {
	x := &boolBox{k: event.Value_Bool{Bool: b}}
	x.v.Kind = &x.k
	return &x.v
}

type intBox struct {
	v event.Value
	k event.Value_Int
}

func newInt(i int64) *event.Value {
	x := &intBox{k: event.Value_Int{Int: i}}
	x.v.Kind = &x.k
	return &x.v
}

// set initialises a box in place (for slabs of array elements).
func (x *intBox) set(i int64) *event.Value {
	x.k.Int = i
	x.v.Kind = &x.k
	return &x.v
}

type uintBox struct {
	v event.Value
	k event.Value_Uint
}

func newUint(u uint64) *event.Value {
	x := &uintBox{k: event.Value_Uint{Uint: u}}
	x.v.Kind = &x.k
	return &x.v
}

type floatBox struct {
	v event.Value
	k event.Value_Float
}

func newFloat(f float64) *event.Value {
	x := &floatBox{k: event.Value_Float{Float: f}}
	x.v.Kind = &x.k
	return &x.v
}

func (x *floatBox) set(f float64) *event.Value {
	x.k.Float = f
	x.v.Kind = &x.k
	return &x.v
}

type decimalBox struct {
	v event.Value
	k event.Value_Decimal
}

func newDecimal(s string) *event.Value {
	x := &decimalBox{k: event.Value_Decimal{Decimal: s}}
	x.v.Kind = &x.k
	return &x.v
}

type textBox struct {
	v event.Value
	k event.Value_Text
}

func newText(s string) *event.Value {
	x := &textBox{k: event.Value_Text{Text: s}}
	x.v.Kind = &x.k
	return &x.v
}

type bytesBox struct {
	v event.Value
	k event.Value_Bytes
}

func newBytes(b []byte) *event.Value {
	x := &bytesBox{k: event.Value_Bytes{Bytes: b}}
	x.v.Kind = &x.k
	return &x.v
}

type jsonBox struct {
	v event.Value
	k event.Value_Json
}

func newJSON(s string) *event.Value {
	x := &jsonBox{k: event.Value_Json{Json: s}}
	x.v.Kind = &x.k
	return &x.v
}

type uuidBox struct {
	v event.Value
	k event.Value_Uuid
	b [16]byte
}

func newUUID(u [16]byte) *event.Value {
	x := &uuidBox{b: u}
	x.k.Uuid = x.b[:]
	x.v.Kind = &x.k
	return &x.v
}

type timestampBox struct {
	v event.Value
	k event.Value_Timestamp
	t event.Timestamp
}

func newTimestamp(us int64, local bool, inf int32) *event.Value {
	x := &timestampBox{}
	x.t.UnixMicros, x.t.Local, x.t.Infinity = us, local, inf
	x.k.Timestamp = &x.t
	x.v.Kind = &x.k
	return &x.v
}

type dateBox struct {
	v event.Value
	k event.Value_Date
	d event.Date
}

func newDate(days int32, inf int32) *event.Value {
	x := &dateBox{}
	x.d.Days, x.d.Infinity = days, inf
	x.k.Date = &x.d
	x.v.Kind = &x.k
	return &x.v
}

type timeBox struct {
	v event.Value
	k event.Value_Time
	t event.Time
}

func newTime(us int64, hasOffset bool, offset int32) *event.Value {
	x := &timeBox{}
	x.t.Micros, x.t.HasOffset, x.t.OffsetSeconds = us, hasOffset, offset
	x.k.Time = &x.t
	x.v.Kind = &x.k
	return &x.v
}

type intervalBox struct {
	v event.Value
	k event.Value_Interval
	i event.Interval
}

func newInterval(months, days int32, us int64) *event.Value {
	x := &intervalBox{}
	x.i.Months, x.i.Days, x.i.Micros = months, days, us
	x.k.Interval = &x.i
	x.v.Kind = &x.k
	return &x.v
}

type listBox struct {
	v event.Value
	k event.Value_List
	l event.List
}

func newList(vs []*event.Value) *event.Value {
	x := &listBox{}
	x.l.Values = vs
	x.k.List = &x.l
	x.v.Kind = &x.k
	return &x.v
}

type documentBox struct {
	v event.Value
	k event.Value_Document
	r event.Row
}

// newDocument returns a document with the given column names and values;
// the columns share one allocation.
func newDocument(names []string, vals []*event.Value) *event.Value {
	x := &documentBox{}
	cols := make([]event.Column, len(names))
	ptrs := make([]*event.Column, len(names))
	for i := range cols {
		cols[i].Name, cols[i].Value = names[i], vals[i]
		ptrs[i] = &cols[i]
	}
	x.r.Columns = ptrs
	x.k.Document = &x.r
	x.v.Kind = &x.k
	return &x.v
}
