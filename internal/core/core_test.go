package core_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
)

// fakeEngine is an engine of pure logic: its "container" prints output and
// exits as the test says. It is written against the exported API only, as a
// new engine would be.
type fakeEngine struct {
	c       *core.State
	output  string
	exit    core.Exit
	hang    bool          // Wait never answers
	stopped chan struct{} // closed by Stop
	mu      sync.Mutex
	calls   []string
}

func (f *fakeEngine) note(call string) { f.mu.Lock(); f.calls = append(f.calls, call); f.mu.Unlock() }

func (f *fakeEngine) Image(context.Context) error { f.note("image"); return nil }
func (f *fakeEngine) Files() core.Files           { return hostFiles{f} }
func (f *fakeEngine) Create(context.Context) error {
	f.note("create")
	f.c.ContainerID = "fake-" + f.c.ID
	return nil
}
func (f *fakeEngine) Attach(context.Context) (*core.Attachment, error) {
	f.note("attach")
	r, w := io.Pipe()
	go func() { _, _ = io.WriteString(w, f.output); _ = w.Close() }()
	return &core.Attachment{
		Stream: r,
		Close:  func() { _ = r.Close() },
		Wait: func(ctx context.Context) (core.Exit, error) {
			if f.hang {
				<-ctx.Done()
				return core.Exit{}, ctx.Err()
			}
			return f.exit, nil
		},
	}, nil
}
func (f *fakeEngine) Start(context.Context) error { f.note("start"); return nil }
func (f *fakeEngine) Stop(context.Context, time.Duration) error {
	f.note("stop")
	close(f.stopped)
	return nil
}
func (f *fakeEngine) Remove(context.Context) error { f.note("remove"); return nil }
func (f *fakeEngine) Details() any                 { return f.c.ContainerID }
func (f *fakeEngine) Error(doing string, err error) error {
	return &core.EngineError{Engine: "fake", Doing: doing, Err: err, Seen: time.Now()}
}

// hostFiles stages inputs on the host and brings nothing back.
type hostFiles struct{ f *fakeEngine }

func (h hostFiles) Stage(ctx context.Context) error {
	return h.f.c.WS.Stage(ctx, h.f.c.Task.InputFiles)
}
func (hostFiles) CopyIn(context.Context) error { return nil }
func (hostFiles) Collect(_ context.Context, res *runner.Result) ([]string, error) {
	res.OutputFiles = map[string]string{}
	return nil, nil
}
func (hostFiles) Tidy(context.Context, *runner.Result) error { return nil }
func (hostFiles) Discard()                                   {}

func run(t *testing.T, ctx context.Context, task runner.Task, f *fakeEngine) (*runner.Result, error) {
	t.Helper()
	f.stopped = make(chan struct{})
	task.Image = "lading-test/busybox:latest"
	task.WorkingDir = t.TempDir()
	if task.Commands == nil {
		task.Commands = []string{"true"}
	}
	opts := core.Options{Name: "fake", Log: slog.New(slog.DiscardHandler), Wait: true, Delete: true}
	return core.Run(ctx, task, opts, func(c *core.State) core.Engine { f.c = c; return f })
}

// TestRunDrivesTheEngine: the calls come in the documented order, the output
// reaches the sinks (all stdout without a Demux), Kestra's outputs are read,
// and a non-zero exit is an ExitError with the result kept.
func TestRunDrivesTheEngine(t *testing.T) {
	f := &fakeEngine{output: "hello\n::{\"outputs\":{\"n\":1}}::\n", exit: core.Exit{Code: 3}}
	var stdout strings.Builder
	res, err := run(t, t.Context(), runner.Task{Stdout: &stdout}, f)
	var exitErr *runner.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 3, exitErr.ExitCode)
	require.NotNil(t, res)
	assert.Equal(t, 3, res.ExitCode)
	assert.Contains(t, stdout.String(), "hello\n")
	assert.EqualValues(t, 1, res.Outputs["n"])
	assert.Equal(t, f.c.ContainerID, res.Details)
	assert.Equal(t, []string{"image", "create", "attach", "start", "remove"}, f.calls)
}

// TestEngineMessageIsAnError: an error the engine reports with the exit is
// Run's error, in the engine's name.
func TestEngineMessageIsAnError(t *testing.T) {
	f := &fakeEngine{exit: core.Exit{Message: "the disk is gone"}}
	_, err := run(t, t.Context(), runner.Task{}, f)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fake: wait for container fake-")
	assert.Contains(t, err.Error(), "the disk is gone")
}

// TestUnansweredWaitNamesTheCall: an engine that never reports the exit of
// a stopped task is waited for EngineTimeout, then Run returns an error
// matching ErrEngineUnresponsive whose WaitError names the wait, and asks
// the engine nothing more (no removal).
func TestUnansweredWaitNamesTheCall(t *testing.T) {
	f := &fakeEngine{hang: true}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	res, err := run(t, ctx, runner.Task{}, f)
	require.ErrorIs(t, err, runner.ErrEngineUnresponsive)
	require.ErrorIs(t, err, context.Canceled)
	var we *runner.WaitError
	require.ErrorAs(t, err, &we)
	assert.Contains(t, we.Awaited, "wait for container fake-")
	assert.Equal(t, core.EngineTimeout, we.Delay)
	require.NotNil(t, res)
	assert.Equal(t, -1, res.ExitCode, "the engine did not say")
	assert.Equal(t, []string{"image", "create", "attach", "start", "stop"}, f.calls, "no removal once an engine call went unanswered")
}

// TestBlockedWriterIsNamed: a task writer that does not return holds Run
// for OutputWaitDelay only, and the error names that writer.
func TestBlockedWriterIsNamed(t *testing.T) {
	f := &fakeEngine{output: "one\n"}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	blocking := writerFunc(func(p []byte) (int, error) { <-release; return len(p), nil })
	_, err := run(t, t.Context(), runner.Task{Stderr: io.Discard, Stdout: blocking}, f)
	require.ErrorIs(t, err, runner.ErrOutputBlocked)
	var we *runner.WaitError
	require.ErrorAs(t, err, &we)
	assert.Equal(t, "the task's Stdout writer", we.Awaited)
	assert.Equal(t, core.OutputWaitDelay, we.Delay)
	assert.True(t, errors.Is(we, runner.ErrOutputBlocked))
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
