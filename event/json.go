package event

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendRowJSON appends r as a JSON object, columns in row order.
func AppendRowJSON(b []byte, r *Row) []byte {
	b = append(b, '{')
	for i, c := range r.GetColumns() {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, c.Name)
		b = append(b, ':')
		b = AppendValueJSON(b, c.Value)
	}
	return append(b, '}')
}

// AppendValueJSON appends the JSON rendering of v (see docs/types.md).
func AppendValueJSON(b []byte, v *Value) []byte {
	switch k := v.GetKind().(type) {
	case nil:
		return append(b, "null"...)
	case *Value_Bool:
		return strconv.AppendBool(b, k.Bool)
	case *Value_Int:
		return strconv.AppendInt(b, k.Int, 10)
	case *Value_Uint:
		return strconv.AppendUint(b, k.Uint, 10)
	case *Value_Float:
		return appendFloat(b, k.Float)
	case *Value_Decimal:
		return appendDecimal(b, k.Decimal)
	case *Value_Text:
		return AppendString(b, k.Text)
	case *Value_Bytes:
		return appendBytes(b, k.Bytes)
	case *Value_Timestamp:
		return appendTimestamp(b, k.Timestamp)
	case *Value_Date:
		return appendDate(b, k.Date)
	case *Value_Time:
		return appendTime(b, k.Time)
	case *Value_Interval:
		return appendInterval(b, k.Interval)
	case *Value_Json:
		return appendJSONText(b, k.Json)
	case *Value_Uuid:
		return appendUUID(b, k.Uuid)
	case *Value_List:
		b = append(b, '[')
		for i, e := range k.List.GetValues() {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendValueJSON(b, e)
		}
		return append(b, ']')
	case *Value_Document:
		return AppendRowJSON(b, k.Document)
	}
	return append(b, "null"...)
}

// The JSON renderings of the value kinds that AppendValueJSON and
// AppendEncodedRowJSON (from a row's encoding) share, so that the two
// cannot differ.

// appendDecimal: a number, or a string for NaN, Infinity, -Infinity.
func appendDecimal(b []byte, d string) []byte {
	if isJSONNumber(d) {
		return append(b, d...)
	}
	return AppendString(b, d)
}

// appendBytes: a base64 string.
func appendBytes(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendTime, appendInterval, appendUUID: strings.
func appendTime(b []byte, t *Time) []byte {
	b = append(b, '"')
	b = AppendTime(b, t)
	return append(b, '"')
}

func appendInterval(b []byte, i *Interval) []byte {
	b = append(b, '"')
	b = AppendInterval(b, i)
	return append(b, '"')
}

func appendUUID(b, u []byte) []byte {
	b = append(b, '"')
	b = AppendUUID(b, u)
	return append(b, '"')
}

// appendJSONText: a json value as it is, null when empty.
func appendJSONText(b []byte, j string) []byte {
	if j == "" {
		return append(b, "null"...)
	}
	return append(b, j...)
}

func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	// Shortest representation that round-trips, in plain notation for
	// 1e-6 <= |f| < 1e21 and exponent notation outside, as JavaScript and
	// encoding/json do.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	n := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7
		if m := len(b); m-n >= 4 && b[m-4] == 'e' && b[m-3] == '-' && b[m-2] == '0' {
			b[m-2] = b[m-1]
			b = b[:m-1]
		}
		return b
	}
	// An integral value keeps a fraction (2 -> 2.0, -0 -> -0.0), so that
	// every float reads as a floating-point number: Elasticsearch's and
	// OpenSearch's dynamic mapping map a JSON integer to long, which
	// would make the field's type depend on the first value, and an
	// array such as [1.5,2] would be rejected as a whole.
	for _, c := range b[n:] {
		if c == '.' {
			return b
		}
	}
	return append(b, '.', '0')
}

// isJSONNumber reports whether s is a valid JSON number literal.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

const microsPerDay = 86400 * 1_000_000

func appendTimestamp(b []byte, t *Timestamp) []byte {
	switch {
	case t.GetInfinity() > 0:
		return append(b, `"infinity"`...)
	case t.GetInfinity() < 0:
		return append(b, `"-infinity"`...)
	}
	b = append(b, '"')
	b = AppendTimestamp(b, t)
	return append(b, '"')
}

// AppendTimestamp appends t in ISO 8601 form: 2024-05-06T07:08:09.123456Z
// (no Z for local timestamps). Fractional seconds are trimmed of trailing
// zeros. Years outside 0000-9999 use the expanded form (+12345-01-01...).
func AppendTimestamp(b []byte, t *Timestamp) []byte {
	if t.GetInfinity() > 0 {
		return append(b, "infinity"...)
	} else if t.GetInfinity() < 0 {
		return append(b, "-infinity"...)
	}
	us := t.GetUnixMicros()
	days := floorDiv(us, microsPerDay)
	rem := us - days*microsPerDay
	b = appendCivilDate(b, days)
	b = append(b, 'T')
	b = appendClock(b, rem)
	if !t.GetLocal() {
		b = append(b, 'Z')
	}
	return b
}

func appendDate(b []byte, d *Date) []byte {
	switch {
	case d.GetInfinity() > 0:
		return append(b, `"infinity"`...)
	case d.GetInfinity() < 0:
		return append(b, `"-infinity"`...)
	}
	b = append(b, '"')
	b = appendCivilDate(b, int64(d.GetDays()))
	return append(b, '"')
}

// AppendDate appends d as YYYY-MM-DD.
func AppendDate(b []byte, d *Date) []byte {
	if d.GetInfinity() > 0 {
		return append(b, "infinity"...)
	} else if d.GetInfinity() < 0 {
		return append(b, "-infinity"...)
	}
	return appendCivilDate(b, int64(d.GetDays()))
}

// AppendTime appends t as HH:MM:SS[.ffffff][+HH:MM].
func AppendTime(b []byte, t *Time) []byte {
	b = appendClock(b, t.GetMicros())
	if t.GetHasOffset() {
		off := t.GetOffsetSeconds()
		if off < 0 {
			b = append(b, '-')
			off = -off
		} else {
			b = append(b, '+')
		}
		b = append2(b, int(off/3600))
		b = append(b, ':')
		b = append2(b, int(off%3600/60))
		if s := off % 60; s != 0 {
			b = append(b, ':')
			b = append2(b, int(s))
		}
	}
	return b
}

// AppendInterval appends i as an ISO 8601 duration (P1Y2M3DT4H5M6.5S).
// Each unit keeps its sign, as PostgreSQL's iso_8601 interval style does.
func AppendInterval(b []byte, i *Interval) []byte {
	b = append(b, 'P')
	months, days, us := i.GetMonths(), i.GetDays(), i.GetMicros()
	if months == 0 && days == 0 && us == 0 {
		return append(b, "T0S"...)
	}
	if y := months / 12; y != 0 {
		b = strconv.AppendInt(b, int64(y), 10)
		b = append(b, 'Y')
	}
	if m := months % 12; m != 0 {
		b = strconv.AppendInt(b, int64(m), 10)
		b = append(b, 'M')
	}
	if days != 0 {
		b = strconv.AppendInt(b, int64(days), 10)
		b = append(b, 'D')
	}
	if us != 0 {
		b = append(b, 'T')
		h := us / 3_600_000_000
		us -= h * 3_600_000_000
		m := us / 60_000_000
		us -= m * 60_000_000
		if h != 0 {
			b = strconv.AppendInt(b, h, 10)
			b = append(b, 'H')
		}
		if m != 0 {
			b = strconv.AppendInt(b, m, 10)
			b = append(b, 'M')
		}
		if us != 0 {
			if us < 0 {
				b = append(b, '-')
				us = -us
			}
			b = strconv.AppendInt(b, us/1_000_000, 10)
			b = appendFraction(b, us%1_000_000)
			b = append(b, 'S')
		}
	}
	return b
}

// AppendUUID appends the canonical 8-4-4-4-12 form of a 16-byte UUID.
func AppendUUID(b []byte, u []byte) []byte {
	if len(u) != 16 {
		return hex.AppendEncode(b, u)
	}
	b = hex.AppendEncode(b, u[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, u[10:16])
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// appendCivilDate appends the proleptic Gregorian date of days since 1970-01-01.
func appendCivilDate(b []byte, days int64) []byte {
	// Howard Hinnant's days_from_civil inverse.
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	switch {
	case y < 0:
		// Astronomical year numbering: 1 BC is year 0, 2 BC is -1 (ISO 8601).
		b = append(b, '-')
		b = appendPad(b, -y, 6)
	case y > 9999:
		b = append(b, '+')
		b = appendPad(b, y, 6)
	default:
		b = appendPad(b, y, 4)
	}
	b = append(b, '-')
	b = append2(b, int(m))
	b = append(b, '-')
	return append2(b, int(d))
}

func appendClock(b []byte, us int64) []byte {
	s := us / 1_000_000
	frac := us % 1_000_000
	b = append2(b, int(s/3600))
	b = append(b, ':')
	b = append2(b, int(s%3600/60))
	b = append(b, ':')
	b = append2(b, int(s%60))
	return appendFraction(b, frac)
}

// appendFraction appends .ffffff without trailing zeros, nothing for 0.
func appendFraction(b []byte, us int64) []byte {
	if us == 0 {
		return b
	}
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + us%10)
		us /= 10
	}
	n := 6
	for n > 0 && digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

func append2(b []byte, v int) []byte {
	return append(b, byte('0'+v/10%10), byte('0'+v%10))
}

func appendPad(b []byte, v int64, width int) []byte {
	var digits [20]byte // on the stack: a year is rendered per timestamp
	s := strconv.AppendInt(digits[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// AppendString appends s as a JSON string. Invalid UTF-8 is replaced by U+FFFD.
func AppendString(b []byte, s string) []byte { return appendString(b, s, true) }

// appendString is AppendString; words false looks at one byte at a time
// (the reference its tests compare with).
func appendString(b []byte, s string, words bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight plain ASCII bytes at a time (most of a document's text):
		// no control byte, quote, backslash or multi-byte rune among them.
		if words && i+8 <= len(s) && !escapeIn8(s, i) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// CommitTime returns the commit time as a time.Time (zero when unknown).
func (e *Event) CommitTime() time.Time {
	if e.GetCommitTimeUs() == 0 {
		return time.Time{}
	}
	return time.UnixMicro(e.GetCommitTimeUs()).UTC()
}

// escapeIn8 reports whether s[i:i+8] holds a byte AppendString does not
// copy as is: below 0x20, '"', '\\' or 0x80 and above. (The classic
// "has a byte less than n" and "has a zero byte" word tests: exact for
// whether any byte matches.)
func escapeIn8(s string, i int) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	control := (w - ones*0x20) & ^w
	q := w ^ (ones * '"')
	quote := (q - ones) & ^q
	bs := w ^ (ones * '\\')
	backslash := (bs - ones) & ^bs
	return (control|quote|backslash|w)&highs != 0
}
