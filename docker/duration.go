package docker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/lading-dev/lading/internal/isoduration"
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

// ParseDuration parses a Go duration ("1m30s") or an ISO-8601 duration
// ("PT1M30S", case-insensitive). A duration that does not fit a
// time.Duration (about 292 years) is an error.
func ParseDuration(s string) (time.Duration, error) { return isoduration.Parse(s) }
