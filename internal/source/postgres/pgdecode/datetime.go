package pgdecode

import (
	"math"
	"strconv"

	"github.com/tidegate/tidegate/event"
)

// Date/time parsers for the ISO DateStyle and postgres IntervalStyle text
// formats (see SessionParams).

const (
	microsPerSecond = 1_000_000
	microsPerMinute = 60 * microsPerSecond
	microsPerHour   = 60 * microsPerMinute
	microsPerDay    = 24 * microsPerHour

	// maxDays bounds days since 1970-01-01 so that days*microsPerDay fits
	// in int64.
	maxDays = math.MaxInt64 / microsPerDay
)

// scanner walks a text value.
type scanner struct {
	s []byte
	i int
}

func (p *scanner) done() bool { return p.i >= len(p.s) }

func (p *scanner) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *scanner) expect(c byte) error {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return nil
	}
	if p.i >= len(p.s) {
		return syntaxf("want %q, got end of input", c)
	}
	return syntaxf("want %q at offset %d, got %q", c, p.i, p.s[p.i])
}

// digits reads between min and max decimal digits.
func (p *scanner) digits(min, max int) (int64, error) {
	var n int64
	start := p.i
	for p.i < len(p.s) && p.i-start < max && isDigit(p.s[p.i]) {
		n = n*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	if p.i-start < min {
		return 0, syntaxf("want %d digits at offset %d", min, start)
	}
	return n, nil
}

// fraction reads an optional ".f{1,6}" and returns microseconds.
func (p *scanner) fraction() (int64, error) {
	if p.peek() != '.' {
		return 0, nil
	}
	p.i++
	start := p.i
	f, err := p.digits(1, 6)
	if err != nil {
		return 0, err
	}
	for n := p.i - start; n < 6; n++ {
		f *= 10
	}
	if isDigit(p.peek()) {
		return 0, syntaxf("more than 6 fractional digits")
	}
	return f, nil
}

// date reads Y+-MM-DD (year of at least one digit) and returns the year,
// month and day as written (BC is applied by the caller).
func (p *scanner) date() (y int64, m, d int, err error) {
	if y, err = p.digits(1, 9); err != nil {
		return
	}
	if err = p.expect('-'); err != nil {
		return
	}
	var v int64
	if v, err = p.digits(2, 2); err != nil {
		return
	}
	m = int(v)
	if err = p.expect('-'); err != nil {
		return
	}
	if v, err = p.digits(2, 2); err != nil {
		return
	}
	d = int(v)
	return
}

// clock reads HH:MM:SS[.ffffff] and returns microseconds since midnight;
// maxHour is 24 for time (24:00:00 is valid), 23 for timestamps.
func (p *scanner) clock(maxHour int64) (int64, error) {
	h, err := p.digits(2, 2)
	if err != nil {
		return 0, err
	}
	if err := p.expect(':'); err != nil {
		return 0, err
	}
	mi, err := p.digits(2, 2)
	if err != nil {
		return 0, err
	}
	if err := p.expect(':'); err != nil {
		return 0, err
	}
	s, err := p.digits(2, 2)
	if err != nil {
		return 0, err
	}
	f, err := p.fraction()
	if err != nil {
		return 0, err
	}
	if h > maxHour || mi > 59 || s > 59 {
		return 0, syntaxf("clock field out of range")
	}
	us := h*microsPerHour + mi*microsPerMinute + s*microsPerSecond + f
	if us > maxHour*microsPerHour && maxHour == 24 {
		return 0, syntaxf("time after 24:00:00")
	}
	return us, nil
}

// offset reads a zone offset "+HH[:MM[:SS]]" and returns seconds east of UTC.
func (p *scanner) offset() (int32, error) {
	sign := int64(1)
	switch p.peek() {
	case '+':
	case '-':
		sign = -1
	default:
		return 0, syntaxf("want zone offset at offset %d", p.i)
	}
	p.i++
	h, err := p.digits(2, 2)
	if err != nil {
		return 0, err
	}
	var m, s int64
	if p.peek() == ':' {
		p.i++
		if m, err = p.digits(2, 2); err != nil {
			return 0, err
		}
		if p.peek() == ':' {
			p.i++
			if s, err = p.digits(2, 2); err != nil {
				return 0, err
			}
		}
	}
	if m > 59 || s > 59 {
		return 0, syntaxf("zone offset out of range")
	}
	return int32(sign * (h*3600 + m*60 + s)), nil
}

// bc consumes an optional " BC" suffix.
func (p *scanner) bc() bool {
	if len(p.s)-p.i == 3 && p.s[p.i] == ' ' && p.s[p.i+1] == 'B' && p.s[p.i+2] == 'C' {
		p.i += 3
		return true
	}
	return false
}

// infinity reports +1/-1 for "infinity"/"-infinity".
func infinity(s []byte) int32 {
	switch string(s) {
	case "infinity":
		return 1
	case "-infinity":
		return -1
	}
	return 0
}

// civilDays converts a written date (year > 0, BC flag) into days since
// 1970-01-01 in the proleptic Gregorian calendar, validating month and day.
func civilDays(year int64, bc bool, m, d int) (int64, error) {
	if year == 0 {
		return 0, syntaxf("year 0 does not exist")
	}
	y := year
	if bc {
		y = 1 - year // astronomical numbering: 1 BC is year 0
	}
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, syntaxf("date field out of range")
	}
	return daysFromCivil(y, m, d), nil
}

func daysIn(y int64, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is Howard Hinnant's days_from_civil: days since 1970-01-01
// of the proleptic Gregorian date y-m-d (astronomical year numbering).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// parseTimestamp parses "YYYY-MM-DD HH:MM:SS[.ffffff][+zz[:mm[:ss]]][ BC]"
// (the zone only when withZone) into microseconds since the Unix epoch
// (local wall clock read as UTC when !withZone), or an infinity. Instants
// after the int64 limit of event.Timestamp (294247-01-10T04:00:54.775807Z)
// are ErrRange; Types.Decode renders those as text (see farTimestamp).
func parseTimestamp(s []byte, withZone bool) (us int64, inf int32, err error) {
	days, clock, inf, err := parseTimestampParts(s, withZone)
	if err != nil || inf != 0 {
		return 0, inf, err
	}
	if days > maxDays || days < -maxDays {
		return 0, 0, ErrRange
	}
	us, ok := add64(days*microsPerDay, clock)
	if !ok {
		return 0, 0, ErrRange
	}
	return us, 0, nil
}

// pgEndDays is PostgreSQL's END_TIMESTAMP, 294277-01-01 00:00:00 UTC (the
// first instant a timestamp cannot hold), in days since 1970-01-01.
var pgEndDays = daysFromCivil(294277, 1, 1)

// parseTimestampParts parses a timestamp like parseTimestamp into the UTC
// day (days since 1970-01-01) and the microseconds since its midnight
// (0 <= clock < 24h), without the int64 microsecond limit.
func parseTimestampParts(s []byte, withZone bool) (days, clock int64, inf int32, err error) {
	if inf = infinity(s); inf != 0 {
		return 0, 0, inf, nil
	}
	p := scanner{s: s}
	y, m, d, err := p.date()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := p.expect(' '); err != nil {
		return 0, 0, 0, err
	}
	if clock, err = p.clock(23); err != nil {
		return 0, 0, 0, err
	}
	var off int32
	if withZone {
		if off, err = p.offset(); err != nil {
			return 0, 0, 0, err
		}
	}
	bc := p.bc()
	if !p.done() {
		return 0, 0, 0, syntaxf("unexpected %q at offset %d", p.peek(), p.i)
	}
	if days, err = civilDays(y, bc, m, d); err != nil {
		return 0, 0, 0, err
	}
	// Move the zone offset (at most a day) into UTC.
	clock -= int64(off) * microsPerSecond
	switch {
	case clock < 0:
		clock += microsPerDay
		days--
	case clock >= microsPerDay:
		clock -= microsPerDay
		days++
	}
	return days, clock, 0, nil
}

// decodeTimestamp converts timestamp/timestamptz text. PostgreSQL's
// timestamps go up to 294276-12-31 23:59:59.999999, but event.Timestamp
// counts microseconds since 1970 in an int64 and ends in 294247: a value
// in between becomes a text value holding exactly the JSON rendering a
// timestamp would have ("+294276-12-31T23:59:59.999999Z"), so no valid row
// fails to decode and JSON documents are the same either way.
func decodeTimestamp(a *Arena, s []byte, withZone bool) (*event.Value, error) {
	days, clock, inf, err := parseTimestampParts(s, withZone)
	if err != nil {
		return nil, err
	}
	if inf != 0 {
		return a.timestamp(0, !withZone, inf), nil
	}
	return timestampValue(a, days, clock, withZone)
}

// timestampValue is a timestamp of days since 1970-01-01 and microseconds
// into the day (see decodeTimestamp).
func timestampValue(a *Arena, days, clock int64, withZone bool) (*event.Value, error) {
	if days < -maxDays || days >= pgEndDays {
		return nil, ErrRange // not a PostgreSQL timestamp
	}
	if days <= maxDays {
		if us, ok := add64(days*microsPerDay, clock); ok {
			return a.timestamp(us, !withZone, 0), nil
		}
	}
	return newText(string(farTimestamp(nil, days, clock, !withZone))), nil
}

// farTimestamp appends the ISO 8601 form event.AppendTimestamp gives, for
// a day after year 9999: "+YYYYYY-MM-DDTHH:MM:SS[.ffffff][Z]".
func farTimestamp(b []byte, days, clock int64, local bool) []byte {
	y, m, d := civilFromDays(days)
	b = append(b, '+')
	b = appendPadded(b, y, 6)
	b = append(b, '-')
	b = appendPadded(b, int64(m), 2)
	b = append(b, '-')
	b = appendPadded(b, int64(d), 2)
	b = append(b, 'T')
	secs := clock / microsPerSecond
	b = appendPadded(b, secs/3600, 2)
	b = append(b, ':')
	b = appendPadded(b, secs%3600/60, 2)
	b = append(b, ':')
	b = appendPadded(b, secs%60, 2)
	if frac := clock % microsPerSecond; frac != 0 {
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		b = append(b, '.')
		b = appendPadded(b, frac, n)
	}
	if !local {
		b = append(b, 'Z')
	}
	return b
}

// appendPadded appends the non-negative v with at least width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	s := strconv.AppendInt(nil, v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// civilFromDays is the inverse of daysFromCivil (Howard Hinnant's
// civil_from_days), for days >= 0.
func civilFromDays(days int64) (y int64, m, d int) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if mp >= 10 {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func add64(a, b int64) (int64, bool) {
	r := a + b
	if (b > 0 && r < a) || (b < 0 && r > a) {
		return 0, false
	}
	return r, true
}

// parseDate parses "YYYY-MM-DD[ BC]" or an infinity into days since
// 1970-01-01.
func parseDate(s []byte) (days int32, inf int32, err error) {
	if inf = infinity(s); inf != 0 {
		return 0, inf, nil
	}
	p := scanner{s: s}
	y, m, d, err := p.date()
	if err != nil {
		return 0, 0, err
	}
	bc := p.bc()
	if !p.done() {
		return 0, 0, syntaxf("unexpected %q at offset %d", p.peek(), p.i)
	}
	n, err := civilDays(y, bc, m, d)
	if err != nil {
		return 0, 0, err
	}
	if n > math.MaxInt32 || n < math.MinInt32 {
		return 0, 0, ErrRange
	}
	return int32(n), 0, nil
}

// parseTime parses "HH:MM:SS[.ffffff]" and, when withZone, a trailing
// offset ("+05:30", "-03:00:15").
func parseTime(s []byte, withZone bool) (us int64, off int32, err error) {
	p := scanner{s: s}
	if us, err = p.clock(24); err != nil {
		return 0, 0, err
	}
	if withZone {
		if off, err = p.offset(); err != nil {
			return 0, 0, err
		}
	}
	if !p.done() {
		return 0, 0, syntaxf("unexpected %q at offset %d", p.peek(), p.i)
	}
	return us, off, nil
}

// parseInterval parses IntervalStyle=postgres output:
//
//	"1 year 2 mons 3 days 04:05:06.789", "-1 days +02:03:00", "00:00:00",
//	"-00:00:00.5", "2562047788:00:00", "-1 years -2 mons +3 days -04:05:06"
//
// and PostgreSQL 17's "infinity"/"-infinity", which are returned as
// PostgreSQL stores them (all fields at their maximum / minimum).
func parseInterval(s []byte) (months, days int32, us int64, err error) {
	switch infinity(s) {
	case 1:
		return math.MaxInt32, math.MaxInt32, math.MaxInt64, nil
	case -1:
		return math.MinInt32, math.MinInt32, math.MinInt64, nil
	}
	if len(s) == 0 {
		return 0, 0, 0, syntaxf("empty interval")
	}
	var mon, day int64
	p := scanner{s: s}
	sawTime := false
	for !p.done() {
		if p.i > 0 {
			if err := p.expect(' '); err != nil {
				return 0, 0, 0, err
			}
		}
		if sawTime {
			return 0, 0, 0, syntaxf("text after the time part")
		}
		neg := false
		switch p.peek() {
		case '-':
			neg = true
			p.i++
		case '+':
			p.i++
		}
		start := p.i
		n, err := p.digits(1, 11)
		if err != nil {
			return 0, 0, 0, err
		}
		if p.i-start > 10 { // no field of a valid interval has more digits
			return 0, 0, 0, ErrRange
		}
		if p.peek() == ':' {
			sawTime = true
			if us, err = intervalClock(&p, n, neg); err != nil {
				return 0, 0, 0, err
			}
			continue
		}
		if neg {
			n = -n
		}
		if err := p.expect(' '); err != nil {
			return 0, 0, 0, err
		}
		unitStart := p.i
		for p.i < len(p.s) && p.s[p.i] >= 'a' && p.s[p.i] <= 'z' {
			p.i++
		}
		switch string(p.s[unitStart:p.i]) {
		case "year", "years":
			mon += n * 12
		case "mon", "mons":
			mon += n
		case "day", "days":
			day += n
		default:
			return 0, 0, 0, syntaxf("unknown interval unit %q", p.s[unitStart:p.i])
		}
		if mon > math.MaxInt32 || mon < math.MinInt32 || day > math.MaxInt32 || day < math.MinInt32 {
			return 0, 0, 0, ErrRange
		}
	}
	return int32(mon), int32(day), us, nil
}

// intervalClock reads ":MM:SS[.ffffff]" after the hours h of an interval's
// time part; neg applies to the whole time.
func intervalClock(p *scanner, h int64, neg bool) (int64, error) {
	if err := p.expect(':'); err != nil {
		return 0, err
	}
	m, err := p.digits(2, 2)
	if err != nil {
		return 0, err
	}
	if err := p.expect(':'); err != nil {
		return 0, err
	}
	s, err := p.digits(2, 2)
	if err != nil {
		return 0, err
	}
	f, err := p.fraction()
	if err != nil {
		return 0, err
	}
	if m > 59 || s > 59 {
		return 0, syntaxf("interval clock field out of range")
	}
	// |result| <= 2^63 (MinInt64 is reachable for negative intervals).
	const maxHours = math.MaxInt64 / microsPerHour
	if h > maxHours {
		return 0, ErrRange
	}
	rest := uint64(m*microsPerMinute + s*microsPerSecond + f)
	mag := uint64(h)*microsPerHour + rest
	if neg {
		if mag > 1<<63 {
			return 0, ErrRange
		}
		return int64(-mag), nil // -(1<<63) wraps to MinInt64
	}
	if mag > math.MaxInt64 {
		return 0, ErrRange
	}
	return int64(mag), nil
}
