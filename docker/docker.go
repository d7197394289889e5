package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/internal/logs"
	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// Labels set on every container lading creates. [LabelManaged] finds them
// all; [LabelRun] finds the one of a run.
const (
	LabelManaged = "dev.lading.managed" // always "true"
	LabelRun     = "dev.lading.run"     // the run's random id, also in [Details.RunID]
	LabelTask    = "dev.lading.task"    // [runner.Task.ID], when set
	LabelCreated = "dev.lading.created" // creation time, RFC 3339, UTC
	// LabelDetached is "true" on the container of a run with [Config.Wait]
	// false: Run handed it over to the caller, and [Runner.Prune] keeps it
	// while the process that created it lives.
	LabelDetached = "dev.lading.detached"
)

// cleanupTimeout bounds every cleanup call, which runs on a fresh context so
// that a cancelled caller still leaves a clean engine.
const cleanupTimeout = 30 * time.Second

// EngineTimeout bounds each wait for the engine once a run is being stopped
// (its context cancelled or its timeout reached): the stop call gets the
// kill grace period plus EngineTimeout, every later call (the wait for the
// exit, the inspect, the removal, a start or create that was under way)
// EngineTimeout. When a call goes unanswered, Run makes no further call and
// returns an error matching [runner.ErrEngineUnresponsive]; the container is
// left on the engine for [Runner.Prune]. So with a frozen engine Run returns
// within KillGracePeriod + EngineTimeout of the cancel.
const EngineTimeout = 10 * time.Second

// OutputWaitDelay bounds how long Run waits, once the container has exited,
// for its output to reach the task's Stdout and Stderr writers and OnLine
// callback, counted from the last byte that moved: like os/exec's
// Cmd.WaitDelay, when a writer or the callback has not returned for that
// long, Run returns an error matching [runner.ErrOutputBlocked] without
// waiting for it (the call still under way returns when the writer does;
// nothing is written after Run returned). A stream the engine does not close
// within that delay of the exit is closed, with a warning.
const OutputWaitDelay = 5 * time.Second

// Runner runs tasks in containers on a Docker Engine (or any engine that
// serves the Docker API, such as Podman). It is safe for concurrent use; call
// [Runner.Shutdown] or [Runner.Close] when done with it. [Runner.With] gives
// Runners with other settings on the same connection and under the same
// concurrency limit.
type Runner struct {
	cfg      Config
	opts     options   // the host program's, kept by With
	compiled *compiled // cfg's parsed forms
	cli      *client.Client
	log      *slog.Logger
	slots    chan struct{}     // nil: no limit; shared with the Runners from With
	derived  bool              // made by With: Close leaves cli alone
	owner    map[string]string // labels naming this process, for Prune
	platform *ocispec.Platform // nil: the engine's own
	resolver credentials.Resolver
	cpus     *engineCPUs // shared with the Runners from With
	runtimes runtimes
	runs     *inflight // the runs under way, for Shutdown; shared with the Runners from With
}

var _ runner.Runner = (*Runner)(nil)

// Details is the docker-specific part of a [runner.Result], in its Details
// field.
type Details struct {
	// ContainerID is the id of the container that ran the task. With
	// [Config.Delete] (the default) the container no longer exists when Run
	// returns.
	ContainerID string
	// RunID is the random id lading gave the run, in the container's
	// [LabelRun] label and name ("lading-<RunID>").
	RunID string
}

// New returns a Runner for cfg, with the host program's options. It
// validates cfg, checking the settings that widen a container's reach
// against [WithAllow], and parses it once (sizes, ports, the docker
// config file) for all its runs, but does not contact the engine: the API
// version is negotiated on the first call, so New never blocks.
func New(cfg Config, opts ...Option) (*Runner, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxConcurrency < 0 {
		return nil, invalidConfig("maxConcurrency", fmt.Sprint(o.maxConcurrency), "must not be negative (0 means no limit)")
	}
	comp, err := cfg.compile(o.allow, nil)
	if err != nil {
		return nil, err
	}
	copts, err := clientOptions(cfg)
	if err != nil {
		return nil, err
	}
	cli, err := client.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w: %w", runner.ErrInvalidConfig, err)
	}
	var slots chan struct{}
	if o.maxConcurrency > 0 {
		slots = make(chan struct{}, o.maxConcurrency)
	}
	return newRunner(cfg, comp, o, cli, slots, &engineCPUs{}, newInflight()), nil
}

// newRunner returns a Runner for cfg, compiled as comp, on cli and the
// state it shares with the Runners made from it.
func newRunner(cfg Config, comp *compiled, o options, cli *client.Client, slots chan struct{}, cpus *engineCPUs, runs *inflight) *Runner {
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, opts: o, compiled: comp, cli: cli, log: log, slots: slots, owner: ownerLabels(), cpus: cpus, runs: runs}
	r.platform = comp.pull.platform
	r.resolver.Explicit = cfg.Credentials
	r.resolver.Config = comp.pull.dockerConfig
	for _, w := range cfg.Memory.Warnings() {
		log.Warn(w)
	}
	return r
}

// Run pulls the task's image as the pull policy says, runs the script in a
// new container and returns when the container has exited, its output has
// been read to the end, and (with [Config.Delete]) it has been removed.
//
// See [runner.Runner] for the meaning of the result and the errors. When ctx
// is cancelled or [runner.Task.Timeout] is reached, the container is stopped
// as [Config.KillGracePeriod] says, its output up to then is kept in the
// returned Result, and the error matches ctx.Err() and context.Cause(ctx)
// ([runner.ErrTimeout] with [context.DeadlineExceeded] for the task's own
// timeout) and says what the run was doing. Every wait after a cancel is
// bounded: see [EngineTimeout] and [OutputWaitDelay].
//
// [runner.Task.ScriptTimeout] counts from the container's start (for a
// resumed run, from the start of the container it follows): when reached,
// the container is stopped the same way, the output files are still
// collected, and the error matches [runner.ErrTimeout] with a
// [*runner.TimeoutError] whose Limit is "scriptTimeout". With
// [Config.Wait] false, Run returns once the container has started, and
// neither limit applies to the container after that.
func (r *Runner) Run(ctx context.Context, task runner.Task) (res *runner.Result, err error) {
	ctx, end, err := r.runs.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	// The masker comes first, so that no error Run returns quotes a secret,
	// not even one about an image or env name that holds it by accident.
	masker := newMasker(task.Secrets)
	if masker != nil {
		defer func() {
			err = maskError(masker, err)
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

	run := &run{r: r, task: task, id: newRunID(), mask: masker}
	run.log = r.log.With("run", run.id, "image", task.Image)
	if task.ID != "" {
		run.log = run.log.With("task", task.ID)
	}
	if r.slots != nil {
		run.doing = fmt.Sprintf("waiting for a free slot (maxConcurrency %d)", cap(r.slots))
		select {
		case r.slots <- struct{}{}:
			defer func() { <-r.slots }()
		case <-ctx.Done():
			return nil, run.stopped(ctx, run.invalidFirst(ctx, ctx.Err()))
		}
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
	if r.cfg.Resume && task.ID != "" {
		run.doing = "looking for a container to resume"
		found, err := r.resumable(ctx, task.ID)
		if err != nil {
			return nil, run.stopped(ctx, run.invalidFirst(ctx, err))
		}
		if found != nil {
			run.id, run.containerID, resumed = found.Labels[LabelRun], found.ID, true
		}
	}
	defer liveRuns.add(run.id)()
	run.doing = "rendering the task"
	ws, err := run.prepare(ctx)
	if err != nil {
		return nil, run.stopped(ctx, run.invalidFirst(ctx, err))
	}
	defer func() {
		if res == nil {
			ws.discard()
		}
	}()

	cleanup := r.cfg.deletes() && (r.cfg.waits() || resumed)
	if !resumed {
		run.doing = "looking for the image"
		if err := r.ensureImage(ctx, run); err != nil {
			return nil, run.stopped(ctx, err)
		}
		if err := run.stage(ctx, ws); err != nil {
			return nil, run.stopped(ctx, err)
		}
		if err := run.create(ctx, ws); err != nil {
			return nil, run.stopped(ctx, err)
		}
	}
	if cleanup {
		defer func() { err = errors.Join(err, run.remove(ctx)) }()
	}
	if resumed {
		res, err = run.reattach(ctx)
	} else {
		if err := run.copyIn(ctx, ws); err != nil {
			if !cleanup { // nothing else removes what never started
				err = errors.Join(err, run.remove(ctx))
			}
			return nil, run.stopped(ctx, err)
		}
		res, err = run.start(ctx)
	}
	if res != nil {
		res.WorkingDir = ws.hostDir
		res.Warnings = append(res.Warnings, r.cfg.Memory.Warnings()...)
	}
	// An engine that did not answer is not asked for the files.
	if res != nil && r.cfg.waits() && !run.unresponsive {
		err = errors.Join(err, run.collect(ctx, ws, res))
	}
	return res, run.stopped(ctx, err)
}

// newMasker returns the masker for a task's secrets, nil when there are
// none. It is built before the task is validated, from the values long
// enough to be masked ([runner.MinSecretLength]): validation refuses the
// others without quoting them, and masking them would mangle its message.
func newMasker(secrets map[string]string) *mask.Masker {
	values := make([]string, 0, len(secrets))
	for _, v := range secrets {
		if utf8.RuneCountInString(v) >= runner.MinSecretLength {
			values = append(values, v)
		}
	}
	return mask.New(values...)
}

// maskError masks err's message; a [*runner.FieldError] is replaced by a
// masked copy, so that errors.As finds no secret in its fields either.
func maskError(m *mask.Masker, err error) error {
	if fe, ok := err.(*runner.FieldError); ok {
		masked := *fe
		masked.Field, masked.Value, masked.Problem = m.String(fe.Field), m.String(fe.Value), m.String(fe.Problem)
		return &masked
	}
	return m.Error(err)
}

// run is the state of one Run call.
type run struct {
	r           *Runner
	mask        *mask.Masker // nil when the task has no secrets
	task        runner.Task
	id          string
	log         *slog.Logger
	containerID string

	imageUser      string // the image's configured user, when imageUserKnown
	imageUserKnown bool

	timeout       *runner.TimeoutError      // the cause set when Task.Timeout is reached, nil without one
	scriptTimeout *runner.TimeoutError      // the cause set when Task.ScriptTimeout is reached, nil without one
	doing         string                    // what the run is doing, for errors: "pulling", "running", ...
	unresponsive  bool                      // an engine call went unanswered: make no more
	doneAt        atomic.Pointer[time.Time] // when ctx was done, nil before
}

func (run *run) name() string { return "lading-" + run.id }

// event reports a stage to the task's OnEvent and the debug log.
func (run *run) event(stage runner.Stage, detail string) {
	if stage != runner.StageStopping && stage != runner.StageCleaning {
		run.doing = string(stage) // errors say in which stage a run was stopped
	}
	detail = run.mask.String(detail)
	run.log.Debug(string(stage), "detail", detail)
	if run.task.OnEvent != nil {
		run.task.OnEvent(runner.Event{Stage: stage, Time: time.Now(), Detail: detail})
	}
}

func (run *run) create(ctx context.Context, ws *workspace) error {
	cfg := &run.r.cfg
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, map[string]string{
		LabelManaged: "true",
		LabelRun:     run.id,
		LabelCreated: time.Now().UTC().Format(time.RFC3339),
	})
	if run.task.ID != "" {
		labels[LabelTask] = run.task.ID
	}
	if !cfg.waits() {
		labels[LabelDetached] = "true"
	}
	maps.Copy(labels, run.r.owner)
	comp := &run.r.compiled.container
	mounts, err := run.mounts(ws, labels)
	if err != nil {
		return err
	}
	if err := run.r.checkCPUs(ctx); err != nil {
		return err
	}
	if err := run.r.checkRuntime(ctx); err != nil {
		return err
	}
	hostCfg := &container.HostConfig{
		Init:         initFlag(cfg.Init),
		Runtime:      cfg.Runtime,
		Mounts:       mounts,
		NetworkMode:  container.NetworkMode(cfg.NetworkMode),
		ExtraHosts:   cfg.ExtraHosts,
		Privileged:   cfg.Privileged,
		ShmSize:      comp.shm,
		PortBindings: comp.ports,
		Resources:    comp.resources,
	}
	run.event(runner.StageCreating, run.name())
	// The create is not cancelled half-way: a cancelled request can leave a
	// container the engine finishes creating after lading looked for it.
	// Cancellation is honoured once the engine has answered, or has not
	// within EngineTimeout of it.
	createCtx, cancelCreate := engineCall(ctx, EngineTimeout)
	defer cancelCreate()
	createCtx, cancelCreateTimeout := context.WithTimeout(createCtx, cleanupTimeout)
	defer cancelCreateTimeout()
	created, err := run.r.cli.ContainerCreate(createCtx, client.ContainerCreateOptions{
		Name: run.name(),
		Config: &container.Config{
			Image:        run.task.Image,
			Entrypoint:   comp.entryPoint,
			Cmd:          append(interpreter(run.task), strings.Join(ws.commands, "\n")),
			Env:          ws.env,
			WorkingDir:   ContainerWorkingDir,
			User:         cfg.User,
			Labels:       labels,
			ExposedPorts: comp.exposed,
			AttachStdout: true,
			AttachStderr: true,
		},
		HostConfig: hostCfg,
		Platform:   run.r.platform,
	})
	if err != nil {
		// The engine may have created the container although the call
		// failed (a lost reply): remove it by name.
		run.containerID = run.name()
		return errors.Join(run.callError(createCtx, "create container "+run.name(), EngineTimeout, err), run.remove(ctx))
	}
	run.containerID = created.ID
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), run.remove(ctx))
	}
	for _, w := range created.Warnings {
		run.log.Warn("engine warning", "warning", w)
	}
	return nil
}

// start attaches to the container, registers the wait, starts it, and
// follows it to its end.
func (run *run) start(ctx context.Context) (*runner.Result, error) {
	cli := run.r.cli
	id := run.containerID
	res := &runner.Result{Details: &Details{ContainerID: id, RunID: run.id}}

	// The start is not cancelled half-way: the caller may cancel, and output
	// may arrive, before the engine answers; the stop in follow handles the
	// cancel. It is bounded once ctx is done.
	startCtx, cancelStart := engineCall(ctx, EngineTimeout)
	defer cancelStart()
	if !run.r.cfg.waits() {
		res.Started = time.Now()
		if _, err := cli.ContainerStart(startCtx, id, client.ContainerStartOptions{}); err != nil {
			return nil, run.callError(startCtx, "start container "+id, EngineTimeout, err)
		}
		run.event(runner.StageRunning, id)
		return res, nil
	}

	// The stream and the wait outlive a cancelled ctx: after a stop we still
	// read the output up to the end and learn the exit status.
	following, stopFollowing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFollowing()

	att, err := cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, engineError(run.r, "attach to container", err)
	}
	defer att.Close()
	wait := cli.ContainerWait(following, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	return run.follow(ctx, following, res, att.Reader, att.Close, wait, func() error {
		res.Started = time.Now()
		run.event(runner.StageRunning, id)
		if _, err := cli.ContainerStart(startCtx, id, client.ContainerStartOptions{}); err != nil {
			return run.callError(startCtx, "start container "+id, EngineTimeout, err)
		}
		return nil
	})
}

// follow reads the container's multiplexed output from stream into the
// task's sinks, calls start (if any), waits for the exit (stopping the
// container when ctx ends first, or [runner.Task.ScriptTimeout] after
// res.Started), drains the stream and fills res. following is the context
// that outlives ctx for the wait and the reads.
func (run *run) follow(ctx, following context.Context, res *runner.Result, stream io.Reader, closeStream func(),
	wait client.ContainerWaitResult, start func() error) (*runner.Result, error) {
	limit := run.task.ScriptTimeout
	if limit <= 0 {
		return run.followScript(ctx, following, res, stream, closeStream, wait, start)
	}
	run.scriptTimeout = &runner.TimeoutError{Timeout: limit, Cause: context.DeadlineExceeded, Limit: "scriptTimeout"}
	script, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(script, func() { now := time.Now(); run.doneAt.CompareAndSwap(nil, &now) })()
	var timer *time.Timer
	arm := func() {
		// From the container's start: a resumed run gets what is left.
		timer = time.AfterFunc(limit-time.Since(res.Started), func() { cancel(run.scriptTimeout) })
	}
	if start == nil {
		arm()
	} else {
		inner := start
		start = func() error {
			err := inner()
			if err == nil {
				arm()
			}
			return err
		}
	}
	res, err := run.followScript(script, following, res, stream, closeStream, wait, start)
	if timer != nil {
		timer.Stop()
	}
	if ctx.Err() == nil && context.Cause(script) == error(run.scriptTimeout) {
		err = run.stopped(script, err)
	}
	return res, err
}

func (run *run) followScript(ctx, following context.Context, res *runner.Result, stream io.Reader, closeStream func(),
	wait client.ContainerWaitResult, start func() error) (*runner.Result, error) {
	id := run.containerID
	var out flow
	defer out.gone.Store(true) // nothing reaches the task after Run returns
	sink := logs.New(out.taskWriter(run.task.Stdout), out.taskWriter(run.task.Stderr), out.onLine(run.task.OnLine), run.mask)
	drained := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(sinkWriter{&out, sink.Writer(runner.Stdout)}, sinkWriter{&out, sink.Writer(runner.Stderr)}, flowReader{&out, stream})
		drained <- err
	}()
	if start != nil {
		if err := start(); err != nil {
			closeStream()
			return nil, err
		}
	}

	statsDone := make(chan struct{})
	statsCtx, stopStats := context.WithCancel(following)
	go func() {
		defer close(statsDone)
		if run.statsWanted() {
			if err := run.followStats(statsCtx, id, res); err != nil {
				run.log.Warn("following stats", "error", err)
			}
		}
	}()
	defer func() { stopStats(); <-statsDone }()

	var status container.WaitResponse
	var stopped bool // the caller cancelled, or the timeout came, and we stopped the container
	var stopErr error
	select {
	case status = <-wait.Result:
	case err := <-wait.Error:
		closeStream()
		return nil, engineError(run.r, "wait for container", err)
	case <-ctx.Done():
		stopped = true
		run.event(runner.StageStopping, context.Cause(ctx).Error())
		stopErr = run.stop(ctx)
		if !run.unresponsive {
			timer := time.NewTimer(EngineTimeout)
			select {
			case status = <-wait.Result:
			case err := <-wait.Error:
				timer.Stop()
				closeStream()
				return nil, errors.Join(stopErr, engineError(run.r, "wait for stopped container", err))
			case <-timer.C:
				run.unresponsive = true
				stopErr = errors.Join(stopErr, &unresponsiveError{doing: "wait for container " + id + " to exit", bound: EngineTimeout})
			}
			timer.Stop()
		}
	}
	res.Finished = time.Now()
	res.ExitCode = int(status.StatusCode)
	if run.unresponsive {
		res.ExitCode = -1 // unknown: the engine did not say
	}
	stopStats()
	<-statsDone // res is complete: no more writes from the stats goroutine

	if run.unresponsive {
		// The engine may never end the stream: what was read is kept.
		closeStream()
	}
	drainErr, warning, blocked := out.drain(drained, closeStream)
	if blocked {
		// A task writer holds the sink: its lines and outputs cannot be
		// read without waiting for it.
		var exitErr error
		if !stopped && res.ExitCode != 0 {
			exitErr = &runner.ExitError{ExitCode: res.ExitCode}
		}
		return res, errors.Join(outputBlockedError{}, stopErr, run.stoppedErr(stopped, res), exitErr)
	}
	if drainErr != nil && ctx.Err() == nil {
		res.Warnings = append(res.Warnings, "reading the container's output: "+drainErr.Error())
	}
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	writeErr := sink.Close()
	sink.Fill(res)

	if res.ExitCode > 0 && !run.unresponsive {
		call, cancel := engineCall(ctx, EngineTimeout)
		call, cancelTimeout := context.WithTimeout(call, cleanupTimeout)
		inspected, err := run.r.cli.ContainerInspect(call, id, client.ContainerInspectOptions{})
		if err == nil && inspected.Container.State != nil {
			res.OOMKilled = inspected.Container.State.OOMKilled
		} else if err != nil {
			if uerr, ok := run.callError(call, "inspect container "+id, EngineTimeout, err).(*unresponsiveError); ok {
				stopErr = errors.Join(stopErr, uerr)
			}
		}
		cancelTimeout()
		cancel()
	}
	switch {
	case status.Error != nil && status.Error.Message != "":
		return res, errors.Join(fmt.Errorf("docker: wait for container %s: %s", id, status.Error.Message), stopErr, writeErr)
	case stopped:
		return res, errors.Join(run.stoppedErr(stopped, res), stopErr, writeErr)
	case res.ExitCode != 0:
		return res, errors.Join(&runner.ExitError{ExitCode: res.ExitCode, OOMKilled: res.OOMKilled}, stopErr, writeErr)
	}
	return res, errors.Join(stopErr, writeErr)
}

// stoppedErr says that the container was stopped, and with what exit code;
// nil when it was not. Run's error adds why (the context's end).
func (run *run) stoppedErr(stopped bool, res *runner.Result) error {
	switch {
	case !stopped:
		return nil
	case run.unresponsive:
		return errors.New("asked the container to stop; the engine did not say whether it did")
	}
	return fmt.Errorf("container stopped, exit code %d", res.ExitCode)
}

// stop stops the container with the configured signal and grace period. The
// call is given the grace period plus EngineTimeout.
func (run *run) stop(ctx context.Context) error {
	cfg := &run.r.cfg
	grace := max(time.Duration(cfg.KillGracePeriod), 0)
	call, cancel := engineCall(ctx, grace+EngineTimeout)
	defer cancel()
	var err error
	if grace == 0 {
		_, err = run.r.cli.ContainerKill(call, run.containerID, client.ContainerKillOptions{Signal: "SIGKILL"})
	} else {
		secs := int(math.Ceil(grace.Seconds()))
		_, err = run.r.cli.ContainerStop(call, run.containerID, client.ContainerStopOptions{Signal: cfg.StopSignal, Timeout: &secs})
	}
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return run.callError(call, "stop container "+run.containerID, grace+EngineTimeout, err)
	}
	return nil
}

// remove deletes the container and its anonymous volumes, within
// cleanupTimeout, and within EngineTimeout once ctx is done. A container
// that is already gone counts as removed. After an engine call went
// unanswered it is not asked: the container is left for Prune.
func (run *run) remove(ctx context.Context) error {
	run.event(runner.StageCleaning, run.containerID)
	doing := "remove container " + run.containerID
	if run.unresponsive {
		return &unresponsiveError{doing: doing}
	}
	call, cancel := engineCall(ctx, EngineTimeout)
	defer cancel()
	call, cancelTimeout := context.WithTimeout(call, cleanupTimeout)
	defer cancelTimeout()
	_, err := run.r.cli.ContainerRemove(call, run.containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if cerrdefs.IsConflict(err) {
		return nil // removal already in progress
	}
	return run.callError(call, doing, EngineTimeout, err)
}

// engineCPUs is the engine's CPU count, asked once it is needed and kept
// once known.
type engineCPUs struct {
	mu sync.Mutex
	n  int // 0 until known
}

// checkCPUs fails when the CPU limit is above what the engine has. The
// engine's count is asked until an answer comes, then kept for r and the
// Runners that share its connection; while the engine does not say, the
// limit is not checked here (the engine refuses what it cannot give).
func (r *Runner) checkCPUs(ctx context.Context) error {
	if r.cfg.CPU.CPUs == 0 {
		return nil
	}
	c := r.cpus
	c.mu.Lock()
	if c.n == 0 {
		if info, err := r.cli.Info(ctx, client.InfoOptions{}); err == nil {
			c.n = info.Info.NCPU
		}
	}
	n := c.n
	c.mu.Unlock()
	return r.cfg.CPU.Validate(n)
}

func initFlag(b bool) *bool {
	if !b {
		return nil
	}
	return &b
}

// interpreter returns the task's interpreter, or the default.
func interpreter(task runner.Task) []string {
	cmd := task.Command()
	return cmd[:len(cmd)-1]
}

func newRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; fall back to
		// something unique within this process anyway.
		return fmt.Sprintf("%x-%x", os.Getpid(), time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}
