package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/distribution/reference"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// CleanupTimeout bounds every cleanup call, which runs on a fresh context so
// that a cancelled caller still leaves a clean engine.
const CleanupTimeout = 30 * time.Second

// EngineTimeout bounds each wait for the engine once a run is being stopped:
// the stop call gets the kill grace period plus EngineTimeout, every later
// call EngineTimeout. See docker.EngineTimeout for the whole contract.
const EngineTimeout = 10 * time.Second

// OutputWaitDelay bounds how long [Run] waits, once the task has exited, for
// its output to reach the task's writers, counted from the last byte that
// moved. See docker.OutputWaitDelay.
const OutputWaitDelay = 5 * time.Second

// Engine is what an engine writes to run a task; [Run] does the rest. A
// value serves one run: the function given to Run makes it for that run's
// [*State], which it keeps. Errors of the engine's API are wrapped by Error;
// every method is called at most once, in this order: Image, Files (which
// also serve Create), Create, Attach, Start, then Stop (when the run is
// stopped) and Remove (for cleanup, possibly twice).
type Engine interface {
	// Image makes the task's image present as the engine's pull policy
	// says.
	Image(ctx context.Context) error
	// Files returns the file strategy of the run, chosen once.
	Files() Files
	// Create makes the task's container, not yet started, and sets
	// [State.ContainerID]. The calls it must not let ctx cut short run on
	// [EngineCall]; when one fails, it removes what may exist ([State.Remove]).
	Create(ctx context.Context) error
	// Attach returns the container's output and exit, before the start:
	// nothing the task writes may be missed.
	Attach(ctx context.Context) (*Attachment, error)
	// Start starts the created container. ctx is bounded by [EngineCall].
	Start(ctx context.Context) error
	// Stop stops the running container: with SIGKILL when grace is zero,
	// else with the stop signal and grace before the kill. A container
	// already gone or stopped is not an error. ctx is bounded by
	// [EngineCall].
	Stop(ctx context.Context, grace time.Duration) error
	// Remove removes the container and what was created with it; one that
	// is already gone, or being removed, is not an error. ctx is bounded
	// by [EngineCall] and [CleanupTimeout].
	Remove(ctx context.Context) error
	// Details is the engine's part of the result, in
	// [runner.Result.Details].
	Details() any
	// Error wraps err, an error of the engine's API, with what was being
	// done ("wait for container").
	Error(doing string, err error) error
}

// Resumer is implemented by engines that resume the container of an earlier
// run of a task ([Options.Resume]).
type Resumer interface {
	// Find looks for a container of an earlier run of the task whose
	// process is gone. When it finds one it sets [State.ID] and
	// [State.ContainerID] and returns true.
	Find(ctx context.Context) (bool, error)
	// Reattach follows the container Find found: its output from the
	// start, and when it started. A nil Attachment means it never started:
	// Run then starts it as a new one.
	Reattach(ctx context.Context) (*Attachment, time.Time, error)
}

// Options are an engine's settings that [Run] applies.
type Options struct {
	Name           string          // the engine's name, which starts every error: "docker"
	Log            *slog.Logger    // never nil
	Limiter        *runner.Limiter // nil: no concurrency limit
	Resume         bool            // look for a container to resume (the engine is a [Resumer])
	Wait           bool            // false: return once the container has started
	Delete         bool            // remove the container once done
	KillGrace      time.Duration   // <= 0: SIGKILL at once
	MaxOutputBytes int64           // <= 0: files.DefaultMaxBytes
	MaxOutputFiles int             // <= 0: files.DefaultMaxFiles
	Warnings       []string        // added to every result
	// ContainerDir is where the working directory is inside the
	// container: "" means at the host's absolute path, as Kestra does, so
	// that a host path rendered into the script means the same file on
	// both sides.
	ContainerDir string
	// Track, when set, is called with the run's id once it is known and
	// its result once the run is over.
	Track func(runID string) (done func())
}

// State is the state of one run, shared by [Run] and its [Engine]. Engines
// read the exported fields and set those their methods say.
type State struct {
	Task        runner.Task  // the run's copy: input files that are templates are rendered
	ID          string       // the run's random id
	ContainerID string       // set by Create, or by Find
	Log         *slog.Logger // with the run's id, image and task id
	Mask        *mask.Masker // nil when the task has no secrets
	WS          *Workspace   // the working directory, once rendered

	opts          *Options
	eng           Engine
	files         Files
	timeout       *runner.TimeoutError      // the cause set when Task.Timeout is reached, nil without one
	scriptTimeout *runner.TimeoutError      // the cause set when Task.ScriptTimeout is reached, nil without one
	doing         string                    // what the run is doing, for errors: "pulling", "running", ...
	unresponsive  bool                      // an engine call went unanswered: make no more
	doneAt        atomic.Pointer[time.Time] // when ctx was done, nil before
}

// Name is the container's name, "lading-<ID>".
func (run *State) Name() string { return "lading-" + run.ID }

// Options are the settings the run was given.
func (run *State) Options() *Options { return run.opts }

// Unresponsive reports whether an engine call went unanswered: no more are
// made, and what is left is left for the engine's prune.
func (run *State) Unresponsive() bool { return run.unresponsive }

// Event reports a stage to the task's OnEvent and the debug log.
func (run *State) Event(stage runner.Stage, detail string) {
	if stage != runner.StageStopping && stage != runner.StageCleaning {
		run.doing = string(stage) // errors say in which stage a run was stopped
	}
	detail = run.Mask.String(detail)
	run.Log.Debug(string(stage), "detail", detail)
	if run.Task.OnEvent != nil {
		run.Task.OnEvent(runner.Event{Stage: stage, Time: time.Now(), Detail: detail})
	}
}

// Run runs task on the engine newEngine makes for it: it validates the
// task, takes a concurrency slot, applies the timeouts, renders the task
// and its working directory, has the engine make the image present, create
// the container, copy files in, attach and start, follows the output to the
// task's sinks, stops the container when ctx ends, collects the output
// files, removes what was created, and masks the task's secrets in every
// error and warning. See docker.Runner.Run for the contract.
func Run(ctx context.Context, task runner.Task, opts Options, newEngine func(*State) Engine) (res *runner.Result, err error) {
	// The masker comes first, so that no error Run returns quotes a secret,
	// not even one about an image or env name that holds it by accident.
	masker := NewMasker(task.Secrets)
	if masker != nil {
		defer func() {
			err = MaskError(masker, err)
			if res != nil {
				for i, w := range res.Warnings {
					res.Warnings[i] = masker.String(w)
				}
			}
		}()
	}
	if err := task.Validate(); err != nil {
		return nil, err
	}
	if _, err := reference.ParseNormalizedNamed(task.Image); err != nil {
		return nil, &runner.FieldError{Field: "image", Value: task.Image, Problem: "is not a valid image reference: " + err.Error(), Err: runner.ErrInvalidTask}
	}

	run := &State{opts: &opts, Task: task, ID: NewRunID(), Mask: masker}
	run.Log = opts.Log.With("run", run.ID, "image", task.Image)
	if task.ID != "" {
		run.Log = run.Log.With("task", task.ID)
	}
	run.eng = newEngine(run)
	if opts.Limiter != nil {
		run.doing = fmt.Sprintf("waiting for a free slot (maxConcurrency %d)", opts.Limiter.Limit())
		release, err := opts.Limiter.Acquire(ctx)
		if err != nil {
			return nil, run.stopped(ctx, run.invalidFirst(ctx, err))
		}
		defer release()
	}
	if task.Timeout > 0 {
		// This very value is the cause when the timeout is reached, which
		// tells it from a caller's cause that is a TimeoutError too (a
		// sibling's, passed on by an errgroup).
		run.timeout = &runner.TimeoutError{Timeout: task.Timeout, Cause: context.DeadlineExceeded, Limit: "timeout"}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, task.Timeout, run.timeout)
		defer cancel()
	}
	// A connection error seen once ctx is done is the cancel's doing.
	defer context.AfterFunc(ctx, func() { now := time.Now(); run.doneAt.Store(&now) })()

	var resumed bool
	resumer, canResume := run.eng.(Resumer)
	if opts.Resume && canResume && task.ID != "" {
		run.doing = "looking for a container to resume"
		found, err := resumer.Find(ctx)
		if err != nil {
			return nil, run.stopped(ctx, run.invalidFirst(ctx, err))
		}
		resumed = found
	}
	if opts.Track != nil {
		defer opts.Track(run.ID)()
	}
	run.doing = "rendering the task"
	ws, err := run.prepare(ctx)
	if err != nil {
		return nil, run.stopped(ctx, run.invalidFirst(ctx, err))
	}
	run.WS = ws
	run.files = run.eng.Files()
	defer func() {
		if res == nil {
			run.files.Discard()
			ws.discard()
		}
	}()

	cleanup := opts.Delete && (opts.Wait || resumed)
	if !resumed {
		run.doing = "looking for the image"
		if err := run.eng.Image(ctx); err != nil {
			return nil, run.stopped(ctx, err)
		}
		if err := run.files.Stage(ctx); err != nil {
			return nil, run.stopped(ctx, err)
		}
		if err := run.eng.Create(ctx); err != nil {
			return nil, run.stopped(ctx, err)
		}
	}
	if cleanup {
		defer func() { err = errors.Join(err, run.Remove(ctx)) }()
	}
	if resumed {
		res, err = run.reattach(ctx, resumer)
	} else {
		if err := run.files.CopyIn(ctx); err != nil {
			if !cleanup { // nothing else removes what never started
				err = errors.Join(err, run.Remove(ctx))
			}
			return nil, run.stopped(ctx, err)
		}
		res, err = run.start(ctx)
	}
	if res != nil {
		res.WorkingDir = ws.HostDir
		res.Warnings = append(res.Warnings, opts.Warnings...)
	}
	// An engine that did not answer is not asked for the files.
	if res != nil && opts.Wait && !run.unresponsive {
		err = errors.Join(err, run.collect(ctx, res))
	}
	return res, run.stopped(ctx, err)
}

// NewMasker returns the masker for a task's secrets, nil when there are
// none. It is built before the task is validated, from the values long
// enough to be masked ([runner.MinSecretLength]): validation refuses the
// others without quoting them, and masking them would mangle its message.
func NewMasker(secrets map[string]string) *mask.Masker {
	values := make([]string, 0, len(secrets))
	for _, v := range secrets {
		if utf8.RuneCountInString(v) >= runner.MinSecretLength {
			values = append(values, v)
		}
	}
	return mask.New(values...)
}

// MaskError masks err's message; a [*runner.FieldError] is replaced by a
// masked copy, so that errors.As finds no secret in its fields either.
func MaskError(m *mask.Masker, err error) error {
	if fe, ok := err.(*runner.FieldError); ok {
		masked := *fe
		masked.Field, masked.Value, masked.Problem = m.String(fe.Field), m.String(fe.Value), m.String(fe.Problem)
		return &masked
	}
	return m.Error(err)
}

// NewRunID returns a random run id, 16 hex digits.
func NewRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; fall back to
		// something unique within this process anyway.
		return fmt.Sprintf("%x-%x", os.Getpid(), time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// start attaches to the container, starts it, and follows it to its end;
// without [Options.Wait] it only starts it.
func (run *State) start(ctx context.Context) (*runner.Result, error) {
	id := run.ContainerID
	res := &runner.Result{Details: run.eng.Details()}

	// The start is not cancelled half-way: the caller may cancel, and output
	// may arrive, before the engine answers; the stop in follow handles the
	// cancel. It is bounded once ctx is done.
	startCtx, cancelStart := EngineCall(ctx, EngineTimeout)
	defer cancelStart()
	if !run.opts.Wait {
		res.Started = time.Now()
		if err := run.eng.Start(startCtx); err != nil {
			return nil, run.CallError(startCtx, "start container "+id, EngineTimeout, err)
		}
		run.Event(runner.StageRunning, id)
		return res, nil
	}
	att, err := run.eng.Attach(ctx)
	if err != nil {
		return nil, err
	}
	defer att.Close()
	return run.follow(ctx, res, att, func() error {
		res.Started = time.Now()
		run.Event(runner.StageRunning, id)
		if err := run.eng.Start(startCtx); err != nil {
			return run.CallError(startCtx, "start container "+id, EngineTimeout, err)
		}
		return nil
	})
}

// reattach follows a container created by an earlier process from the
// start of its output; one that never started is started.
func (run *State) reattach(ctx context.Context, resumer Resumer) (*runner.Result, error) {
	att, started, err := resumer.Reattach(ctx)
	if err != nil {
		return nil, err
	}
	if att == nil {
		// The earlier process died between create and start.
		run.Log.Debug("resuming a container that never started", "container", run.ContainerID)
		return run.start(ctx)
	}
	defer att.Close()
	res := &runner.Result{Details: run.eng.Details(), Started: started}
	run.Event(runner.StageRunning, "resumed "+run.ContainerID)
	return run.follow(ctx, res, att, nil)
}

// stop stops the container with the configured grace period. The call is
// given the grace period plus EngineTimeout.
func (run *State) stop(ctx context.Context) error {
	grace := max(run.opts.KillGrace, 0)
	call, cancel := EngineCall(ctx, grace+EngineTimeout)
	defer cancel()
	if err := run.eng.Stop(call, grace); err != nil {
		return run.CallError(call, "stop container "+run.ContainerID, grace+EngineTimeout, err)
	}
	return nil
}

// Remove removes the container (Engine.Remove), within CleanupTimeout, and
// within EngineTimeout once ctx is done. After an engine call went
// unanswered the engine is not asked: the container is left for its prune.
func (run *State) Remove(ctx context.Context) error {
	run.Event(runner.StageCleaning, run.ContainerID)
	doing := "remove container " + run.ContainerID
	if run.unresponsive {
		return &unresponsiveError{engine: run.opts.Name, doing: doing}
	}
	call, cancel := EngineCall(ctx, EngineTimeout)
	defer cancel()
	call, cancelTimeout := context.WithTimeout(call, CleanupTimeout)
	defer cancelTimeout()
	if err := run.eng.Remove(call); err != nil {
		return run.CallError(call, doing, EngineTimeout, err)
	}
	return nil
}
