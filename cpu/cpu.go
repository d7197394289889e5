package cpu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/lading-dev/lading/internal/jsontext"
	"github.com/lading-dev/lading/runner"
)

// field is the name errors give the limit, as the user writes it.
const field = "cpu.cpus"

const (
	// MinCPUs is the smallest limit an engine can enforce, 0.01 CPU (10m):
	// the kernel refuses a CFS quota below 1 ms per 100 ms period.
	MinCPUs CPUs = 10
	// MaxCPUs is the largest limit accepted, one million CPUs. It keeps
	// [CPUs.NanoCPUs] far from overflowing; no machine comes near it.
	MaxCPUs CPUs = 1_000_000_000
)

// Config is the cpu block of a runner's configuration, as in Kestra:
// {"cpus": 1.5}. The zero Config sets no limit.
//
// A Config decoded from JSON remembers how cpus was written, so that errors
// quote the user's spelling ("1500m", not "1.5") and MarshalJSON gives it
// back; the memory is dropped once CPUs holds another value.
type Config struct {
	// CPUs is how many CPUs the container may use; zero means no limit.
	CPUs CPUs `json:"cpus,omitzero"`

	written spelling
}

// spelling is a value as the user wrote it, with what it parsed to.
type spelling struct {
	text  string
	value CPUs
}

// CPUs is a number of CPUs, held in millicores (thousandths of a CPU): 1500
// is 1.5 CPUs. Convert a number of whole CPUs with n*1000, or parse text with
// [ParseCPUs].
type CPUs int64

// ParseCPUs parses a number of CPUs written as a decimal ("1.5", "4") or as
// Kubernetes millicores ("500m"). Surrounding spaces are ignored. "0" means
// no limit.
//
// It refuses, as a [*runner.FieldError] naming "cpu.cpus" with s as its
// Value: text of any other shape, negative numbers, more than three decimal
// places (finer than a millicore) and more than [MaxCPUs]. It does not check
// [MinCPUs]; [Config.Validate] does.
func ParseCPUs(s string) (CPUs, error) {
	c, problem := parse(s)
	if problem != "" {
		return 0, invalid(s, problem)
	}
	return c, nil
}

// shape says what a number of CPUs looks like, for error messages.
const shape = `must be a number of CPUs such as 1.5, or millicores such as "500m"`

// parse is [ParseCPUs] returning the problem as text.
func parse(s string) (CPUs, string) {
	t := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		if _, problem := parseUnsigned(rest); problem == shape {
			return 0, shape
		}
		return 0, "must not be negative"
	}
	return parseUnsigned(t)
}

// parseUnsigned parses a number of CPUs with no sign.
func parseUnsigned(t string) (CPUs, string) {
	tooMany := fmt.Sprintf("must be at most %s CPUs", MaxCPUs)
	if digits, ok := strings.CutSuffix(t, "m"); ok {
		if !isDigits(digits) {
			return 0, shape
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n > int64(MaxCPUs) {
			return 0, tooMany
		}
		return CPUs(n), ""
	}
	whole, frac, hasPoint := strings.Cut(t, ".")
	if !isDigits(whole) || hasPoint && !isDigits(frac) {
		return 0, shape
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 3 {
		return 0, "must not be finer than a millicore (0.001 CPU)"
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n > int64(MaxCPUs/1000) {
		return 0, tooMany
	}
	milli := n * 1000
	if frac != "" {
		f, _ := strconv.Atoi(frac + strings.Repeat("0", 3-len(frac))) // 3 digits
		milli += int64(f)
	}
	if milli > int64(MaxCPUs) {
		return 0, tooMany
	}
	return CPUs(milli), ""
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// invalid returns the error for a bad value.
func invalid(value, problem string) error {
	return &runner.FieldError{Field: field, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
}

// Millicores returns the limit in thousandths of a CPU.
func (c CPUs) Millicores() int64 { return int64(c) }

// NanoCPUs returns the limit in the Docker Engine's unit, billionths of a
// CPU, for HostConfig.NanoCPUs: 1.5 CPUs is 1,500,000,000. Zero means no
// limit there too.
func (c CPUs) NanoCPUs() int64 { return int64(c) * 1_000_000 }

// String returns the number of CPUs as a decimal with no trailing zeros:
// "1.5", "4", "0.001". [ParseCPUs] reads it back to the same value.
func (c CPUs) String() string {
	n := int64(c)
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := sign + strconv.FormatInt(n/1000, 10)
	if frac := n % 1000; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
	}
	return s
}

// MarshalJSON writes the limit as a JSON number of CPUs, such as 1.5.
func (c CPUs) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalJSON reads a JSON number (1.5) or string ("1.5", "500m") with
// [ParseCPUs]; null leaves c unchanged. A bad value is a [*runner.FieldError].
func (c *CPUs) UnmarshalJSON(data []byte) error {
	text, kind := jsontext.Read(data)
	switch kind {
	case jsontext.Null:
		return nil
	case jsontext.Other:
		return invalid(text, shape)
	}
	v, err := ParseCPUs(text)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Validate checks the limit. available is the engine's CPU count; a limit
// above it is refused, and 0 skips that check (for validating a
// configuration before any engine is known).
//
// Zero is valid and means no limit. A negative limit, one below [MinCPUs] or
// above [MaxCPUs], or one above available, is a [*runner.FieldError] naming
// "cpu.cpus" with the value as written, matching [runner.ErrInvalidConfig].
func (c Config) Validate(available int) error {
	switch {
	case c.CPUs == 0:
		return nil
	case c.CPUs < 0:
		return invalid(c.text(), "must not be negative (0 means no limit)")
	case c.CPUs < MinCPUs:
		return invalid(c.text(), fmt.Sprintf(`must be at least %s (%dm), or 0 for no limit: the kernel's smallest CPU quota is 1 ms per 100 ms`, MinCPUs, MinCPUs))
	case c.CPUs > MaxCPUs:
		return invalid(c.text(), fmt.Sprintf("must be at most %s CPUs", MaxCPUs))
	case available > 0 && c.CPUs > CPUs(available)*1000:
		return invalid(c.text(), fmt.Sprintf("is more than the %d CPUs the engine has", available))
	}
	return nil
}

// text returns the limit as the user wrote it, or as [CPUs.String] writes it
// when it was not read from JSON or has changed since.
func (c Config) text() string {
	if c.written.text != "" && c.written.value == c.CPUs {
		return c.written.text
	}
	return c.CPUs.String()
}

// MarshalJSON writes {"cpus": ...}, with cpus as it was written when the
// Config was decoded from JSON ("500m" stays "500m"), else as a JSON number;
// {} when there is no limit.
func (c Config) MarshalJSON() ([]byte, error) {
	if c.CPUs == 0 {
		return []byte("{}"), nil
	}
	var v any = c.CPUs
	switch t := c.text(); {
	case t == c.CPUs.String():
	case isJSONNumber(t):
		v = json.Number(t) // as written, e.g. 1.50
	default:
		v = t // as written, e.g. "500m"
	}
	return json.Marshal(map[string]any{"cpus": v})
}

// isJSONNumber reports whether s is a plain decimal that is also a JSON
// number (no leading zeros).
func isJSONNumber(s string) bool {
	whole, frac, hasPoint := strings.Cut(s, ".")
	return isDigits(whole) && (!hasPoint || isDigits(frac)) && (whole == "0" || whole[0] != '0')
}

// UnmarshalJSON reads a Kestra cpu block: a JSON object whose only property
// is cpus, a number or a string (see [ParseCPUs]). null leaves c unchanged.
// Unknown properties are refused, as Kestra refuses them. Every error is a
// [*runner.FieldError]; on error c is unchanged.
func (c *Config) UnmarshalJSON(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if string(trimmed) == "null" {
		return nil
	}
	if !bytes.HasPrefix(trimmed, []byte("{")) {
		text, _ := jsontext.Read(data)
		return &runner.FieldError{Field: "cpu", Value: text, Problem: `must be an object such as {"cpus": 1.5}`, Err: runner.ErrInvalidConfig}
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(data, &props); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if k != "cpus" {
			text, _ := jsontext.Read(props[k])
			return &runner.FieldError{Field: "cpu." + k, Value: text, Problem: "is not a cpu property (the only one is cpus)", Err: runner.ErrInvalidConfig}
		}
	}
	var n Config
	if raw, ok := props["cpus"]; ok {
		if err := n.CPUs.UnmarshalJSON(raw); err != nil {
			return err
		}
		if n.CPUs != 0 {
			text, _ := jsontext.Read(raw)
			n.written = spelling{text: text, value: n.CPUs}
		}
	}
	*c = n
	return nil
}
