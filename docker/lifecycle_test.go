package docker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
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
		r, cli := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{KillGracePeriod: docker.Duration(10 * time.Second)}})
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
		r, cli := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{KillGracePeriod: docker.Duration(grace)}})
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
		r, _ := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{KillGracePeriod: docker.Duration(10 * time.Second)}})
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
	r, _ := newRunner(t, docker.Config{}, docker.WithMaxConcurrency(2))
	assert.Equal(t, int32(2), peakScripts(t, 5, r), "never more than 2 scripts at once, and the limit was reached")

	t.Run("cancellation while queued", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{}, docker.WithMaxConcurrency(1))
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

// TestCancelWithCause cancels a run at every stage with a cause, as an
// errgroup does when a sibling step fails: the error matches both
// context.Canceled and the cause, never the sentinels the cause itself
// carries (the sibling's timeout is not this run's), never
// ErrEngineUnreachable, and says what was running.
func TestCancelWithCause(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	pullRef := reg.Push(t, cli, "lading/cause", "v1")
	reg.Stall() // the pull stays under way until the cancel

	// What the errgroup's cancel carries: a sibling step that timed out.
	sibling := fmt.Errorf("step b: %w", &runner.TimeoutError{Timeout: time.Second, Cause: context.DeadlineExceeded})
	type setup struct {
		r    *docker.Runner
		task runner.Task
		// arm cancels at the stage: it is called with the run's cancel.
		arm func(cancel func())
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, cancel func()) setup
		// words the message must hold, besides the cause's
		words []string
		// collecting: a cancel after the script exited does not undo the
		// run, so no error is also right.
		mayNotFail bool
	}{
		{name: "waiting for a slot", words: []string{"maxConcurrency 1"}, setup: func(t *testing.T, cancel func()) setup {
			r, _ := newRunner(t, docker.Config{}, docker.WithMaxConcurrency(1))
			holding := make(chan struct{})
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				var once sync.Once
				_, _ = r.Run(ctx, runner.Task{Image: testenv.Image, Commands: []string{"echo in", "sleep 30"},
					OnLine: func(runner.Line) { once.Do(func() { close(holding) }) }})
			}()
			<-holding
			t.Cleanup(func() { stop(); <-done })
			return setup{r: r, task: runner.Task{Image: testenv.Image, Commands: []string{"true"}},
				arm: func(cancel func()) { time.AfterFunc(200*time.Millisecond, cancel) }}
		}},
		{name: "before start: cancelled before Run", words: []string{"lading-", testenv.Image}, setup: func(t *testing.T, cancel func()) setup {
			r, _ := newRunner(t, docker.Config{})
			return setup{r: r, task: runner.Task{Image: testenv.Image, Commands: []string{"true"}}, arm: func(cancel func()) { cancel() }}
		}},
		{name: "pull", words: []string{"pulling", pullRef}, setup: func(t *testing.T, cancel func()) setup {
			r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullAlways}})
			return setup{r: r, task: runner.Task{Image: pullRef, Commands: []string{"true"}, OnEvent: onStage(runner.StagePulling, cancel)}}
		}},
		{name: "create", words: []string{"creating", "lading-"}, setup: func(t *testing.T, cancel func()) setup {
			r, _ := newRunner(t, docker.Config{})
			return setup{r: r, task: runner.Task{Image: testenv.Image, Commands: []string{"true"}, OnEvent: onStage(runner.StageCreating, cancel)}}
		}},
		{name: "copy-in", words: []string{"staging", "lading-"}, setup: func(t *testing.T, cancel func()) setup {
			r, _ := newRunner(t, docker.Config{})
			return setup{r: r, task: runner.Task{Image: testenv.Image, Commands: []string{"true"},
				InputFiles: map[string]runner.Source{"in.txt": files.String("in")}, OnEvent: onStage(runner.StageStaging, cancel)}}
		}},
		{name: "running", words: []string{"running", "lading-", testenv.Image, "exit code 137"}, setup: func(t *testing.T, cancel func()) setup {
			r, _ := newRunner(t, docker.Config{})
			return setup{r: r, task: runner.Task{Image: testenv.Image, Commands: []string{"echo ready", "sleep 30"},
				OnLine: func(runner.Line) { cancel() }}}
		}},
		{name: "collecting", mayNotFail: true, words: []string{"collecting"}, setup: func(t *testing.T, cancel func()) setup {
			r, _ := newRunner(t, docker.Config{})
			return setup{r: r, task: runner.Task{Image: testenv.Image, OutputFiles: []string{"*.txt"}, Commands: []string{"echo x > a.txt"},
				OnEvent: onStage(runner.StageCollecting, cancel)}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancelCause := context.WithCancelCause(t.Context())
			defer cancelCause(nil)
			cancel := func() { cancelCause(sibling) }
			s := tt.setup(t, cancel)
			if s.arm != nil {
				s.arm(cancel)
			}
			res, err := s.r.Run(ctx, s.task)
			if res != nil && res.WorkingDir != "" {
				t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
			}
			if tt.mayNotFail && err == nil {
				return
			}
			require.Error(t, err)
			t.Logf("error: %v", err)
			assert.ErrorIs(t, err, context.Canceled)
			assert.ErrorIs(t, err, sibling, "the cause is in the chain")
			assert.NotErrorIs(t, err, runner.ErrTimeout, "the sibling's timeout is not this run's")
			assert.NotErrorIs(t, err, context.DeadlineExceeded, "the sibling's deadline is not this run's")
			var te *runner.TimeoutError
			assert.False(t, errors.As(err, &te), "no *TimeoutError of this run")
			assert.NotErrorIs(t, err, runner.ErrEngineUnreachable, "the engine was there")
			assert.NotContains(t, err.Error(), "start the engine")
			for _, w := range tt.words {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// onStage returns an OnEvent callback that calls f once, at stage.
func onStage(stage runner.Stage, f func()) func(runner.Event) {
	var once sync.Once
	return func(e runner.Event) {
		if e.Stage == stage {
			once.Do(f)
		}
	}
}

// TestCancelAndDeadlines tells the task's own timeout from a caller's
// deadline and from a plain cancel, while the script runs.
func TestCancelAndDeadlines(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	script := []string{"echo ready", "sleep 30"}
	t.Run("Task.Timeout", func(t *testing.T) {
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: script, Timeout: time.Second})
		require.ErrorIs(t, err, runner.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var te *runner.TimeoutError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, time.Second, te.Timeout)
	})
	t.Run("the caller's deadline is not Task.Timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := r.Run(ctx, runner.Task{Image: testenv.Image, Commands: script, Timeout: time.Minute})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, runner.ErrTimeout)
		assert.Contains(t, err.Error(), "running")
	})
	t.Run("a deadline with a cause", func(t *testing.T) {
		cause := errors.New("the workflow's deadline")
		ctx, cancel := context.WithTimeoutCause(t.Context(), time.Second, cause)
		defer cancel()
		_, err := r.Run(ctx, runner.Task{Image: testenv.Image, Commands: script})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, cause)
		assert.NotErrorIs(t, err, runner.ErrTimeout)
		assert.Contains(t, err.Error(), "the workflow's deadline")
	})
	t.Run("signal.NotifyContext", func(t *testing.T) {
		ctx, stop := signal.NotifyContext(t.Context(), syscall.SIGUSR1)
		defer stop()
		var once sync.Once
		_, err := r.Run(ctx, runner.Task{Image: testenv.Image, Commands: script, OnLine: func(runner.Line) {
			once.Do(func() { _ = syscall.Kill(os.Getpid(), syscall.SIGUSR1) })
		}})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, context.Cause(ctx), "the signal is in the error")
		assert.Contains(t, err.Error(), context.Cause(ctx).Error())
		assert.Contains(t, err.Error(), "running")
	})
	t.Run("a plain cancel says what was running", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		res, err := r.Run(ctx, runner.Task{Image: testenv.Image, Commands: script, OnLine: func(runner.Line) { cancel() }})
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), details(t, res).ContainerID[:12])
		assert.Contains(t, err.Error(), testenv.Image)
		assert.Contains(t, err.Error(), "running")
	})
}

// TestInvalidTaskWhateverTheContext: an invalid task is reported as invalid
// even when ctx is done, or ends while Run looks at the task.
func TestInvalidTaskWhateverTheContext(t *testing.T) {
	r, _ := newRunner(t, docker.Config{}, docker.WithMaxConcurrency(1))
	invalid := []runner.Task{
		{Image: testenv.Image, Commands: []string{"echo {{ undefinedVariable }}"}},
		{Image: testenv.Image, Commands: []string{"true"}, Env: map[string]string{"A": "{{ nope }}"}},
		{Image: testenv.Image, Commands: []string{"true"}, OutputFiles: []string{"{{ missing }}/*.txt"}},
		{Image: "", Commands: []string{"true"}},
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("shutting down"))
	for _, task := range invalid {
		_, err := r.Run(ctx, task)
		require.ErrorIs(t, err, runner.ErrInvalidTask)
		assert.NotErrorIs(t, err, context.Canceled, "not hidden behind the cancel: %v", err)
		assert.NotContains(t, err.Error(), "context canceled")
	}
}

// TestLimiterSharedByIndependentRunners: two Runners of New, each with its
// own connection, under one runner.Limiter of 2 never run more than 2
// scripts at once between them.
func TestLimiterSharedByIndependentRunners(t *testing.T) {
	limit := runner.NewLimiter(2)
	a, _ := newRunner(t, docker.Config{}, docker.WithLimiter(limit))
	b, _ := newRunner(t, docker.Config{Container: docker.Container{User: "1000:1000"}}, docker.WithLimiter(limit))
	assert.Equal(t, int32(2), peakScripts(t, 6, a, b), "never more than 2 scripts at once over both runners, and the limit was reached")
	assert.Equal(t, 0, limit.InUse())
}

// peakScripts runs n half-second scripts at once, spread over rs in turn,
// and returns the most that were running at the same time (from their
// first line to their cleanup).
func peakScripts(t *testing.T, n int, rs ...*docker.Runner) int32 {
	t.Helper()
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		r := rs[i%len(rs)]
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
	return peak.Load()
}
