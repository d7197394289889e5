// Package cpu holds a task's CPU limit in the form Kestra's Docker task
// runner writes it ({"cpus": 1.5}), also accepting strings ("1.5") and
// Kubernetes millicores ("500m").
//
// # Example
//
//	var c cpu.Config
//	_ = json.Unmarshal([]byte(`{"cpus": "500m"}`), &c)
//	c.CPUs.NanoCPUs() // 500000000, the Engine's HostConfig.NanoCPUs
package cpu

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lading-dev/lading/runner"
)

// Config is the cpu block of a runner's configuration.
type Config struct {
	// CPUs is how many CPUs the container may use; zero means no limit.
	CPUs CPUs `json:"cpus,omitzero"`
}

// CPUs is a number of CPUs, held in millicores: the finest step is 0.001 CPU.
type CPUs int64

// Millicores returns the limit in thousandths of a CPU.
func (c CPUs) Millicores() int64 { return int64(c) }

// NanoCPUs returns the limit in the Engine's unit (1e9 per CPU).
func (c CPUs) NanoCPUs() int64 { return int64(c) * 1_000_000 }

// String returns the number of CPUs, e.g. "1.5".
func (c CPUs) String() string { return strconv.FormatFloat(float64(c)/1000, 'f', -1, 64) }

// MarshalJSON writes a JSON number of CPUs.
func (c CPUs) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalJSON accepts a JSON number (1.5) or a string ("1.5", "500m").
func (c *CPUs) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseCPUs(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCPUs parses "1.5", "2" or millicores "500m". Zero means no limit.
// Negative, non-finite or finer-than-millicore values, and garbage, are a
// [*runner.FieldError] naming "cpu.cpus".
func ParseCPUs(s string) (CPUs, error) {
	bad := func(problem string) (CPUs, error) {
		return 0, &runner.FieldError{Field: "cpu.cpus", Value: s, Problem: problem, Err: runner.ErrInvalidConfig}
	}
	t := strings.TrimSpace(s)
	if m, ok := strings.CutSuffix(t, "m"); ok {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return bad(`must be a number of CPUs such as 1.5 or millicores such as "500m"`)
		}
		if n < 0 {
			return bad("must not be negative")
		}
		return CPUs(n), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return bad(`must be a number of CPUs such as 1.5 or millicores such as "500m"`)
	}
	if f < 0 {
		return bad("must not be negative")
	}
	if f > 1e9 {
		return bad("is not a plausible number of CPUs")
	}
	milli := math.Round(f * 1000)
	if math.Abs(milli-f*1000) > 1e-6 {
		return bad("is finer than a millicore (0.001 CPU)")
	}
	return CPUs(milli), nil
}

// Validate checks the limit against the engine's CPU count, available (0
// skips that check).
func (c Config) Validate(available int) error {
	if c.CPUs < 0 {
		return &runner.FieldError{Field: "cpu.cpus", Value: c.CPUs.String(), Problem: "must not be negative", Err: runner.ErrInvalidConfig}
	}
	if available > 0 && c.CPUs > CPUs(available*1000) {
		return &runner.FieldError{Field: "cpu.cpus", Value: c.CPUs.String(),
			Problem: fmt.Sprintf("is more than the engine's %d CPUs", available), Err: runner.ErrInvalidConfig}
	}
	return nil
}
