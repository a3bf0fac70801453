package pgdecode

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tidegate/tidegate/event"
)

// pgEpochDays is 2000-01-01, PostgreSQL's epoch for binary dates and
// timestamps, in days since 1970-01-01.
const pgEpochDays = 10957

// Binary reports whether DecodeBinaryIn reads the binary format of oid.
// Snapshot readers ask PostgreSQL for these columns in binary: formatting
// and parsing timestamps as text was the most expensive conversion on both
// sides (timestamptz_out alone made a COPY of a timestamp column 1.5 times
// slower than its binary form), and integers cost less too. The values are
// the same either way.
func Binary(oid uint32) bool {
	switch oid {
	case oidTimestamp, oidTimestamptz, oidDate, oidBool, oidInt2, oidInt4, oidInt8:
		return true
	}
	return false
}

const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
)

// DecodeBinaryIn is DecodeIn for the binary format of a type Binary
// accepts (nil raw is NULL).
func (t *Types) DecodeBinaryIn(a *Arena, oid uint32, raw []byte) (*event.Value, error) {
	if raw == nil {
		return a.null(), nil
	}
	v, err := decodeBinary(a, oid, raw)
	if err != nil {
		return nil, newDecodeError(t.TypeName(oid), []byte(fmt.Sprintf("binary %x", raw)), err)
	}
	return v, nil
}

func decodeBinary(a *Arena, oid uint32, raw []byte) (*event.Value, error) {
	switch oid {
	case oidBool:
		if len(raw) != 1 {
			return nil, syntaxf("binary bool of %d bytes, want 1", len(raw))
		}
		return a.bool(raw[0] != 0), nil
	case oidInt2:
		if len(raw) != 2 {
			return nil, syntaxf("binary int2 of %d bytes, want 2", len(raw))
		}
		return a.int(int64(int16(binary.BigEndian.Uint16(raw)))), nil
	case oidInt4:
		if len(raw) != 4 {
			return nil, syntaxf("binary int4 of %d bytes, want 4", len(raw))
		}
		return a.int(int64(int32(binary.BigEndian.Uint32(raw)))), nil
	case oidInt8:
		if len(raw) != 8 {
			return nil, syntaxf("binary int8 of %d bytes, want 8", len(raw))
		}
		return a.int(int64(binary.BigEndian.Uint64(raw))), nil
	case oidTimestamp, oidTimestamptz:
		if len(raw) != 8 {
			return nil, syntaxf("binary timestamp of %d bytes, want 8", len(raw))
		}
		us := int64(binary.BigEndian.Uint64(raw))
		withZone := oid == oidTimestamptz
		switch us {
		case math.MaxInt64:
			return a.timestamp(0, !withZone, 1), nil
		case math.MinInt64:
			return a.timestamp(0, !withZone, -1), nil
		}
		days := us / microsPerDay
		clock := us % microsPerDay
		if clock < 0 {
			days, clock = days-1, clock+microsPerDay
		}
		return timestampValue(a, days+pgEpochDays, clock, withZone)
	case oidDate:
		if len(raw) != 4 {
			return nil, syntaxf("binary date of %d bytes, want 4", len(raw))
		}
		d := int32(binary.BigEndian.Uint32(raw))
		switch d {
		case math.MaxInt32:
			return a.date(0, 1), nil
		case math.MinInt32:
			return a.date(0, -1), nil
		}
		n := int64(d) + pgEpochDays
		if n > math.MaxInt32 {
			return nil, ErrRange
		}
		return a.date(int32(n), 0), nil
	}
	return nil, fmt.Errorf("no binary decoder for type oid %d", oid)
}
