package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lading-dev/lading/internal/isoduration"
	"github.com/lading-dev/lading/internal/jsontext"
	"github.com/lading-dev/lading/runner"
)

// Duration is a time.Duration whose JSON form is what Kestra's duration
// properties take: a Go duration string ("5s", "1m30s"), an ISO-8601
// duration as Java and Kestra write them ("PT5S", "PT1M30S", "P1DT2H"), or
// a number of seconds, as a JSON number (5, 0.25) or a string holding one
// ("5", "1.5"), as Kestra's Jackson deserializer reads it. It marshals as a
// Go duration string.
type Duration time.Duration

// String returns the Go form, e.g. "5s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the Go form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a Go or ISO-8601 duration string or a number of
// seconds; null leaves d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if problem := d.decodeJSON(b); problem != "" {
		return fmt.Errorf("%w: duration %s: %s", runner.ErrInvalidConfig, bytes.TrimSpace(b), problem)
	}
	return nil
}

// durationForms is what a duration's JSON may be, for errors.
const durationForms = `must be a Go duration such as "5s", an ISO-8601 duration such as "PT5S", or a number of seconds`

// decodeJSON reads a duration and says what is wrong with it, if anything.
// Spaces around a string's text are ignored, as Kestra ignores them.
func (d *Duration) decodeJSON(b []byte) string {
	b = bytes.TrimSpace(b)
	text, kind := jsontext.Read(b)
	switch {
	case kind == jsontext.Null:
		return ""
	case kind != jsontext.Scalar:
		return durationForms
	}
	text = strings.TrimSpace(text)
	var v time.Duration
	var err error
	if b[0] != '"' || isSeconds(text) {
		v, err = seconds(text)
	} else {
		v, err = ParseDuration(text)
	}
	switch {
	case errors.Is(err, isoduration.ErrRange):
		return isoduration.ErrRange.Error()
	case err != nil:
		return durationForms
	}
	*d = Duration(v)
	return ""
}

// isSeconds reports whether s is what Kestra reads as a number of seconds:
// an optional sign, then digits and dots.
func isSeconds(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return s != "" && strings.Trim(s, "0123456789.") == ""
}

// seconds reads a number of seconds, rounded to the nanosecond.
func seconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, isoduration.ErrSyntax
	}
	ns := math.Round(f * 1e9)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns < math.MinInt64 {
		return 0, isoduration.ErrRange
	}
	return time.Duration(ns), nil
}

// ParseDuration parses a Go duration ("1m30s") or an ISO-8601 duration
// ("PT1M30S", case-insensitive). A duration that does not fit a
// time.Duration (about 292 years) is an error.
func ParseDuration(s string) (time.Duration, error) { return isoduration.Parse(s) }
