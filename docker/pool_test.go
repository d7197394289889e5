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

// TestConformancePool runs the conformance suite with every task in a
// warm container of one pool, shared by all the cases, so containers are
// reused between cases of every kind.
func TestConformancePool(t *testing.T) {
	testenv.Engine(t)
	r := newPool(t, docker.Config{}, docker.Pool{Size: 4})
	runnertest.Run(t, runnertest.Config{
		Image: testenv.Image,
		New:   func(t *testing.T) runner.Runner { return r },
	})
	t.Cleanup(func() { t.Logf("pool: %+v", r.PoolStats()) })
}
