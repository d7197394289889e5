// Command limits runs a script under a CPU and memory limit and prints what
// the container sees in its cgroup, then what it used.
//
//	go run ./examples/limits -image lading-test/busybox:latest -cpus 0.5 -memory 64Mi
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

func main() {
	image := flag.String("image", "busybox:1.36", "image to run the script in")
	cpus := flag.String("cpus", "0.5", `CPU limit, e.g. 1.5 or "500m"`)
	mem := flag.String("memory", "64Mi", `memory limit, e.g. "64Mi" or "512Mb"`)
	flag.Parse()
	if err := run(*image, *cpus, *mem); err != nil {
		fmt.Fprintln(os.Stderr, "limits:", err)
		os.Exit(1)
	}
}

func run(image, cpus, mem string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := cpu.ParseCPUs(cpus)
	if err != nil {
		return err
	}
	m, err := memory.ParseSize(mem)
	if err != nil {
		return err
	}
	r, err := docker.New(docker.Config{
		StatsInterval: docker.Duration(time.Second),
		Container:     docker.Container{CPU: cpu.Config{CPUs: c}, Memory: memory.Config{Memory: m}},
	})
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Run(ctx, runner.Task{
		Image: image,
		Commands: []string{
			`if [ -f /sys/fs/cgroup/cgroup.controllers ]; then`,
			`  echo "cpu.max:    $(cat /sys/fs/cgroup/cpu.max)"; echo "memory.max: $(cat /sys/fs/cgroup/memory.max)"`,
			`else`,
			`  echo "cpu quota:  $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) per $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) us"`,
			`  echo "memory:     $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) bytes"`,
			`fi`,
			`echo "burning CPU for 2 s..."; timeout -s KILL 2 sh -c 'while :; do :; done' || true; echo done`, // timeout exits 137: || true, or set -e ends the script
		},
		Stdout: os.Stdout,
		OnStats: func(s runner.Stats) {
			fmt.Printf("  stats: cpu %5.1f%%  memory %d KiB of %d MiB  pids %d\n", s.CPUPercent, s.MemoryUsage>>10, s.MemoryLimit>>20, s.PIDs)
		},
	})
	if res != nil {
		defer os.RemoveAll(res.WorkingDir) // the files it holds are not needed here
	}
	var exit *runner.ExitError
	if errors.As(err, &exit) && exit.OOMKilled {
		fmt.Println("the script went over its memory limit")
	} else if err != nil {
		return err
	}
	fmt.Printf("peak memory %d KiB, CPU time %s, wall time %s\n", res.PeakMemory>>10, res.CPUTime.Round(time.Millisecond), res.Duration().Round(time.Millisecond))
	return nil
}
