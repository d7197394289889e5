package memory

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/docker/go-units"

	"github.com/lading-dev/lading/internal/jsontext"
	"github.com/lading-dev/lading/runner"
)

// Size is a number of bytes. In JSON it is a string such as "512Mb" or
// "2Gi" (see [ParseSize]) or a plain number of bytes.
type Size int64

const (
	// Unlimited is the memorySwap value -1: swap without limit.
	Unlimited Size = -1
	// MinMemory is the smallest memory or memoryReservation the Docker
	// Engine accepts: 6 MiB (6,291,456 bytes).
	MinMemory Size = 6 << 20
	// MinKernelMemory is the smallest kernelMemory accepted: 4 MiB, as
	// Kestra documents it.
	MinKernelMemory Size = 4 << 20
	// MaxSize is the largest size accepted: 4 EiB (2^62 bytes), far beyond
	// any machine, and far enough from the int64 limit that no sum
	// overflows.
	MaxSize Size = 1 << 62
)

// shape says what a size looks like, for error messages.
const shape = `must be a size: a number and an optional binary unit, such as "512Mi", "512Mb", "0.5GB" or "64m"`

// ParseSize parses a size: a number, an optional space and an optional unit,
// all units binary and case-insensitive ("512Mb", "512MiB", "512m" and
// "512Mi" are all 536,870,912 bytes; "0.5GB" is 536,870,912 bytes; a bare
// number is bytes). "-1" is [Unlimited], which only memorySwap accepts.
// Surrounding spaces are ignored.
//
// The error for anything else (garbage, another negative number, a size
// above [MaxSize], or a non-zero size below one byte such as "0.1") quotes
// s and matches [runner.ErrInvalidConfig]. [Config.UnmarshalJSON] turns it
// into a [*runner.FieldError] naming the field.
func ParseSize(s string) (Size, error) {
	v, problem := parseSize(s)
	if problem != "" {
		return 0, fmt.Errorf("%w: size %q: %s", runner.ErrInvalidConfig, s, problem)
	}
	return v, nil
}

// parseSize is [ParseSize] returning the problem as text.
func parseSize(s string) (Size, string) {
	t := strings.TrimSpace(s)
	if strings.ContainsFunc(t, func(r rune) bool { return r >= utf8.RuneSelf }) {
		// Units are ASCII. go-units would take "5P\x80" for 5 PiB: it
		// checks the unit's length before lower-casing it, which turns the
		// invalid byte into a 3-byte U+FFFD (found by FuzzParseSize).
		return 0, shape
	}
	if t == "-1" {
		return Unlimited, ""
	}
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		if _, err := units.RAMInBytes(kubernetesUnit(rest)); err == nil {
			return 0, "must not be negative"
		}
		return 0, shape
	}
	n, err := units.RAMInBytes(kubernetesUnit(t))
	switch {
	case err != nil:
		return 0, shape
	case n < 0 || Size(n) > MaxSize:
		// go-units converts the float to int64 unchecked: beyond int64 it
		// gives a negative number (amd64) or the maximum (arm64).
		return 0, "must be at most " + MaxSize.String()
	case n == 0 && strings.ContainsAny(t, "123456789"):
		return 0, "must be at least one byte, or 0 for no limit"
	}
	return Size(n), ""
}

// kubernetesUnit turns Kubernetes' binary units "Ki", "Mi", "Gi", "Ti" and
// "Pi" into "KiB", "MiB", ...: go-units (v0.5.0) reads "KiB" and "KB" but
// refuses the bare "Ki" that Kubernetes users write, although it means the
// same binary unit. Other spellings are left to go-units, including
// Kubernetes' decimal "M" and milli "m", which go-units reads as MiB like
// the docker CLI does.
func kubernetesUnit(t string) string {
	n := len(t)
	if n >= 2 && (t[n-1] == 'i' || t[n-1] == 'I') && strings.IndexByte("kKmMgGtTpP", t[n-2]) >= 0 {
		return t + "B"
	}
	return t
}

// String returns the size in the largest binary unit that holds it exactly,
// such as "512MiB", "1536KiB" or "1000" (bytes); [Unlimited] is "-1".
// [ParseSize] reads it back to the same size.
func (s Size) String() string {
	sign, u := "", uint64(s)
	if s < 0 {
		sign, u = "-", -uint64(s)
	}
	for _, unit := range [...]struct {
		shift uint
		name  string
	}{{50, "PiB"}, {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if u != 0 && u&(1<<unit.shift-1) == 0 {
			return sign + strconv.FormatUint(u>>unit.shift, 10) + unit.name
		}
	}
	return sign + strconv.FormatUint(u, 10)
}

// Bytes returns the size as a number of bytes (-1 for [Unlimited]).
func (s Size) Bytes() int64 { return int64(s) }

// MarshalJSON writes the size as a JSON string in the form of
// [Size.String], such as "512MiB".
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a JSON string with [ParseSize], or a JSON number of
// bytes; null leaves s unchanged. Its errors match
// [runner.ErrInvalidConfig] but cannot name the field: [Config] reads its
// sizes itself and names them.
func (s *Size) UnmarshalJSON(data []byte) error {
	text, k := jsontext.Read(data)
	switch k {
	case jsontext.Null:
		return nil
	case jsontext.Other:
		return fmt.Errorf("%w: size %s: %s", runner.ErrInvalidConfig, text, shape)
	}
	v, err := ParseSize(text)
	if err != nil {
		return err
	}
	*s = v
	return nil
}
