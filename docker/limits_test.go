package docker_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// cgroupScript prints "name value" lines for the limits the kernel holds,
// reading cgroup v1 or v2 files, whichever the host has.
var cgroupScript = []string{
	`if [ -f /sys/fs/cgroup/cgroup.controllers ]; then`,
	`  set -- $(cat /sys/fs/cgroup/cpu.max); echo "cpu $1 $2"`,
	`  echo "memory $(cat /sys/fs/cgroup/memory.max)"`,
	`  echo "swap $(( $(cat /sys/fs/cgroup/memory.swap.max 2>/dev/null || echo 0) + $(cat /sys/fs/cgroup/memory.max) ))"`,
	`  echo "pids $(cat /sys/fs/cgroup/pids.max)"`,
	`else`,
	`  echo "cpu $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"`,
	`  echo "memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"`,
	`  echo "swap $(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || echo unsupported)"`,
	`  echo "pids $(cat /sys/fs/cgroup/pids/pids.max)"`,
	`fi`,
}

func cgroupLimits(t *testing.T, cfg docker.Config) map[string]string {
	t.Helper()
	r, _ := newRunner(t, cfg)
	var out strings.Builder
	_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: cgroupScript, Stdout: &out})
	require.NoError(t, err)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	return got
}

func parseConfig(t *testing.T, js string) docker.Config {
	t.Helper()
	cfg, err := docker.ParseConfig([]byte(js))
	require.NoError(t, err)
	return cfg
}

func TestLimitsReachTheKernel(t *testing.T) {
	got := cgroupLimits(t, parseConfig(t, `{"cpu":{"cpus":1.5},"memory":{"memory":"64Mi"},"pidsLimit":50}`))
	assert.Equal(t, "150000 100000", got["cpu"], "1.5 CPUs: quota 150000 per 100000 period")
	assert.Equal(t, "67108864", got["memory"])
	if got["swap"] != "unsupported" {
		assert.Equal(t, "67108864", got["swap"], "no swap beyond memory unless asked")
	}
	assert.Equal(t, "50", got["pids"])

	t.Run("millicores", func(t *testing.T) {
		got := cgroupLimits(t, parseConfig(t, `{"cpu":{"cpus":"500m"}}`))
		assert.Equal(t, "50000 100000", got["cpu"])
	})
	t.Run("swap", func(t *testing.T) {
		got := cgroupLimits(t, parseConfig(t, `{"memory":{"memory":"64m","memorySwap":"128m"}}`))
		if got["swap"] == "unsupported" {
			t.Skip("the kernel has no swap accounting (memory.memsw files absent)")
		}
		assert.Equal(t, "134217728", got["swap"])
	})
}

func TestCPUsAboveTheEngineFail(t *testing.T) {
	r, _ := newRunner(t, parseConfig(t, `{"cpu":{"cpus":4096}}`))
	_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "cpu.cpus", fe.Field)
	assert.Equal(t, "4096", fe.Value)
}

func TestOOM(t *testing.T) {
	r, _ := newRunner(t, parseConfig(t, `{"memory":{"memory":"32m"}}`))
	t.Run("allocating past the limit is OOM", func(t *testing.T) {
		testenv.SkipOnPodman(t, "Podman 4.3 never sets State.OOMKilled (fixed in Podman 5) and leaves no other trace: no oom event, no oom file; an OOM kill reads as exit code 137")
		res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image,
			// awk doubles a string until the limit stops it.
			Commands: []string{`awk 'BEGIN { s = "x"; while (1) s = s s }'`}})
		var exit *runner.ExitError
		require.ErrorAs(t, err, &exit)
		assert.True(t, exit.OOMKilled)
		assert.True(t, res.OOMKilled)
		assert.Equal(t, 137, res.ExitCode)
		assert.Contains(t, err.Error(), "memory limit")
	})
	t.Run("a SIGKILL from elsewhere is not OOM", func(t *testing.T) {
		res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{`sh -c 'kill -9 $$'`, "exit $?"}})
		var exit *runner.ExitError
		require.ErrorAs(t, err, &exit)
		assert.Equal(t, 137, exit.ExitCode)
		assert.False(t, exit.OOMKilled)
		assert.False(t, res.OOMKilled)
		assert.NotContains(t, err.Error(), "memory")
	})
}

func TestInitReapsAndForwards(t *testing.T) {
	r, _ := newRunner(t, docker.Config{Container: docker.Container{Init: true}})
	var out strings.Builder
	_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Stdout: &out, Commands: []string{"cat /proc/1/cmdline | tr '\\0' ' '; echo"}})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "init", "PID 1 is the engine's init, not the shell")
}

func TestKernelMemoryWarns(t *testing.T) {
	r, _ := newRunner(t, parseConfig(t, `{"memory":{"memory":"64m","kernelMemory":"32m"}}`))
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.NoError(t, err)
	require.NotEmpty(t, res.Warnings)
	assert.Contains(t, strings.Join(res.Warnings, "\n"), "kernelMemory is ignored")
}

func TestResourceConfigJSON(t *testing.T) {
	cfg := parseConfig(t, `{"cpu":{"cpus":"1.5"},"memory":{"memory":"512Mb","memorySwappiness":10},"shmSize":"64m","init":true,"pidsLimit":100}`)
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	back := parseConfig(t, string(data))
	assert.Equal(t, cfg.CPU, back.CPU)
	assert.Equal(t, cfg.Memory, back.Memory)
	_, err = docker.ParseConfig([]byte(`{"memory":{"memory":"1k"}}`))
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "memory.memory")
}
