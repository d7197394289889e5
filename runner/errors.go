package runner

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels for the failures callers branch on. Match them with [errors.Is];
// the errors runners return wrap them with details.
var (
	// ErrInvalidTask: the task cannot run as written. The error is a
	// [*FieldError] naming the field and value.
	ErrInvalidTask = errors.New("invalid task")
	// ErrInvalidConfig: a runner's configuration is invalid. The error is a
	// [*FieldError] naming the field and value.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrImageNotFound: the image is not present and cannot be pulled
	// (unknown repository or tag, or the pull policy forbids pulling).
	ErrImageNotFound = errors.New("image not found")
	// ErrUnauthorized: the registry refused the credentials, or asked for
	// some and none were given.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrEngineUnreachable: the container engine could not be reached. The
	// message says where lading looked and how to point it elsewhere.
	ErrEngineUnreachable = errors.New("container engine unreachable")
	// ErrEngineUnresponsive: the engine took the request but did not answer
	// within the runner's bound (a frozen or overloaded engine) while a run
	// was being stopped or cleaned up. Run returned without waiting longer;
	// the container may be left on the engine for a sweep.
	ErrEngineUnresponsive = errors.New("container engine unresponsive")
	// ErrOutputBlocked: the container had exited, but the task's Stdout or
	// Stderr writer or its OnLine callback did not return within the
	// runner's delay (like os/exec's ErrWaitDelay). Run returned without
	// waiting for it; output from then on is missing from the Result.
	ErrOutputBlocked = errors.New("output still being written")
	// ErrTimeout: [Task.Timeout] or [Task.ScriptTimeout] was reached
	// ([*TimeoutError] says which). Errors matching it also match
	// [context.DeadlineExceeded].
	ErrTimeout = errors.New("task timed out")
	// ErrClosed: the runner is shut down or closed and takes no new run (as
	// [net/http.ErrServerClosed]). A run still under way when its runner's
	// shutdown gave up on waiting is cancelled with it as the cause: its
	// error matches both ErrClosed and [context.Canceled].
	ErrClosed = errors.New("runner closed")
)

// FieldError reports an invalid field of a task or configuration. It
// matches [ErrInvalidTask] or [ErrInvalidConfig] through Err.
//
// Value holds the offending value as written; fields that carry secrets never
// put their value here, and leave it empty.
//
// The message reads once, as "<kind>: <field> <quoted value>: <problem>",
// e.g. `invalid config: memory.memory "1k": must be at least 6MiB`; the
// quoted value is left out when Value is empty (`invalid task:
// secrets.TOKEN: must not contain a NUL byte`).
type FieldError struct {
	Field   string // the field's path as the user writes it, e.g. "pullPolicy", "memory.memory", "deviceRequests[0].count"
	Value   string // the offending value; empty when it is not shown
	Problem string // what is wrong, e.g. "must be one of IF_NOT_PRESENT, ALWAYS, NEVER"
	Err     error  // ErrInvalidTask or ErrInvalidConfig
}

func (e *FieldError) Error() string {
	kind := "invalid"
	if e.Err != nil {
		kind = e.Err.Error()
	}
	if e.Value == "" {
		return fmt.Sprintf("%s: %s: %s", kind, e.Field, e.Problem)
	}
	return fmt.Sprintf("%s: %s %q: %s", kind, e.Field, e.Value, e.Problem)
}

// Unwrap returns the sentinel the error belongs to.
func (e *FieldError) Unwrap() error { return e.Err }

// ExitError reports that the script ran and exited with a non-zero status.
// Run returns it together with the populated [*Result], so outputs printed
// before the failure are not lost.
type ExitError struct {
	ExitCode  int
	OOMKilled bool
}

func (e *ExitError) Error() string {
	if e.OOMKilled {
		return fmt.Sprintf("command was killed for exceeding its memory limit (OOM), exit code %d", e.ExitCode)
	}
	return fmt.Sprintf("command failed with exit code %d", e.ExitCode)
}

// TimeoutError reports that [Task.Timeout] or [Task.ScriptTimeout] was
// reached. It matches both [ErrTimeout] and [context.DeadlineExceeded].
type TimeoutError struct {
	Timeout time.Duration // the configured timeout, e.g. 30*time.Second; the message prints it as "30s"
	Cause   error         // the context error (context.DeadlineExceeded)
	// Limit is the Task field that was reached: "scriptTimeout" for
	// [Task.ScriptTimeout]; "timeout" or empty for [Task.Timeout].
	Limit string
}

func (e *TimeoutError) Error() string {
	if e.Limit == "scriptTimeout" {
		return fmt.Sprintf("script timed out after %s (scriptTimeout, counted from the container's start)", e.Timeout)
	}
	return fmt.Sprintf("task timed out after %s (timeout)", e.Timeout)
}

// Unwrap returns ErrTimeout and the context's error.
func (e *TimeoutError) Unwrap() []error { return []error{ErrTimeout, e.Cause} }

// WaitError says what a bounded wait was still waiting for when it gave up,
// as os/exec's Cmd.WaitDelay bounds its waits: an engine call that went
// unanswered ([ErrEngineUnresponsive]) or a task writer that had not
// returned ([ErrOutputBlocked]). Runners return it inside their own error:
// find it with errors.As.
type WaitError struct {
	// Awaited names what was awaited: "the engine's answer to stop
	// container 3f2a...", "the task's Stdout writer".
	Awaited string
	// Delay is the bound that ran out; zero when the call was not made
	// because an earlier one had gone unanswered.
	Delay time.Duration
	// Err is ErrEngineUnresponsive or ErrOutputBlocked.
	Err error
}

func (e *WaitError) Error() string {
	if e.Delay == 0 {
		return fmt.Sprintf("%v: %s: not awaited, an earlier wait gave up", e.Err, e.Awaited)
	}
	return fmt.Sprintf("%v: %s: still awaited after %s", e.Err, e.Awaited, e.Delay)
}

func (e *WaitError) Unwrap() error { return e.Err }
