package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits are the units accepted by integer fields whose key ends in
// "_bytes": SI (powers of 1000) and IEC (powers of 1024), case-insensitive.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// parseSize parses a byte count: "1048576", "512KB", "5MiB", "1.5 GiB".
// Fractions are rounded down to whole bytes.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok || num == "" {
		return 0, errors.New("not a size; write bytes (1048576) or a number with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 5MiB")
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n != 0 && (n > math.MaxInt64/mult || n < math.MinInt64/mult) {
			return 0, errors.New("size is too large")
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a size; write bytes (1048576) or a number with a unit, e.g. 5MiB or 512KB")
	}
	v := math.Floor(f * float64(mult))
	if v >= math.MaxInt64 || v <= math.MinInt64 {
		return 0, errors.New("size is too large")
	}
	return int64(v), nil
}

// formatSize renders n with the largest IEC unit that divides it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseDuration parses a Go duration ("500ms", "10s", "1m30s") and explains
// the common mistakes.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return 0, errors.New("a duration needs a unit; write e.g. 500ms, 10s, 1m or 1h")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if strings.HasSuffix(s, "d") {
			return 0, errors.New("not a duration; days are not a unit, write hours instead (e.g. 24h)")
		}
		return 0, errors.New("not a duration; write e.g. 500ms, 10s, 1m or 1h (units: ns, us, ms, s, m, h)")
	}
	return d, nil
}

// formatDuration renders d without zero components: "10m", not "10m0s".
func formatDuration(d time.Duration) string {
	if d == DurationOff {
		return "off"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
