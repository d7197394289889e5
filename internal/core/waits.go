package core

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/lading-dev/lading/runner"
)

// errEngineTimeout is the cause of an engine call's context when the call
// was not answered within its bound after the run's context ended.
var errEngineTimeout = errors.New("the engine did not answer in time")

// EngineCall returns the context for an engine call that must not be cut
// short by ctx (the stop, a create or start under way, the removal): it has
// ctx's values, not its cancellation, and once ctx is done (or at once, if it
// already is) it lasts bound more, then ends. Report the call's failure with
// [State.CallError].
func EngineCall(ctx context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		timer := time.AfterFunc(bound, func() { cancel(errEngineTimeout) })
		context.AfterFunc(c, func() { timer.Stop() })
	})
	return c, func() { stop(); cancel(nil) }
}

// CallError returns the error for an engine call made on call (from
// [EngineCall]) that failed with err: one matching
// [runner.ErrEngineUnresponsive] when the bound ran out, after which the run
// makes no more calls; else [Engine.Error]'s.
func (run *State) CallError(call context.Context, doing string, bound time.Duration, err error) error {
	if errors.Is(context.Cause(call), errEngineTimeout) {
		run.unresponsive = true
		return &unresponsiveError{engine: run.opts.Name, doing: doing, bound: bound}
	}
	return run.eng.Error(doing, err)
}

// unresponsiveError reports an engine call that went unanswered, or was not
// made because an earlier one went unanswered.
type unresponsiveError struct {
	engine string
	doing  string
	bound  time.Duration // 0: not asked
}

func (e *unresponsiveError) Error() string {
	if e.bound == 0 {
		return fmt.Sprintf("%s: %s: not asked, the engine did not answer an earlier call; the container is left for Runner.Prune", e.engine, e.doing)
	}
	return fmt.Sprintf("%s: %s: the engine did not answer within %s; the container is left for Runner.Prune", e.engine, e.doing, e.bound)
}

func (e *unresponsiveError) Unwrap() error {
	return &runner.WaitError{Awaited: "the engine's answer to: " + e.doing, Delay: e.bound, Err: runner.ErrEngineUnresponsive}
}

// EngineError is an error of an engine's API with what lading was doing.
// [Run] marks it interrupted when the run's context was done when it came.
type EngineError struct {
	Engine string // "docker"
	Doing  string
	Host   string // set when the engine could not be reached at all
	Hint   string // what to fix, when a TLS handshake with it failed
	// Reach says how to make an unreachable engine reachable.
	Reach string
	Err   error
	Seen  time.Time // when the call failed
	// interrupted: the run's context was done and Err is its doing (the
	// HTTP client reports a cancel with a cause as a failed connection), so
	// it says nothing about the engine.
	interrupted bool
}

func (e *EngineError) unreachable() bool { return e.Host != "" && !e.interrupted }

func (e *EngineError) Error() string {
	switch {
	case e.interrupted:
		return fmt.Sprintf("%s: %s: interrupted", e.Engine, e.Doing)
	case e.unreachable() && e.Hint != "":
		return fmt.Sprintf("%s: %s: %s at %s: %s: %s", e.Engine, e.Doing, runner.ErrEngineUnreachable, e.Host, e.Hint, e.Err)
	case e.unreachable():
		return fmt.Sprintf("%s: %s: %s at %s: %s: %s", e.Engine, e.Doing, runner.ErrEngineUnreachable, e.Host, e.Reach, e.Err)
	}
	return fmt.Sprintf("%s: %s: %s", e.Engine, e.Doing, e.Err)
}

func (e *EngineError) Unwrap() []error {
	if e.unreachable() {
		return []error{runner.ErrEngineUnreachable, e.Err}
	}
	return []error{e.Err}
}

// stopped returns the error Run reports for err. When ctx is done the error
// says what the run was doing and matches both ctx.Err() and
// context.Cause(ctx); [runner.ErrTimeout] only when the task's own timeout
// was reached. An invalid task or configuration is reported as such,
// whatever ctx does.
func (run *State) stopped(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, runner.ErrInvalidTask) || errors.Is(err, runner.ErrInvalidConfig) {
		return err
	}
	ctxErr, cause := ctx.Err(), context.Cause(ctx)
	doneAt := run.doneAt.Load()
	walk(err, func(e error) {
		ee, ok := e.(*EngineError)
		if ok && (errors.Is(ee.Err, ctxErr) || errors.Is(ee.Err, cause) || (doneAt != nil && !ee.Seen.Before(*doneAt))) {
			ee.interrupted = true
		}
	})
	what := "run " + run.Name() + " (image " + run.Task.Image
	if id := run.ContainerID; id != "" && id != run.Name() {
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
	return &stopError{engine: run.opts.Name, what: what, reason: reason, err: err, ctxErr: ctxErr}
}

// ownCause reports whether cause is one of the run's own limits, not a
// caller's cause.
func (run *State) ownCause(cause error) bool {
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
	engine string
	what   string
	reason error
	err    error
	ctxErr error // the context's error, not repeated when err is just that
}

func (e *stopError) Error() string {
	s := e.engine + ": " + e.what + ": " + e.reason.Error()
	if inner := strings.TrimPrefix(e.err.Error(), e.engine+": "); inner != e.ctxErr.Error() && !strings.HasSuffix(s, inner) {
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

// invalidCheckTimeout bounds the second rendering of a task that
// [State.invalidFirst] does once ctx is done.
const invalidCheckTimeout = time.Second

// invalidFirst returns the error for a run that ended with err before its
// task was rendered, or while it was: when ctx is done (the rendering then
// stops before it looks at the task), the task is rendered once more on a
// context of its own, for at most invalidCheckTimeout, so that an invalid
// task is reported as invalid whatever ctx does.
func (run *State) invalidFirst(ctx context.Context, err error) error {
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
