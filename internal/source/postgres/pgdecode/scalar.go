package pgdecode

import (
	"errors"
	"math"
	"strconv"
	"unsafe"
)

// unsafeString views b as a string without copying. The result must not
// outlive the call it is passed to (strconv copies into its errors).
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// parseBool parses boolout's "t" / "f" (and the spellings boolin accepts for
// those two, for robustness).
func parseBool(s []byte) (bool, error) {
	switch string(s) { // no allocation: compared in place
	case "t", "true":
		return true, nil
	case "f", "false":
		return false, nil
	}
	return false, syntaxf("want t or f")
}

// parseInt parses a decimal integer of the given bit size ("-123").
func parseInt(s []byte, bits uint) (int64, error) {
	if len(s) == 0 {
		return 0, syntaxf("empty integer")
	}
	neg := false
	i := 0
	switch s[0] {
	case '-':
		neg, i = true, 1
	case '+':
		i = 1
	}
	if i == len(s) {
		return 0, syntaxf("no digits")
	}
	limit := uint64(1) << (bits - 1) // magnitude limit for negatives
	var n uint64
	for ; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, syntaxf("unexpected %q in integer", s[i])
		}
		if n > (limit-uint64(c))/10 {
			return 0, ErrRange
		}
		n = n*10 + uint64(c)
	}
	if neg {
		return -int64(n), nil // n == limit gives MinInt (wraps correctly)
	}
	if n > limit-1 {
		return 0, ErrRange
	}
	return int64(n), nil
}

// parseUint parses an unsigned decimal integer (xid, oid, xid8).
func parseUint(s []byte, bits uint) (uint64, error) {
	if len(s) == 0 {
		return 0, syntaxf("empty integer")
	}
	max := uint64(1)<<bits - 1
	if bits == 64 {
		max = math.MaxUint64
	}
	var n uint64
	for _, ch := range s {
		c := ch - '0'
		if c > 9 {
			return 0, syntaxf("unexpected %q in integer", ch)
		}
		if n > (max-uint64(c))/10 {
			return 0, ErrRange
		}
		n = n*10 + uint64(c)
	}
	return n, nil
}

// parseFloat8 parses float8out text: shortest round-trip digits, "NaN",
// "Infinity", "-Infinity", "-0".
func parseFloat8(s []byte) (float64, error) {
	f, err := strconv.ParseFloat(unsafeString(s), 64)
	if err != nil {
		return 0, floatErr(err)
	}
	return f, nil
}

// parseFloat4 parses float4out text into the float64 that is nearest to its
// shortest decimal form and that converts back to the same float32.
//
// Widening the float32 exactly would render 0.1::float4 as
// 0.10000000149011612 in JSON; instead the value is the double nearest to
// the shortest decimal that identifies the float32 ("0.1"), so JSON shows
// PostgreSQL's digits and float32(v) recovers the stored float4 bits. For
// the two float32 values where the nearest double of their shortest decimal
// lies on a float32 rounding midpoint (±7.038531e-26), the adjacent double
// towards the float32 is used, so float32(v) stays exact.
func parseFloat4(s []byte) (float64, error) {
	f, err := strconv.ParseFloat(unsafeString(s), 32)
	if err != nil {
		return 0, floatErr(err)
	}
	f32 := float32(f)
	if f32 != f32 || math.IsInf(f, 0) || f32 == 0 {
		return f, nil // NaN, ±Inf, ±0 are exact as is
	}
	var buf [32]byte
	short := strconv.AppendFloat(buf[:0], f, 'g', -1, 32)
	d, err := strconv.ParseFloat(unsafeString(short), 64)
	if err != nil {
		return f, nil
	}
	if float32(d) != f32 {
		d = math.Nextafter(d, f)
	}
	return d, nil
}

func floatErr(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
		return ErrRange
	}
	return ErrSyntax
}

// checkNumeric validates numeric_out text: -?digits[.digits], NaN, Infinity,
// -Infinity.
func checkNumeric(s []byte) error {
	switch string(s) {
	case "NaN", "Infinity", "-Infinity":
		return nil
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start {
		return syntaxf("no digits")
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return syntaxf("no digits after '.'")
		}
	}
	if i != len(s) {
		return syntaxf("unexpected %q in numeric", s[i])
	}
	return nil
}

// parseMoney converts cash_out text under lc_monetary=C ("$1,234.56",
// "-$1,234.56") into exact decimal digits ("1234.56", "-1234.56").
func parseMoney(s []byte) (string, error) {
	out := make([]byte, 0, len(s))
	i := 0
	if i < len(s) && s[i] == '-' {
		out = append(out, '-')
		i++
	}
	if i < len(s) && s[i] == '$' {
		i++
	}
	digits := 0
	for i < len(s) {
		c := s[i]
		if isDigit(c) {
			out = append(out, c)
			digits++
		} else if c != ',' || digits == 0 {
			break
		}
		i++
	}
	if digits == 0 {
		return "", syntaxf("money not in lc_monetary=C format")
	}
	if i < len(s) && s[i] == '.' {
		out = append(out, '.')
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			out = append(out, s[i])
			i++
		}
		if i == start {
			return "", syntaxf("no digits after '.'")
		}
	}
	if i != len(s) {
		return "", syntaxf("money not in lc_monetary=C format (unexpected %q)", s[i])
	}
	return string(out), nil
}

// parseUUID parses the canonical 8-4-4-4-12 form (and 32 plain hex digits).
func parseUUID(s []byte) ([16]byte, error) {
	var u [16]byte
	j := 0
	for i := 0; i < len(s); {
		if s[i] == '-' && len(s) == 36 && (i == 8 || i == 13 || i == 18 || i == 23) {
			i++
			continue
		}
		if j == 16 || i+1 >= len(s) {
			return u, syntaxf("want 32 hex digits")
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, syntaxf("invalid hex digit")
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	if j != 16 {
		return u, syntaxf("want 32 hex digits")
	}
	return u, nil
}

// parseBytea decodes byteaout text: hex ("\x0aff") or, for robustness, the
// escape format ("abc\\000\\\\").
func parseBytea(s []byte) ([]byte, error) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		h := s[2:]
		if len(h)%2 != 0 {
			return nil, syntaxf("odd number of hex digits")
		}
		out := make([]byte, len(h)/2)
		for i := range out {
			hi, ok1 := unhex(h[2*i])
			lo, ok2 := unhex(h[2*i+1])
			if !ok1 || !ok2 {
				return nil, syntaxf("invalid hex digit")
			}
			out[i] = hi<<4 | lo
		}
		return out, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]):
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return nil, syntaxf("invalid escape in bytea")
		}
	}
	return out, nil
}

// parsePoint parses point_out text "(x,y)".
func parsePoint(s []byte) (x, y float64, err error) {
	if len(s) < 5 || s[0] != '(' || s[len(s)-1] != ')' {
		return 0, 0, syntaxf("want (x,y)")
	}
	in := s[1 : len(s)-1]
	for i, c := range in {
		if c == ',' {
			if x, err = parseFloat8(in[:i]); err != nil {
				return 0, 0, err
			}
			if y, err = parseFloat8(in[i+1:]); err != nil {
				return 0, 0, err
			}
			return x, y, nil
		}
	}
	return 0, 0, syntaxf("want (x,y)")
}

// parseIntVector parses int2vector/oidvector text: integers separated by
// single spaces ("1 2 3"; "" is empty).
func parseIntVector(s []byte, unsigned bool) ([]int64, error) {
	var out []int64
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ' ' {
			i++
		}
		if i == 0 {
			s = s[1:]
			continue
		}
		var n int64
		var err error
		if unsigned {
			var u uint64
			u, err = parseUint(s[:i], 32)
			n = int64(u)
		} else {
			n, err = parseInt(s[:i], 16)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		s = s[i:]
	}
	return out, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
