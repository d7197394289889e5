package memory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/lading-dev/lading/internal/jsontext"
	"github.com/lading-dev/lading/internal/suggest"
	"github.com/lading-dev/lading/runner"
)

// Config is the memory block of a runner's configuration, with Kestra's
// property names. The zero Config sets no limit; a zero Size or a nil
// pointer leaves the engine's default.
//
// A Config decoded from JSON remembers how each size was written, so that
// errors and warnings quote the user's spelling ("1Gi", not 1073741824) and
// MarshalJSON gives it back; the memory of a field is dropped once the field
// holds another value.
type Config struct {
	// Memory is the hard limit on the container's memory; at least
	// [MinMemory].
	Memory Size `json:"memory,omitzero"`
	// MemorySwap is the limit on memory plus swap: at least Memory, or
	// [Unlimited]. It needs Memory. Equal to Memory means no swap; unset
	// means the same here (see [Config.Limits]).
	MemorySwap Size `json:"memorySwap,omitzero"`
	// MemorySwappiness, from 0 to 100, is how readily the kernel swaps the
	// container's anonymous pages out; nil inherits the host's setting.
	MemorySwappiness *int64 `json:"memorySwappiness,omitempty"`
	// MemoryReservation is a soft limit, enforced when the host runs short
	// of memory; at least [MinMemory] and at most Memory.
	MemoryReservation Size `json:"memoryReservation,omitzero"`
	// KernelMemory is accepted for Kestra compatibility and ignored: see
	// [Config.Warnings].
	KernelMemory Size `json:"kernelMemory,omitzero"`
	// OOMKillDisable true keeps the kernel's OOM killer from killing the
	// container's processes; it needs Memory. nil leaves the default
	// (enabled).
	OOMKillDisable *bool `json:"oomKillDisable,omitempty"`

	written [numSizes]spelling
}

// spelling is a size as the user wrote it, with what it parsed to.
type spelling struct {
	text string
	size Size
}

// sizeField names one of the Config's sizes.
type sizeField int

const (
	memoryField sizeField = iota
	swapField
	reservationField
	kernelField
	numSizes
)

// name returns the field's JSON name.
func (f sizeField) name() string {
	return [numSizes]string{"memory", "memorySwap", "memoryReservation", "kernelMemory"}[f]
}

// in returns the field of c.
func (f sizeField) in(c *Config) *Size {
	return [numSizes]*Size{&c.Memory, &c.MemorySwap, &c.MemoryReservation, &c.KernelMemory}[f]
}

// text returns field f as the user wrote it, or as [Size.String] writes it
// when it was not read from JSON or has changed since.
func (c *Config) text(f sizeField) string {
	v := *f.in(c)
	if w := c.written[f]; w.text != "" && w.size == v {
		return w.text
	}
	return v.String()
}

// invalid returns the error for a bad value of the field named name.
func invalid(name, value, problem string) error {
	return &runner.FieldError{Field: "memory." + name, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
}

// UnmarshalJSON reads a Kestra memory block: a JSON object whose sizes are
// strings or numbers of bytes (see [ParseSize]), memorySwappiness a whole
// number or a string holding one, and oomKillDisable a boolean or the string
// "true" or "false" (any case). null leaves c, or a field, unset. Unknown
// properties are refused, as Kestra refuses them.
//
// Every error is a [*runner.FieldError] naming the field ("memory.memory")
// and quoting the value as written. On error c is unchanged. Rules between
// fields, and ranges, are checked by [Config.Validate], not here.
func (c *Config) UnmarshalJSON(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if string(trimmed) == "null" {
		return nil
	}
	if !bytes.HasPrefix(trimmed, []byte("{")) {
		text, _ := jsontext.Read(data)
		return &runner.FieldError{Field: "memory", Value: text, Problem: `must be an object such as {"memory": "512Mb"}`, Err: runner.ErrInvalidConfig}
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(data, &props); err != nil {
		return err
	}
	var n Config
	for _, key := range slices.Sorted(maps.Keys(props)) {
		if err := n.set(key, props[key]); err != nil {
			return err
		}
	}
	*c = n
	return nil
}

// set decodes one property of the memory block into c.
func (c *Config) set(key string, raw json.RawMessage) error {
	text, k := jsontext.Read(raw)
	switch key {
	case "memory", "memorySwap", "memoryReservation", "kernelMemory":
		f := memoryField
		for f.name() != key {
			f++
		}
		switch k {
		case jsontext.Null:
			return nil
		case jsontext.Other:
			return invalid(key, text, shape)
		}
		v, problem := parseSize(text)
		if problem != "" {
			return invalid(key, text, problem)
		}
		*f.in(c) = v
		if v != 0 {
			c.written[f] = spelling{text: text, size: v}
		}
	case "memorySwappiness":
		if k == jsontext.Null {
			return nil
		}
		v, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if k != jsontext.Scalar || err != nil {
			return invalid(key, text, "must be a whole number from 0 to 100")
		}
		c.MemorySwappiness = &v
	case "oomKillDisable":
		var v bool
		switch {
		case k == jsontext.Null:
			return nil
		case strings.EqualFold(strings.TrimSpace(text), "true"):
			v = true
		case strings.EqualFold(strings.TrimSpace(text), "false"):
		default:
			return invalid(key, text, "must be true or false")
		}
		c.OOMKillDisable = &v
	default:
		names := []string{"memory", "memorySwap", "memorySwappiness", "memoryReservation", "kernelMemory", "oomKillDisable"}
		hint := ""
		if near := suggest.Nearest(key, names); near != "" {
			hint = ": did you mean " + near + "?"
		}
		return invalid(key, text, "is not a memory property (they are "+strings.Join(names, ", ")+")"+hint)
	}
	return nil
}

// MarshalJSON writes the block with Kestra's property names, leaving out
// what is unset. Sizes are strings, as they were written when the Config was
// decoded from JSON ("512Mb" stays "512Mb"), else in the form of
// [Size.String].
func (c Config) MarshalJSON() ([]byte, error) {
	var wire struct {
		Memory            string `json:"memory,omitempty"`
		MemorySwap        string `json:"memorySwap,omitempty"`
		MemorySwappiness  *int64 `json:"memorySwappiness,omitempty"`
		MemoryReservation string `json:"memoryReservation,omitempty"`
		KernelMemory      string `json:"kernelMemory,omitempty"`
		OOMKillDisable    *bool  `json:"oomKillDisable,omitempty"`
	}
	out := [numSizes]*string{&wire.Memory, &wire.MemorySwap, &wire.MemoryReservation, &wire.KernelMemory}
	for f := range numSizes {
		if *f.in(&c) != 0 {
			*out[f] = c.text(f)
		}
	}
	wire.MemorySwappiness, wire.OOMKillDisable = c.MemorySwappiness, c.OOMKillDisable
	return json.Marshal(wire)
}

// Validate reports the first invalid setting as a [*runner.FieldError]
// naming the field ("memory.memorySwap") and its value as written, matching
// [runner.ErrInvalidConfig]. The package documentation lists the rules.
func (c Config) Validate() error {
	negative := func(f sizeField) error {
		if *f.in(&c) == Unlimited {
			return invalid(f.name(), c.text(f), "must not be negative (-1, unlimited, is for memorySwap only)")
		}
		return invalid(f.name(), c.text(f), "must not be negative (0 means no limit)")
	}
	switch {
	case c.Memory < 0:
		return negative(memoryField)
	case c.Memory > 0 && c.Memory < MinMemory:
		return invalid("memory", c.text(memoryField), "must be at least 6MiB (6291456 bytes), the Engine's minimum, or 0 for no limit")

	case c.MemorySwap < Unlimited:
		return invalid("memorySwap", c.text(swapField), "must not be negative, except -1 for unlimited swap")
	case c.MemorySwap > 0 && c.Memory == 0:
		return invalid("memorySwap", c.text(swapField), "needs memory.memory to be set: memorySwap is memory plus swap")
	case c.MemorySwap > 0 && c.MemorySwap < c.Memory:
		return invalid("memorySwap", c.text(swapField), fmt.Sprintf("must not be below memory.memory (%s): memorySwap is memory plus swap; set it equal to memory for no swap, or -1 for unlimited swap", c.text(memoryField)))

	case c.MemorySwappiness != nil && (*c.MemorySwappiness < 0 || *c.MemorySwappiness > 100):
		return invalid("memorySwappiness", strconv.FormatInt(*c.MemorySwappiness, 10), "must be from 0 to 100")

	case c.MemoryReservation < 0:
		return negative(reservationField)
	case c.MemoryReservation > 0 && c.MemoryReservation < MinMemory:
		return invalid("memoryReservation", c.text(reservationField), "must be at least 6MiB (6291456 bytes), the Engine's minimum, or 0 for none")
	case c.Memory > 0 && c.MemoryReservation > c.Memory:
		return invalid("memoryReservation", c.text(reservationField), fmt.Sprintf("must be below memory.memory (%s): it is a soft limit under the hard one", c.text(memoryField)))

	case c.KernelMemory < 0:
		return negative(kernelField)
	case c.KernelMemory > 0 && c.KernelMemory < MinKernelMemory:
		return invalid("kernelMemory", c.text(kernelField), "must be at least 4MiB (4194304 bytes), or 0 for no limit")

	case c.OOMKillDisable != nil && *c.OOMKillDisable && c.Memory == 0:
		return invalid("oomKillDisable", "true", "needs memory.memory to be set: without a memory limit the container could exhaust the host's memory, and the kernel would kill the host's processes instead")
	}
	return nil
}

// Warnings returns, one sentence each, the settings that are valid but will
// not take effect as written; nil when there are none. The docker runner
// logs them and adds them to the run's Result.Warnings.
//
// kernelMemory is always ignored: Linux 5.4 deprecated kernel memory limits,
// cgroup v2 has none, Docker Engine 20.10 deprecated the option, and Engine
// API 1.42 (Docker 23.0) and later ignore it. A memoryReservation equal to
// memory does nothing.
func (c Config) Warnings() []string {
	var w []string
	if c.KernelMemory != 0 {
		w = append(w, fmt.Sprintf("memory.kernelMemory is ignored: kernel memory limits are deprecated (Linux 5.4, Docker Engine 20.10), unsupported on cgroup v2 and ignored by Engine API 1.42 and later, so the container runs without the %q kernel memory limit", c.text(kernelField)))
	}
	if c.MemoryReservation > 0 && c.MemoryReservation == c.Memory {
		w = append(w, fmt.Sprintf("memory.memoryReservation %q has no effect: it equals memory.memory, and a soft limit at the hard limit never applies; set it lower", c.text(reservationField)))
	}
	return w
}

// Limits are a [Config]'s settings as the Docker Engine takes them in
// HostConfig (container.Resources): sizes in bytes, 0 or nil for the
// engine's default.
type Limits struct {
	Memory            int64  // hard limit; 0: none
	MemorySwap        int64  // memory plus swap; -1: unlimited swap; 0: the engine's default
	MemoryReservation int64  // soft limit; 0: none
	KernelMemory      int64  // ignored by current engines (see [Config.Warnings]); the docker runner does not send it
	MemorySwappiness  *int64 // 0 to 100; nil: the host's setting
	OOMKillDisable    *bool  // nil: the default (the OOM killer is enabled)
}

// Limits returns the settings of a validated Config as the Engine takes
// them. With memory set and memorySwap unset, MemorySwap is Memory: the
// container gets no swap, rather than the Engine's default of as much swap
// again as memory, so that a memory limit is a limit. Write memorySwap "-1"
// for unlimited swap. The pointers are fresh copies.
func (c Config) Limits() Limits {
	l := Limits{
		Memory:            int64(c.Memory),
		MemorySwap:        int64(c.MemorySwap),
		MemoryReservation: int64(c.MemoryReservation),
		KernelMemory:      int64(c.KernelMemory),
	}
	if c.Memory > 0 && c.MemorySwap == 0 {
		l.MemorySwap = l.Memory
	}
	if c.MemorySwappiness != nil {
		v := *c.MemorySwappiness
		l.MemorySwappiness = &v
	}
	if c.OOMKillDisable != nil {
		v := *c.OOMKillDisable
		l.OOMKillDisable = &v
	}
	return l
}
