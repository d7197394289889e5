package docker_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/runner/runnertest"
)

// newPool returns a Runner with a warm pool of size containers.
func newPool(t *testing.T, cfg docker.Config, pool docker.Pool, opts ...docker.Option) *docker.Runner {
	t.Helper()
	r, _ := newRunner(t, cfg, append(opts, docker.WithPool(pool))...)
	return r
}

// pooledRun runs commands and requires it ran in a warm container.
func pooledRun(t *testing.T, r *docker.Runner, task runner.Task) (*runner.Result, error, *docker.Details) {
	t.Helper()
	if task.Image == "" {
		task.Image = testenv.Image
	}
	var out strings.Builder
	if task.Stdout == nil {
		task.Stdout = &out
	}
	res, err := r.Run(t.Context(), task)
	if res != nil && res.WorkingDir != "" && task.WorkingDir == "" {
		dir := res.WorkingDir
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	var d *docker.Details
	if res != nil {
		d = details(t, res)
		require.NotEmpty(t, d.ExecID, "the task ran in a warm container")
	}
	return res, err, d
}

func TestPoolSmoke(t *testing.T) {
	r := newPool(t, docker.Config{}, docker.Pool{Size: 1})
	var out strings.Builder
	res, err, d1 := pooledRun(t, r, runner.Task{Commands: []string{"echo hello $NAME", "pwd", `echo '::{"outputs":{"a":1}}::'`}, Env: map[string]string{"NAME": "pool"}, Stdout: &out})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "hello pool\n"+res.WorkingDir+"\n")
	assert.Equal(t, int64(1), res.Outputs["a"])
	res, err, d2 := pooledRun(t, r, runner.Task{Commands: []string{"exit 3"}})
	var exit *runner.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, d1.ContainerID, d2.ContainerID, "the container was reused")
	t.Logf("%+v", r.PoolStats())
}

// TestConformancePool runs the conformance suite with the tasks in warm
// containers of one pool shared by all the cases, so containers are reused
// between cases of every kind: with PoolWait (every task in the pool), with
// PoolCold and a pool of one (most cases run cold beside the pooled ones),
// and as a non-root user (the working directory is copied in for that user,
// the task script runs as it). No case is skipped. MOUNT is not run: a
// configuration with MOUNT runs cold (TestConformance covers it), since a
// container's mounts are fixed when it is created and a task's working
// directory only when it runs.
func TestConformancePool(t *testing.T) {
	testenv.Engine(t)
	for _, tt := range []struct {
		name string
		cfg  docker.Config
		pool docker.Pool
	}{
		{"WAIT", docker.Config{}, docker.Pool{Size: 4}},
		{"COLD", docker.Config{}, docker.Pool{Size: 1, WhenBusy: docker.PoolCold}},
		{"user 1000", docker.Config{Container: docker.Container{User: "1000"}}, docker.Pool{Size: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newPool(t, tt.cfg, tt.pool)
			runnertest.Run(t, runnertest.Config{
				Image: testenv.Image,
				New:   func(t *testing.T) runner.Runner { return r },
			})
			t.Cleanup(func() {
				s := r.PoolStats()
				t.Logf("pool: %+v", s)
				assert.Positive(t, s.Pooled, "tasks ran in the pool")
				assert.Zero(t, s.Discarded-s.Taints["oom"]-s.Taints["engine error"], "no container was tainted but as expected: %v", s.Taints)
			})
		})
	}
}
