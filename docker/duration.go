package docker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration whose JSON form is a Go duration string ("5s",
// "1m30s") or an ISO-8601 duration as Java and Kestra write them ("PT5S",
// "PT1M30S", "P1DT2H"). It marshals as a Go duration string.
type Duration time.Duration

// String returns the Go form, e.g. "5s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the Go form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a Go or ISO-8601 duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: must be a string such as \"5s\" or \"PT5S\"", b)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Java's Duration.parse form: days, then a T part with hours, minutes and
// (fractional) seconds, each optional.
var isoDuration = regexp.MustCompile(`^([-+]?)P(?:([-+]?\d+)D)?(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+(?:[.,]\d{1,9})?)S)?)?$`)

// ParseDuration parses a Go duration ("1m30s") or an ISO-8601 duration
// ("PT1M30S", case-insensitive).
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	m := isoDuration.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || strings.HasSuffix(strings.ToUpper(s), "T") || strings.TrimLeft(strings.ToUpper(s), "-+") == "P" {
		return 0, fmt.Errorf("duration %q: must be a Go duration such as \"5s\" or an ISO-8601 duration such as \"PT5S\"", s)
	}
	var total time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+2] != "" {
			n, err := strconv.ParseInt(m[i+2], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			total += time.Duration(n) * unit
		}
	}
	if m[5] != "" {
		secs, err := strconv.ParseFloat(strings.Replace(m[5], ",", ".", 1), 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		total += time.Duration(secs * float64(time.Second))
	}
	if m[1] == "-" {
		total = -total
	}
	return total, nil
}
