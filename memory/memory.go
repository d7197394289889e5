// Package memory holds a task's memory limits in the form of Kestra's Docker
// task runner: memory, memorySwap, memorySwappiness, memoryReservation,
// kernelMemory and oomKillDisable.
//
// # Sizes
//
// Sizes are strings parsed with github.com/docker/go-units, all in binary
// units whatever the spelling:
//
//	"512"            bytes
//	"64k", "64KB"    x 1024
//	"512m", "512Mb"  x 1024^2  ("512MB", "512mb" alike)
//	"0.5GB", "2g"    x 1024^3
//	"1t"             x 1024^4
//	"512Mi", "2Gi"   Kubernetes' spelling, the same binary units
//
// So "512000KB" is 524,288,000 bytes and "0.5GB" is 536,870,912 bytes. A
// plain JSON number is a number of bytes.
//
// # Example
//
//	var m memory.Config
//	_ = json.Unmarshal([]byte(`{"memory":"512Mi","memorySwap":"1Gi"}`), &m)
//	if err := m.Validate(); err != nil { ... }
//	limits := m.Limits() // bytes, for the Engine's HostConfig
package memory

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/go-units"

	"github.com/lading-dev/lading/runner"
)

// MinMemory is the smallest memory limit the Docker Engine accepts (6 MiB).
const MinMemory = 6 << 20

// minKernelMemory is the smallest kernel memory limit (4 MiB).
const minKernelMemory = 4 << 20

// Size is a number of bytes written as a size string.
type Size int64

// Unlimited is the memorySwap value "-1": swap without limit.
const Unlimited Size = -1

// ParseSize parses a size such as "512Mb", "0.5GB", "64m" or "2Gi" (binary
// units), or "-1" (unlimited, meaningful for memorySwap only).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "-1" {
		return Unlimited, nil
	}
	// go-units knows "KiB" but not Kubernetes' "Ki", "Mi", "Gi": they mean
	// the same binary units, so drop the "i".
	if n := len(t); n >= 2 && (t[n-1] == 'i' || t[n-1] == 'I') && strings.ContainsRune("kKmMgGtTpP", rune(t[n-2])) {
		t = t[:n-1]
	}
	f, err := units.RAMInBytes(t)
	if err != nil || f < 0 || f > 1<<62 {
		return 0, fmt.Errorf("size %q: must be a number with an optional unit such as \"512Mb\", \"0.5GB\" or \"2Gi\"", s)
	}
	return Size(f), nil
}

// String returns the size in bytes, or "-1".
func (s Size) String() string { return strconv.FormatInt(int64(s), 10) }

// MarshalJSON writes the size as a string of bytes.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts a size string or a JSON number of bytes.
func (s *Size) UnmarshalJSON(b []byte) error {
	str := string(b)
	if strings.HasPrefix(str, `"`) {
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
	}
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Config is the memory block of a runner's configuration. Zero fields are
// unset.
type Config struct {
	Memory            Size  `json:"memory,omitzero"`
	MemorySwap        Size  `json:"memorySwap,omitzero"`
	MemorySwappiness  *int  `json:"memorySwappiness,omitempty"` // 0..100; nil inherits the host's
	MemoryReservation Size  `json:"memoryReservation,omitzero"`
	KernelMemory      Size  `json:"kernelMemory,omitzero"`
	OOMKillDisable    *bool `json:"oomKillDisable,omitempty"`
}

// UnmarshalJSON reads Kestra's block, where numbers and booleans may also be
// strings, and reports a bad value as a [*runner.FieldError] naming it.
func (c *Config) UnmarshalJSON(b []byte) error {
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(b, &wire); err != nil {
		return err
	}
	*c = Config{}
	sizes := map[string]*Size{"memory": &c.Memory, "memorySwap": &c.MemorySwap, "memoryReservation": &c.MemoryReservation, "kernelMemory": &c.KernelMemory}
	for key, raw := range wire {
		value := strings.Trim(string(raw), `"`)
		bad := func(problem string) error {
			return &runner.FieldError{Field: "memory." + key, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
		}
		switch key {
		case "memory", "memorySwap", "memoryReservation", "kernelMemory":
			if err := sizes[key].UnmarshalJSON(raw); err != nil {
				return bad(`must be a size such as "512Mb", "0.5GB" or "2Gi"`)
			}
		case "memorySwappiness":
			n, err := strconv.Atoi(value)
			if err != nil {
				return bad("must be an integer from 0 to 100")
			}
			c.MemorySwappiness = &n
		case "oomKillDisable":
			v, err := strconv.ParseBool(value)
			if err != nil {
				return bad("must be true or false")
			}
			c.OOMKillDisable = &v
		default:
			return &runner.FieldError{Field: "memory." + key, Value: value, Problem: "is not a memory property", Err: runner.ErrInvalidConfig}
		}
	}
	return nil
}

// Validate reports the first inconsistent setting as a [*runner.FieldError].
func (c Config) Validate() error {
	bad := func(field string, v any, problem string) error {
		return &runner.FieldError{Field: "memory." + field, Value: fmt.Sprint(v), Problem: problem, Err: runner.ErrInvalidConfig}
	}
	switch {
	case c.Memory < 0:
		return bad("memory", c.Memory, "must not be negative")
	case c.Memory > 0 && c.Memory < MinMemory:
		return bad("memory", c.Memory, "must be at least 6 MiB (6291456 bytes), the engine's minimum")
	case c.MemoryReservation < 0:
		return bad("memoryReservation", c.MemoryReservation, "must not be negative")
	case c.MemoryReservation > 0 && c.Memory > 0 && c.MemoryReservation >= c.Memory:
		return bad("memoryReservation", c.MemoryReservation, fmt.Sprintf("must be below memory (%d bytes) to take effect", c.Memory))
	case c.MemorySwap != 0 && c.Memory == 0:
		return bad("memorySwap", c.MemorySwap, "needs memory to be set: it is memory plus swap")
	case c.MemorySwap < -1:
		return bad("memorySwap", c.MemorySwap, "must be -1 (unlimited) or a size")
	case c.MemorySwap > 0 && c.MemorySwap < c.Memory:
		return bad("memorySwap", c.MemorySwap, fmt.Sprintf("must not be below memory (%d bytes): it is memory plus swap", c.Memory))
	case c.MemorySwappiness != nil && (*c.MemorySwappiness < 0 || *c.MemorySwappiness > 100):
		return bad("memorySwappiness", *c.MemorySwappiness, "must be from 0 to 100")
	case c.OOMKillDisable != nil && *c.OOMKillDisable && c.Memory == 0:
		return bad("oomKillDisable", true, "needs memory to be set, or the host itself may run out of memory")
	case c.KernelMemory < 0:
		return bad("kernelMemory", c.KernelMemory, "must not be negative")
	case c.KernelMemory > 0 && c.KernelMemory < minKernelMemory:
		return bad("kernelMemory", c.KernelMemory, "must be at least 4 MiB")
	}
	return nil
}

// Warnings returns what will not take effect as written.
func (c Config) Warnings() []string {
	if c.KernelMemory > 0 {
		return []string{"memory.kernelMemory is ignored: kernel memory limits are deprecated by the Linux kernel, not supported on cgroup v2, and removed from Engine API 1.42; the container runs without one"}
	}
	return nil
}

// Limits are the Engine's numbers, in bytes.
type Limits struct {
	Memory            int64
	MemorySwap        int64
	MemoryReservation int64
	MemorySwappiness  *int64
	OOMKillDisable    *bool
}

// Limits returns the settings as the Engine takes them. Kernel memory is
// left out (see [Config.Warnings]). With memory set and memorySwap unset,
// swap is limited to nothing extra (memorySwap = memory) rather than the
// engine's default of as much again: a memory limit should be one.
func (c Config) Limits() Limits {
	l := Limits{Memory: int64(c.Memory), MemorySwap: int64(c.MemorySwap), MemoryReservation: int64(c.MemoryReservation), OOMKillDisable: c.OOMKillDisable}
	if c.Memory > 0 && c.MemorySwap == 0 {
		l.MemorySwap = int64(c.Memory)
	}
	if c.MemorySwappiness != nil {
		v := int64(*c.MemorySwappiness)
		l.MemorySwappiness = &v
	}
	return l
}
