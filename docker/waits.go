package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/runner"
)

// errEngineTimeout is the cause of an engine call's context when the call
// was not answered within its bound after the run's context ended.
var errEngineTimeout = errors.New("the engine did not answer in time")

// engineCall returns the context for an engine call that must not be cut
// short by ctx (the stop, a create or start under way, the removal): it has
// ctx's values, not its cancellation, and once ctx is done (or at once, if it
// already is) it lasts bound more, then ends with errEngineTimeout.
func engineCall(ctx context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		timer := time.AfterFunc(bound, func() { cancel(errEngineTimeout) })
		context.AfterFunc(c, func() { timer.Stop() })
	})
	return c, func() { stop(); cancel(nil) }
}

// callError returns the error for an engine call made on call (from
// [engineCall]) that failed with err: an [unresponsiveError] when the bound
// ran out, after which the run makes no more calls.
func (run *run) callError(call context.Context, doing string, bound time.Duration, err error) error {
	if errors.Is(context.Cause(call), errEngineTimeout) {
		run.unresponsive = true
		return &unresponsiveError{doing: doing, bound: bound}
	}
	return engineError(run.r, doing, err)
}

// unresponsiveError reports an engine call that went unanswered, or was not
// made because an earlier one went unanswered.
type unresponsiveError struct {
	doing string
	bound time.Duration // 0: not asked
}

func (e *unresponsiveError) Error() string {
	if e.bound == 0 {
		return fmt.Sprintf("docker: %s: not asked, the engine did not answer an earlier call; the container is left for Runner.Prune", e.doing)
	}
	return fmt.Sprintf("docker: %s: the engine did not answer within %s; the container is left for Runner.Prune", e.doing, e.bound)
}

func (e *unresponsiveError) Unwrap() error { return runner.ErrEngineUnresponsive }

// engineErr is an error of the engine's API with what lading was doing.
type engineErr struct {
	doing string
	host  string // set when the engine could not be reached at all
	hint  string // what to fix, when a TLS handshake with it failed
	err   error
	seen  time.Time // when the call failed
	// interrupted: the run's context was done and err is its doing (the
	// HTTP client reports a cancel with a cause as a failed connection), so
	// it says nothing about the engine.
	interrupted bool
}

func (e *engineErr) unreachable() bool { return e.host != "" && !e.interrupted }

func (e *engineErr) Error() string {
	switch {
	case e.interrupted:
		return fmt.Sprintf("docker: %s: interrupted", e.doing)
	case e.unreachable() && e.hint != "":
		return fmt.Sprintf("docker: %s: %s at %s: %s: %s", e.doing, runner.ErrEngineUnreachable, e.host, e.hint, e.err)
	case e.unreachable():
		return fmt.Sprintf("docker: %s: %s at %s: start the engine, or point Config.Host or DOCKER_HOST at its socket (for example unix:///var/run/docker.sock, or unix://$XDG_RUNTIME_DIR/podman/podman.sock for Podman): %s",
			e.doing, runner.ErrEngineUnreachable, e.host, e.err)
	}
	return fmt.Sprintf("docker: %s: %s", e.doing, e.err)
}

func (e *engineErr) Unwrap() []error {
	if e.unreachable() {
		return []error{runner.ErrEngineUnreachable, e.err}
	}
	return []error{e.err}
}

// stopped returns the error Run reports for err. When ctx is done the error
// says what the run was doing and matches both ctx.Err() and
// context.Cause(ctx); [runner.ErrTimeout] only when the task's own timeout
// was reached. An invalid task or configuration is reported as such,
// whatever ctx does.
func (run *run) stopped(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, runner.ErrInvalidTask) || errors.Is(err, runner.ErrInvalidConfig) {
		return err
	}
	ctxErr, cause := ctx.Err(), context.Cause(ctx)
	doneAt := run.doneAt.Load()
	walk(err, func(e error) {
		ee, ok := e.(*engineErr)
		if ok && (errors.Is(ee.err, ctxErr) || errors.Is(ee.err, cause) || (doneAt != nil && !ee.seen.Before(*doneAt))) {
			ee.interrupted = true
		}
	})
	what := "run " + run.name() + " (image " + run.task.Image
	if id := run.containerID; id != "" && id != run.name() {
		what += ", container " + id[:min(12, len(id))]
	}
	what += ") stopped while " + run.doing
	var reason error = cause
	if cause != ctxErr && !run.ownCause(cause) {
		// A caller's cause: matched itself, but what it carries (a
		// sibling's timeout or exit) is not this run's.
		reason = &causeError{err: ctxErr, cause: cause}
		err = &shieldError{err: err, cause: cause}
	}
	return &stopError{what: what, reason: reason, err: err, ctxErr: ctxErr}
}

// ownCause reports whether cause is one of the run's own limits, not a
// caller's cause.
func (run *run) ownCause(cause error) bool {
	return (run.timeout != nil && cause == error(run.timeout)) || (run.scriptTimeout != nil && cause == error(run.scriptTimeout))
}

// walk calls f on err and every error in its tree.
func walk(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, f)
		}
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), f)
	}
}

// stopError is the error of a run whose context ended: what it was doing,
// why it stopped (the context's error and cause), and what failed.
type stopError struct {
	what   string
	reason error
	err    error
	ctxErr error // the context's error, not repeated when err is just that
}

func (e *stopError) Error() string {
	s := "docker: " + e.what + ": " + e.reason.Error()
	if inner := strings.TrimPrefix(e.err.Error(), "docker: "); inner != e.ctxErr.Error() && !strings.HasSuffix(s, inner) {
		s += ": " + inner
	}
	return s
}

func (e *stopError) Unwrap() []error { return []error{e.reason, e.err} }

// causeError is a context's error with the caller's cause: it matches both
// with errors.Is, but not the errors the cause wraps.
type causeError struct{ err, cause error }

func (e *causeError) Error() string { return e.err.Error() + ": " + e.cause.Error() }

func (e *causeError) Unwrap() error { return e.err }

func (e *causeError) Is(target error) bool { return sameError(target, e.cause) }

// shieldError hides from errors.Is and errors.As, in a run's error, what
// the caller's cause carries: an HTTP call cut short by the cancel reports
// the cause itself, and a sibling's ErrTimeout in it is not this run's.
type shieldError struct{ err, cause error }

func (e *shieldError) Error() string { return e.err.Error() }

func (e *shieldError) Is(target error) bool {
	return !errors.Is(e.cause, target) && errors.Is(e.err, target)
}

func (e *shieldError) As(target any) bool {
	probe := reflect.New(reflect.TypeOf(target).Elem()).Interface()
	return !errors.As(e.cause, probe) && errors.As(e.err, target)
}

func sameError(a, b error) bool {
	return a != nil && reflect.TypeOf(a).Comparable() && a == b
}

// outputBlockedError reports a task writer that had not returned
// [OutputWaitDelay] after the container exited.
type outputBlockedError struct{}

func (outputBlockedError) Error() string {
	return fmt.Sprintf("docker: the container exited, but its output was still being written to the task's Stdout, Stderr or OnLine %s later; Run returned without waiting for it: the output from then on, and the outputs and lines counts, are missing", OutputWaitDelay)
}

func (outputBlockedError) Unwrap() error { return runner.ErrOutputBlocked }

// flow watches the output on its way from the engine's stream to the task:
// bytes read, writes under way, and whether Run has let go of it.
type flow struct {
	read    atomic.Int64
	writing atomic.Int32
	gone    atomic.Bool // Run has returned or given up: nothing more reaches the task
}

type flowReader struct {
	f *flow
	r io.Reader
}

func (r flowReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.f.read.Add(int64(n))
	return n, err
}

// sinkWriter wraps the writer the stream is copied into.
type sinkWriter struct {
	f *flow
	w io.Writer
}

func (w sinkWriter) Write(p []byte) (int, error) {
	if w.f.gone.Load() {
		return 0, errOutputGone
	}
	w.f.writing.Add(1)
	defer w.f.writing.Add(-1)
	return w.w.Write(p)
}

var errOutputGone = errors.New("Run has returned")

// taskWriter wraps a task's writer so that nothing reaches it once Run has
// let go.
type taskWriter struct {
	f *flow
	w io.Writer
}

func (w taskWriter) Write(p []byte) (int, error) {
	if w.f.gone.Load() {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (f *flow) taskWriter(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return taskWriter{f, w}
}

func (f *flow) onLine(fn func(runner.Line)) func(runner.Line) {
	if fn == nil {
		return nil
	}
	return func(l runner.Line) {
		if !f.gone.Load() {
			fn(l)
		}
	}
}

// drain waits, once the container has exited, for the copy of its output
// to end (drained), as long as bytes keep moving. When none moved for
// [OutputWaitDelay] it closes the stream: if a write to the task was under
// way, it gives up (blocked); otherwise the engine had not ended the
// stream, and the copy ends with the close (warning).
func (f *flow) drain(drained <-chan error, closeStream func()) (err error, warning string, blocked bool) {
	timer := time.NewTimer(OutputWaitDelay)
	defer timer.Stop()
	last := f.read.Load()
	closed := false
	for {
		select {
		case err := <-drained:
			return err, warning, false
		case <-timer.C:
		}
		if n := f.read.Load(); n != last && !closed {
			last = n
			timer.Reset(OutputWaitDelay)
			continue
		}
		if closed || f.writing.Load() > 0 {
			f.gone.Store(true)
			closeStream()
			return nil, "", true
		}
		closeStream()
		closed = true
		warning = fmt.Sprintf("the container's output stream did not end within %s of its exit; later output may be missing", OutputWaitDelay)
		timer.Reset(OutputWaitDelay)
	}
}

// engineError wraps an error of the engine's API with what lading was doing,
// and with [runner.ErrEngineUnreachable] and a hint when the engine could not
// be reached at all.
func engineError(r *Runner, doing string, err error) error {
	e := &engineErr{doing: doing, err: err, seen: time.Now()}
	if client.IsErrConnectionFailed(err) {
		e.host = r.cli.DaemonHost()
	}
	if e.hint = tlsHint(err); e.hint != "" {
		e.host = r.cli.DaemonHost()
	}
	return e
}

// invalidCheckTimeout bounds the second rendering of a task that
// [run.invalidFirst] does once ctx is done.
const invalidCheckTimeout = time.Second

// invalidFirst returns the error for a run that ended with err before its
// task was rendered, or while it was: when ctx is done (the rendering then
// stops before it looks at the task), the task is rendered once more on a
// context of its own, for at most invalidCheckTimeout, so that an invalid
// task is reported as invalid whatever ctx does.
func (run *run) invalidFirst(ctx context.Context, err error) error {
	if ctx.Err() == nil || errors.Is(err, runner.ErrInvalidTask) || errors.Is(err, runner.ErrInvalidConfig) {
		return err
	}
	check, cancel := context.WithTimeout(context.WithoutCancel(ctx), invalidCheckTimeout)
	defer cancel()
	ws, perr := run.prepare(check)
	if perr == nil {
		ws.discard()
		return err
	}
	if errors.Is(perr, runner.ErrInvalidTask) || errors.Is(perr, runner.ErrInvalidConfig) {
		return perr
	}
	return err
}
