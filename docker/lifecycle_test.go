package docker_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// cancelOn returns an OnLine callback that cancels when the script prints
// line, and a function that returns every line seen.
func cancelOn(line string, cancel context.CancelFunc) (func(runner.Line), func() []string) {
	var mu sync.Mutex
	var seen []string
	return func(l runner.Line) {
			mu.Lock()
			seen = append(seen, l.Text)
			mu.Unlock()
			if l.Text == line {
				cancel()
			}
		}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), seen...)
		}
}

func TestKillGracePeriod(t *testing.T) {
	t.Run("a trapping script runs its handler within the grace period", func(t *testing.T) {
		r, cli := newRunner(t, docker.Config{KillGracePeriod: docker.Duration(10 * time.Second)})
		ctx, cancel := context.WithCancel(t.Context())
		onLine, seen := cancelOn("ready", cancel)
		res, err := r.Run(ctx, runner.Task{
			Image: testenv.Image,
			Commands: []string{
				`trap 'echo cleaning up; echo "::{\"outputs\":{\"cleaned\":true}}::"; exit 0' TERM`,
				"echo ready",
				"while true; do sleep 0.1; done",
			},
			OnLine: onLine,
		})
		require.ErrorIs(t, err, context.Canceled)
		require.NotNil(t, res, "error: %v", err)
		assert.Contains(t, seen(), "cleaning up")
		assert.Equal(t, true, res.Outputs["cleaned"], "outputs printed while stopping are kept")
		assert.Equal(t, 0, res.ExitCode)
		requireRemoved(t, cli, details(t, res).ContainerID)
	})
	t.Run("a PID 1 that ignores SIGTERM is killed after the grace period", func(t *testing.T) {
		const grace = 2 * time.Second
		r, cli := newRunner(t, docker.Config{KillGracePeriod: docker.Duration(grace)})
		ctx, cancel := context.WithCancel(t.Context())
		onLine, _ := cancelOn("ready", cancel)
		var cancelledAt time.Time
		res, err := r.Run(ctx, runner.Task{
			Image: testenv.Image,
			// PID 1 has no default action for SIGTERM: without a trap the
			// shell ignores it.
			Commands: []string{"echo ready", "while true; do sleep 0.1; done"},
			OnLine:   onLine,
			OnEvent: func(e runner.Event) {
				if e.Stage == runner.StageStopping {
					cancelledAt = e.Time
				}
			},
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 137, res.ExitCode, "killed by SIGKILL")
		assert.False(t, res.OOMKilled)
		assert.GreaterOrEqual(t, res.Finished.Sub(cancelledAt), grace-100*time.Millisecond, "SIGKILL came only after the grace period")
		requireRemoved(t, cli, details(t, res).ContainerID)
	})
	t.Run("zero grace kills at once", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{})
		ctx, cancel := context.WithCancel(t.Context())
		onLine, seen := cancelOn("ready", cancel)
		res, err := r.Run(ctx, runner.Task{
			Image:    testenv.Image,
			Commands: []string{`trap 'echo trapped' TERM`, "echo ready", "while true; do sleep 0.1; done"},
			OnLine:   onLine,
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 137, res.ExitCode)
		assert.NotContains(t, seen(), "trapped", "SIGKILL cannot be trapped")
	})
	t.Run("timeout stops with the grace period too", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{KillGracePeriod: docker.Duration(10 * time.Second)})
		res, err := r.Run(t.Context(), runner.Task{
			Image:    testenv.Image,
			Commands: []string{`trap 'echo timed out, cleaning; exit 3' TERM`, "while true; do sleep 0.1; done"},
			Timeout:  time.Second,
		})
		require.ErrorIs(t, err, runner.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 3, res.ExitCode)
		assert.Equal(t, 1, res.StdoutLines)
	})
}

func TestEventsInOrder(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	stagesOf := func(inputs map[string]runner.Source, commands ...string) []runner.Stage {
		var stages []runner.Stage
		res, err := r.Run(t.Context(), runner.Task{
			Image: testenv.Image, Commands: commands, InputFiles: inputs,
			OnEvent: func(e runner.Event) {
				assert.False(t, e.Time.IsZero())
				stages = append(stages, e.Stage)
			},
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
		return stages
	}
	in := map[string]runner.Source{"in.txt": files.String("x")}
	assert.Equal(t, []runner.Stage{runner.StageCreating, runner.StageStaging, runner.StageRunning, runner.StageCollecting, runner.StageCleaning},
		stagesOf(in, `cat in.txt > "$OUTPUT_DIR/x"`))
	assert.Equal(t, []runner.Stage{runner.StageCreating, runner.StageRunning, runner.StageCollecting, runner.StageCleaning},
		stagesOf(nil, `echo x > "$OUTPUT_DIR/x"`), "a root task with no inputs is not staged")
	assert.Equal(t, []runner.Stage{runner.StageCreating, runner.StageRunning, runner.StageCleaning},
		stagesOf(nil, "true"), "an output directory nothing was written into is not copied back")
}

func TestMaxConcurrency(t *testing.T) {
	r, _ := newRunner(t, docker.Config{MaxConcurrency: 2})
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			_, err := r.Run(t.Context(), runner.Task{
				Image: testenv.Image, Commands: []string{"echo in", "sleep 0.5"},
				OnLine: func(runner.Line) {
					n := running.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
				},
				OnEvent: func(e runner.Event) {
					if e.Stage == runner.StageCleaning {
						running.Add(-1)
					}
				},
			})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, int32(2), peak.Load(), "never more than 2 scripts at once, and the limit was reached")

	t.Run("cancellation while queued", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{MaxConcurrency: 1})
		started := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"echo in", "sleep 3"},
				OnLine: func(runner.Line) { close(started) }})
		}()
		<-started
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := r.Run(ctx, runner.Task{Image: testenv.Image, Commands: []string{"true"}})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "maxConcurrency 1")
		<-done
	})
}

func TestSecretsMaskedInErrors(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Secrets: map[string]string{"PW": "hunter2-err"},
		Commands: []string{"curl -u admin:hunter2-err {{ undefinedHost }}"}})
	require.ErrorIs(t, err, runner.ErrInvalidTask, "matching still works on a masked error")
	assert.NotContains(t, err.Error(), "hunter2-err")
	assert.Contains(t, err.Error(), "admin:****")

	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Env: map[string]string{"PW": "x"}, Secrets: map[string]string{"PW": "y"}, Commands: []string{"true"}})
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "secrets", fe.Field)
}
