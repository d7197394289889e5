package memory_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// A Kestra memory block gives the numbers the docker runner copies into the
// Engine's HostConfig.
func ExampleConfig() {
	var m memory.Config
	block := `{"memory":"512Mb","memorySwap":"1Gi","memorySwappiness":60,"oomKillDisable":"true"}`
	if err := json.Unmarshal([]byte(block), &m); err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	l := m.Limits()
	fmt.Println(l.Memory, l.MemorySwap, *l.MemorySwappiness, *l.OOMKillDisable)
	// Output: 536870912 1073741824 60 true
}

// Every unit is binary, whatever its spelling.
func ExampleParseSize() {
	for _, s := range []string{"512MB", "512Mb", "512mb", "512Mi", "512000KB", "0.5GB", "100Ki", "1000"} {
		size, err := memory.ParseSize(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-8s %10d bytes = %s\n", s, size.Bytes(), size)
	}
	_, err := memory.ParseSize("lots")
	fmt.Println(err)
	// Output:
	// 512MB     536870912 bytes = 512MiB
	// 512Mb     536870912 bytes = 512MiB
	// 512mb     536870912 bytes = 512MiB
	// 512Mi     536870912 bytes = 512MiB
	// 512000KB  524288000 bytes = 500MiB
	// 0.5GB     536870912 bytes = 512MiB
	// 100Ki        102400 bytes = 100KiB
	// 1000           1000 bytes = 1000
	// invalid config: size "lots": must be a size: a number and an optional binary unit, such as "512Mi", "512Mb", "0.5GB" or "64m"
}

// Errors name the field and quote the value as the user wrote it.
func ExampleConfig_Validate() {
	var m memory.Config
	_ = json.Unmarshal([]byte(`{"memory":"512Mb","memorySwap":"256Mi"}`), &m)
	err := m.Validate()
	var fe *runner.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field, fe.Value, errors.Is(err, runner.ErrInvalidConfig))
	}
	fmt.Println(err)

	err = json.Unmarshal([]byte(`{"memory":"lots"}`), &m)
	if errors.As(err, &fe) {
		fmt.Println(fe.Field, fe.Value)
	}
	// Output:
	// memory.memorySwap 256Mi true
	// invalid config: memory.memorySwap "256Mi": must not be below memory.memory (512Mb): memorySwap is memory plus swap; set it equal to memory for no swap, or -1 for unlimited swap
	// memory.memory lots
}

// kernelMemory is accepted but has no effect; the warning says so.
func ExampleConfig_Warnings() {
	var m memory.Config
	_ = json.Unmarshal([]byte(`{"memory":"64m","kernelMemory":"32m"}`), &m)
	for _, w := range m.Warnings() {
		fmt.Println(w)
	}
	// Output:
	// memory.kernelMemory is ignored: kernel memory limits are deprecated (Linux 5.4, Docker Engine 20.10), unsupported on cgroup v2 and ignored by Engine API 1.42 and later, so the container runs without the "32m" kernel memory limit
}
