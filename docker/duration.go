package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lading-dev/lading/internal/isoduration"
	"github.com/lading-dev/lading/runner"
)

// Duration is a time.Duration whose JSON form is a Go duration string ("5s",
// "1m30s") or an ISO-8601 duration as Java and Kestra write them ("PT5S",
// "PT1M30S", "P1DT2H"). It marshals as a Go duration string.
type Duration time.Duration

// String returns the Go form, e.g. "5s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the Go form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a Go or ISO-8601 duration string; null leaves d
// unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if problem := d.decodeJSON(b); problem != "" {
		return fmt.Errorf("%w: duration %s: %s", runner.ErrInvalidConfig, bytes.TrimSpace(b), problem)
	}
	return nil
}

// decodeJSON reads a duration string and says what is wrong with it, if
// anything.
func (d *Duration) decodeJSON(b []byte) string {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return `must be a string such as "5s" or "PT5S"`
	}
	v, err := ParseDuration(s)
	switch {
	case errors.Is(err, isoduration.ErrRange):
		return isoduration.ErrRange.Error()
	case err != nil:
		return isoduration.ErrSyntax.Error()
	}
	*d = Duration(v)
	return ""
}

// ParseDuration parses a Go duration ("1m30s") or an ISO-8601 duration
// ("PT1M30S", case-insensitive). A duration that does not fit a
// time.Duration (about 292 years) is an error.
func ParseDuration(s string) (time.Duration, error) { return isoduration.Parse(s) }
