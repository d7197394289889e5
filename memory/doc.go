// Package memory reads and checks a task's memory limits, written the way
// Kestra's Docker task runner writes them: a memory block with the
// properties memory, memorySwap, memorySwappiness, memoryReservation,
// kernelMemory and oomKillDisable.
//
//	memory:
//	  memory: "512Mb"
//	  memorySwap: "1Gi"
//	  memorySwappiness: 60
//	  oomKillDisable: "true"
//
// The package is pure: it imports no container engine. [Config.Limits]
// gives the numbers the docker runner copies into the Engine's
// HostConfig (container.Resources).
//
// # Sizes
//
// memory, memorySwap, memoryReservation and kernelMemory are sizes: a JSON
// string holding a number, an optional space and an optional unit, parsed by
// [ParseSize] with github.com/docker/go-units (what `docker run --memory`
// accepts), plus Kubernetes' "Ki", "Mi", "Gi", "Ti", "Pi". A plain JSON
// number is a number of bytes. Units ignore case, and every unit is binary
// (powers of 1024), whatever its spelling:
//
//	unit                      meaning   bytes
//	none, b                   bytes     1
//	k, kb, kib, ki            KiB       1024
//	m, mb, mib, mi            MiB       1024^2 = 1,048,576
//	g, gb, gib, gi            GiB       1024^3 = 1,073,741,824
//	t, tb, tib, ti            TiB       1024^4
//	p, pb, pib, pi            PiB       1024^5
//
// So the spellings in Kestra's documentation, "512MB", "512Mb" and "512mb",
// are all 512 MiB (536,870,912 bytes); "512000KB" is 524,288,000 bytes;
// "0.5GB" is 536,870,912 bytes. Fractions are allowed and whatever falls
// below a whole byte is dropped, as the docker CLI drops it.
//
// Two spellings mean something else in a Kubernetes manifest: there "512M"
// is 512,000,000 bytes and "512m" is 0.512 bytes. Here they follow Docker:
// both are 512 MiB.
//
// memorySwap also takes "-1" (or -1): swap without limit, [Unlimited].
// Sizes are written back by [Size.String] in the largest binary unit that
// holds them exactly ("512MiB", "1536KiB", "1000").
//
// # Rules
//
// A zero or absent size, and an absent memorySwappiness or oomKillDisable,
// leave the engine's default. [Config.Validate] refuses what the Engine
// would refuse, and a few settings that cannot do what they say:
//
//   - memory below [MinMemory] (6 MiB, the Engine's minimum);
//   - memorySwap without memory (it is memory plus swap), or below memory;
//     "-1" is always accepted;
//   - memoryReservation below 6 MiB, or above memory (equal to memory is
//     accepted, as the Engine accepts it, with a warning: a soft limit at the
//     hard limit does nothing);
//   - memorySwappiness outside 0 to 100;
//   - oomKillDisable true without memory (the host itself could run out of
//     memory);
//   - kernelMemory below [MinKernelMemory] (4 MiB);
//   - any negative size, and -1 anywhere but memorySwap.
//
// With memory set and memorySwap unset, [Config.Limits] gives the container
// no swap beyond its memory (memorySwap = memory) instead of the Engine's
// default of as much swap again, so that a memory limit is a limit.
//
// # Warnings
//
// kernelMemory is accepted for Kestra compatibility but has no effect: Linux
// 5.4 deprecated kernel memory limits, cgroup v2 has none, Docker Engine
// 20.10 deprecated the option and Engine API 1.42 (Docker 23.0) ignores it.
// [Config.Warnings] says so, and the docker runner logs the warning and puts
// it into the run's Result.Warnings rather than dropping it silently. The
// Engine may also discard oomKillDisable on cgroup v2 hosts; it reports that
// itself when the container is created.
//
// # Errors
//
// Every error about a value is a [*runner.FieldError] naming the field as the
// user writes it ("memory.memorySwap") and quoting the value as written
// ("1Gi", not 1073741824), matching [runner.ErrInvalidConfig]. Errors raised
// while decoding JSON survive encoding/json, so [errors.As] finds them on the
// error json.Unmarshal returns.
//
// # Example
//
// A complete program reading a Kestra memory block:
//
//	package main
//
//	import (
//		"encoding/json"
//		"fmt"
//		"log"
//
//		"github.com/lading-dev/lading/memory"
//	)
//
//	func main() {
//		var m memory.Config
//		block := `{"memory": "512Mb", "memorySwap": "1Gi", "memorySwappiness": 60}`
//		if err := json.Unmarshal([]byte(block), &m); err != nil {
//			log.Fatal(err)
//		}
//		if err := m.Validate(); err != nil {
//			log.Fatal(err) // e.g. invalid config: memory.memory "5m": must be at least 6MiB ...
//		}
//		for _, w := range m.Warnings() {
//			log.Print(w)
//		}
//		l := m.Limits()
//		fmt.Println(l.Memory, l.MemorySwap, *l.MemorySwappiness) // 536870912 1073741824 60
//	}
//
// # Concurrency
//
// [Config], [Size] and [Limits] are plain values: safe to copy, to reuse and
// to read from several goroutines at once. [Config.Limits] returns fresh
// pointers, so changing the Limits does not change the Config.
package memory
