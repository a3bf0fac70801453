package event

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// AppendEncodedRowJSON appends the JSON object of enc, the encoding of a Row message
// (the bytes of an Event's before/after field), exactly as AppendRowJSON renders the
// decoded row after (*Batch).Expand named its columns. names are the batch's column
// names (Batch.Columns, may be nil): when the row is encoded by position — it has
// exactly len(names) > 0 columns and its first column has no name — column i is
// rendered with names[i] (whatever name it has), as nameColumns does; otherwise each column
// renders with its own name ("" when it has none).
// ok is false, and b is returned unchanged (same length), when enc holds anything
// the fast path does not read: an unknown field number or wire type, a field that
// appears twice where the generated decoder would merge or override (a column's name or
// value twice, a value with two kinds, a Timestamp/Date/Time/Interval field twice, ...),
// or a malformed encoding. The caller then decodes the row and uses AppendRowJSON.
//
// It allocates nothing beyond growing b: a sink renders each row without
// the Row, Column and Value objects (and their garbage) of a decoding.
func AppendEncodedRowJSON(b, enc []byte, names []string) (out []byte, ok bool) {
	if !byPosition(enc, names) {
		names = nil
	}
	out, ok = appendEncodedRow(b, enc, names)
	if !ok {
		return b, false
	}
	return out, true
}

// byPosition reports whether nameColumns would give the row enc the names:
// exactly len(names) > 0 columns, the first without a name (or with an
// empty one). It only looks; a malformed row fails later, when rendered
// or decoded.
func byPosition(enc []byte, names []string) bool {
	if len(names) == 0 {
		return false
	}
	var first []byte
	n := 0
	for ; len(enc) > 0; n++ {
		_, _, val, _, rest, ok := field(enc)
		if !ok {
			return false
		}
		if n == 0 {
			first = val
		}
		enc = rest
	}
	if n != len(names) {
		return false
	}
	var name []byte // the last one wins, as in the generated decoder
	for len(first) > 0 {
		num, typ, val, _, rest, ok := field(first)
		if !ok {
			return false
		}
		if num == 1 && typ == protowire.BytesType {
			name = val
		}
		first = rest
	}
	return len(name) == 0
}

// appendEncodedRow renders a Row message, naming column i names[i] when
// names is not nil. On false, b holds a partial rendering.
func appendEncodedRow(b, enc []byte, names []string) ([]byte, bool) {
	b = append(b, '{')
	ok := eachElement(enc, func(i int, col []byte) bool {
		if i > 0 {
			b = append(b, ',')
		}
		name, value, ok := columnFields(col)
		if !ok {
			return false
		}
		if names != nil {
			name = names[i] // byPosition counted the columns
		}
		b = AppendString(b, name)
		b = append(b, ':')
		b, ok = appendEncodedValue(b, value)
		return ok
	})
	if !ok {
		return b, false
	}
	return append(b, '}'), true
}

// columnFields splits a Column message into its name and its value's
// encoding (empty for a column without value: NULL, as is an empty
// Value). The fields may come in any order; either one twice is refused,
// since the generated decoder would keep the last name and merge the
// values.
func columnFields(enc []byte) (name string, value []byte, ok bool) {
	var hasName, hasValue bool
	for len(enc) > 0 {
		num, typ, val, _, rest, ok := field(enc)
		if !ok || typ != protowire.BytesType {
			return "", nil, false
		}
		switch {
		case num == 1 && !hasName:
			name, hasName = substr(val), true
		case num == 2 && !hasValue:
			value, hasValue = val, true
		default:
			return "", nil, false
		}
		enc = rest
	}
	return name, value, true
}

// appendEncodedValue renders a Value message as AppendValueJSON renders
// its decoding. A value is one field, its kind: several (two kinds, or
// one twice, which the generated decoder overrides or merges) are refused.
// A present zero (int 0, text "") is still that kind.
func appendEncodedValue(b, enc []byte) ([]byte, bool) {
	if len(enc) == 0 {
		return append(b, "null"...), true
	}
	num, typ, val, x, rest, ok := field(enc)
	if !ok || len(rest) > 0 || typ != valueWireType(num) {
		return b, false
	}
	switch num {
	case 1:
		return strconv.AppendBool(b, x != 0), true
	case 2:
		return strconv.AppendInt(b, protowire.DecodeZigZag(x), 10), true
	case 3:
		return strconv.AppendUint(b, x, 10), true
	case 4:
		return appendFloat(b, math.Float64frombits(x)), true
	case 5:
		return appendDecimal(b, substr(val)), true
	case 6:
		return AppendString(b, substr(val)), true
	case 7:
		return appendBytes(b, val), true
	case 8:
		var t Timestamp
		ok = smallMessage(val, t.setField)
		return appendTimestamp(b, &t), ok
	case 9:
		var d Date
		ok = smallMessage(val, d.setField)
		return appendDate(b, &d), ok
	case 10:
		var t Time
		ok = smallMessage(val, t.setField)
		return appendTime(b, &t), ok
	case 11:
		var i Interval
		ok = smallMessage(val, i.setField)
		return appendInterval(b, &i), ok
	case 12:
		return appendJSONText(b, substr(val)), true
	case 13:
		return appendUUID(b, val), true
	case 14:
		return appendEncodedList(b, val)
	case 15:
		return appendEncodedRow(b, val, nil) // a document's columns keep their names
	}
	return b, false
}

// valueWireType is the wire type of Value's field num (-1, matching no
// wire type, for an unknown field).
func valueWireType(num protowire.Number) protowire.Type {
	switch {
	case num >= 1 && num <= 3:
		return protowire.VarintType
	case num == 4:
		return protowire.Fixed64Type
	case num >= 5 && num <= 15:
		return protowire.BytesType
	}
	return -1
}

// appendEncodedList renders a List message: its values, NULLs and nested
// lists included.
func appendEncodedList(b, enc []byte) ([]byte, bool) {
	b = append(b, '[')
	ok := eachElement(enc, func(i int, val []byte) bool {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		b, ok = appendEncodedValue(b, val)
		return ok
	})
	if !ok {
		return b, false
	}
	return append(b, ']'), true
}

// smallMessage decodes a Timestamp, Date, Time or Interval with its
// setField, as the slab decoder does, refusing a field seen twice (which
// the generated decoder would override: refused rather than reasoned
// about).
func smallMessage(enc []byte, set func(num protowire.Number, x uint64) bool) bool {
	var seen uint64
	return varintFields(enc, func(num protowire.Number, x uint64) bool {
		// set knows fields 1 to 3 only, so the bit is in range.
		if !set(num, x) || seen&(1<<num) != 0 {
			return false
		}
		seen |= 1 << num
		return true
	})
}
