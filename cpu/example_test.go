package cpu_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/runner"
)

// A Kestra cpu block, checked against an engine with 4 CPUs, gives the
// number the docker runner puts into HostConfig.NanoCPUs.
func ExampleConfig() {
	var c cpu.Config
	if err := json.Unmarshal([]byte(`{"cpus": 1.5}`), &c); err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Validate(4); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.CPUs, c.CPUs.NanoCPUs())
	// Output: 1.5 1500000000
}

// Kubernetes millicores are accepted too.
func ExampleParseCPUs() {
	c, err := cpu.ParseCPUs("500m")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c, c.Millicores(), c.NanoCPUs())
	// Output: 0.5 500 500000000
}

// A bad value is a *runner.FieldError naming the field and quoting the value
// as written, even when it comes through json.Unmarshal.
func ExampleConfig_Validate() {
	var c cpu.Config
	_ = json.Unmarshal([]byte(`{"cpus": "6000m"}`), &c)
	err := c.Validate(4)
	var fe *runner.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field, fe.Value, errors.Is(err, runner.ErrInvalidConfig))
	}
	fmt.Println(err)

	err = json.Unmarshal([]byte(`{"cpus": "two"}`), &c)
	fmt.Println(err)
	// Output:
	// cpu.cpus 6000m true
	// invalid config: cpu.cpus "6000m": is more than the 4 CPUs the engine has
	// invalid config: cpu.cpus "two": must be a number of CPUs such as 1.5, or millicores such as "500m"
}
