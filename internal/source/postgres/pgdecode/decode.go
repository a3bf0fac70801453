package pgdecode

import (
	"fmt"

	"github.com/tidegate/tidegate/event"
)

// maxDepth bounds nesting (domains, arrays, composites inside each other).
const maxDepth = 32

// Decode converts one value in text format; text == nil is SQL NULL. Unknown
// types (never loaded, or without a specific parser) decode as text, never
// as an error; errors report malformed input as a *DecodeError naming the
// type. The result does not reference text.
func (t *Types) Decode(oid uint32, text []byte) (*event.Value, error) {
	return t.DecodeIn(nil, oid, text)
}

// DecodeIn is Decode with the value (when scalar) and its text in a: valid
// until a.Reset, and it may reference a's memory. A nil a is Decode.
func (t *Types) DecodeIn(a *Arena, oid uint32, text []byte) (*event.Value, error) {
	if text == nil {
		return a.null(), nil
	}
	ti := t.lookup(oid)
	v, err := t.decode(a, ti, text, 0)
	if err != nil {
		return nil, newDecodeError(t.TypeName(oid), text, err)
	}
	return v, nil
}

// decode converts non-NULL text of type ti (nil: unknown, decoded as text).
// Scalars go in a (nil: the heap); arrays, composites and hstore use the heap.
func (t *Types) decode(a *Arena, ti *typeInfo, text []byte, depth int) (*event.Value, error) {
	if ti == nil {
		return a.text(a.str(text)), nil
	}
	switch ti.kind {
	case kindText:
		return a.text(a.str(text)), nil
	case kindBool:
		b, err := parseBool(text)
		if err != nil {
			return nil, err
		}
		return a.bool(b), nil
	case kindInt:
		n, err := parseInt(text, 64)
		if err != nil {
			return nil, err
		}
		return a.int(n), nil
	case kindUint32:
		n, err := parseUint(text, 32)
		if err != nil {
			return nil, err
		}
		return a.int(int64(n)), nil
	case kindUint64:
		n, err := parseUint(text, 64)
		if err != nil {
			return nil, err
		}
		return newUint(n), nil
	case kindFloat4:
		f, err := parseFloat4(text)
		if err != nil {
			return nil, err
		}
		return a.float(f), nil
	case kindFloat8:
		f, err := parseFloat8(text)
		if err != nil {
			return nil, err
		}
		return a.float(f), nil
	case kindNumeric:
		if err := checkNumeric(text); err != nil {
			return nil, err
		}
		return a.decimal(a.str(text)), nil
	case kindMoney:
		s, err := parseMoney(text)
		if err != nil {
			return nil, err
		}
		return a.decimal(s), nil
	case kindBytea:
		b, err := parseBytea(text)
		if err != nil {
			return nil, err
		}
		return a.bytesValue(b), nil
	case kindTimestamptz, kindTimestamp:
		return decodeTimestamp(a, text, ti.kind == kindTimestamptz)
	case kindDate:
		d, inf, err := parseDate(text)
		if err != nil {
			return nil, err
		}
		return a.date(d, inf), nil
	case kindTime, kindTimetz:
		us, off, err := parseTime(text, ti.kind == kindTimetz)
		if err != nil {
			return nil, err
		}
		return newTime(us, ti.kind == kindTimetz, off), nil
	case kindInterval:
		mon, day, us, err := parseInterval(text)
		if err != nil {
			return nil, err
		}
		return a.interval(mon, day, us), nil
	case kindJSON:
		return a.json(a.str(text)), nil
	case kindUUID:
		u, err := parseUUID(text)
		if err != nil {
			return nil, err
		}
		return a.uuid(u), nil
	case kindPoint:
		x, y, err := parsePoint(text)
		if err != nil {
			return nil, err
		}
		return newDocument(pointFields, []*event.Value{newFloat(x), newFloat(y)}), nil
	case kindInt2Vector, kindOIDVector:
		ns, err := parseIntVector(text, ti.kind == kindOIDVector)
		if err != nil {
			return nil, err
		}
		vs := make([]*event.Value, len(ns))
		for i, n := range ns {
			vs[i] = newInt(n)
		}
		return newList(vs), nil
	case kindDomain:
		if depth >= maxDepth {
			return nil, fmt.Errorf("%w: types nested deeper than %d", ErrSyntax, maxDepth)
		}
		return t.decode(a, t.lookup(ti.base), text, depth+1)
	case kindArray:
		return t.decodeArray(ti, text, depth)
	case kindComposite:
		return t.decodeComposite(ti, text, depth)
	case kindHstore:
		return decodeHstore(text)
	}
	return a.text(a.str(text)), nil
}

var pointFields = []string{"x", "y"}

// resolve follows domains to the type that decides the parser.
func (t *Types) resolve(ti *typeInfo) *typeInfo {
	for i := 0; ti != nil && ti.kind == kindDomain && i < maxDepth; i++ {
		ti = t.lookup(ti.base)
	}
	return ti
}

// label returns the type name of ti for nested error messages.
func label(ti *typeInfo) string {
	if ti == nil {
		return "unknown"
	}
	return ti.label
}
