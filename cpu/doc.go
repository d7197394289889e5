// Package cpu reads and checks a task's CPU limit, written the way Kestra's
// Docker task runner writes it: a cpu block holding cpus, the number of CPUs
// the container may use.
//
//	cpu:
//	  cpus: 1.5
//
// The package is pure: it imports no container engine. An engine turns the
// limit into its own unit; the docker runner puts [CPUs.NanoCPUs] into the
// Engine's HostConfig.NanoCPUs (1.5 CPUs is 1,500,000,000), which the Engine
// enforces as a CFS quota of 150 ms per 100 ms period.
//
// # Accepted forms
//
// cpus may be a JSON number or a string, in either of two spellings:
//
//	1.5, "1.5", "4", "0.25"   a decimal number of CPUs
//	"500m", "1500m"           Kubernetes millicores: thousandths of a CPU
//
// The finest step is one millicore (0.001 CPU): "0.0005" is refused rather
// than rounded, so the limit applied is always the limit written. Exponents
// ("1e3"), signs ("+1") and hexadecimal are refused too. Surrounding spaces
// inside a string are ignored.
//
// # Zero, range and errors
//
// Zero (or an absent cpu block) means no limit. [Config.Validate] refuses a
// negative limit, a limit below [MinCPUs] (0.01 CPU: the kernel's smallest
// CFS quota is 1 ms per 100 ms period, and the Engine would fail to start the
// container with a cryptic "invalid argument" from runc), and a limit above the
// engine's CPU count when that count is known.
//
// Every error about a value is a [*runner.FieldError] naming the field
// ("cpu.cpus") and quoting the value as the user wrote it; it matches
// [runner.ErrInvalidConfig]. Errors raised while decoding JSON survive
// encoding/json, so [errors.As] finds them on the error json.Unmarshal
// returns.
//
// # Example
//
// A complete program reading a Kestra cpu block:
//
//	package main
//
//	import (
//		"encoding/json"
//		"errors"
//		"fmt"
//		"log"
//
//		"github.com/lading-dev/lading/cpu"
//		"github.com/lading-dev/lading/runner"
//	)
//
//	func main() {
//		var c cpu.Config
//		err := json.Unmarshal([]byte(`{"cpus": "500m"}`), &c)
//		if err == nil {
//			err = c.Validate(4) // the engine has 4 CPUs
//		}
//		var fe *runner.FieldError
//		if errors.As(err, &fe) {
//			log.Fatalf("fix %s: %s", fe.Field, fe.Problem)
//		} else if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(c.CPUs, c.CPUs.NanoCPUs()) // 0.5 500000000
//	}
//
// # Concurrency
//
// [Config] and [CPUs] are plain values: safe to copy, to reuse and to read
// from several goroutines at once.
package cpu
