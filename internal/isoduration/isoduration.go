// Package isoduration parses the durations Kestra and Java write: Go's
// form ("1m30s") and ISO-8601 as java.time.Duration.parse reads it
// ("PT1M30S", "P1DT2H", "PT-0.5S"), with exact arithmetic: a value that
// does not fit a time.Duration (about 292 years) is an error, never a
// wrapped-around result.
package isoduration

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrSyntax is matched by every error Parse returns for a string that is
// neither form.
var ErrSyntax = errors.New(`must be a Go duration such as "5s" or an ISO-8601 duration such as "PT5S"`)

// ErrRange is matched by the error Parse returns for a duration that does
// not fit a time.Duration.
var ErrRange = errors.New("is out of range (at most about 292 years)")

// Java's Duration.parse form: an optional sign, days, then a T part with
// hours, minutes and (fractional) seconds, each optional and signed.
var iso = regexp.MustCompile(`^([-+]?)P(?:([-+]?\d+)D)?(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?)(\d+)(?:[.,](\d{1,9}))?S)?)?$`)

// Parse reads a Go duration or an ISO-8601 duration (case-insensitive).
func Parse(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	u := strings.ToUpper(s)
	m := iso.FindStringSubmatch(u)
	if m == nil || strings.HasSuffix(u, "T") || strings.TrimLeft(u, "-+") == "P" {
		return 0, fmt.Errorf("duration %q: %w", s, ErrSyntax)
	}
	var total int64
	for i, unit := range []int64{int64(24 * time.Hour), int64(time.Hour), int64(time.Minute)} {
		if m[i+2] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+2], 10, 64)
		if err != nil || !addProduct(&total, n, unit) {
			return 0, fmt.Errorf("duration %q: %w", s, ErrRange)
		}
	}
	if m[6] != "" {
		secs, err := strconv.ParseInt(m[6], 10, 64)
		frac := int64(0)
		if m[7] != "" {
			frac, _ = strconv.ParseInt(m[7]+strings.Repeat("0", 9-len(m[7])), 10, 64) // at most 9 digits
		}
		sign := int64(1)
		if m[5] == "-" {
			sign = -1
		}
		if err != nil || !addProduct(&total, sign*secs, int64(time.Second)) || !addProduct(&total, sign*frac, 1) {
			return 0, fmt.Errorf("duration %q: %w", s, ErrRange)
		}
	}
	if m[1] == "-" {
		if total == math.MinInt64 {
			return 0, fmt.Errorf("duration %q: %w", s, ErrRange)
		}
		total = -total
	}
	return time.Duration(total), nil
}

// addProduct adds n*unit to *total and reports whether it fit in an int64.
func addProduct(total *int64, n, unit int64) bool {
	if n != 0 && (n > math.MaxInt64/unit || n < math.MinInt64/unit) {
		return false
	}
	p := n * unit
	if (p > 0 && *total > math.MaxInt64-p) || (p < 0 && *total < math.MinInt64-p) {
		return false
	}
	*total += p
	return true
}
