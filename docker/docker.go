package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
)

// Labels set on every container lading creates. [LabelManaged] finds them
// all; [LabelRun] finds the one of a run.
const (
	LabelManaged = "dev.lading.managed" // always "true"
	LabelRun     = "dev.lading.run"     // the run's random id, also in [Details.RunID]
	LabelTask    = "dev.lading.task"    // [runner.Task.ID], when set
	LabelCreated = "dev.lading.created" // creation time, RFC 3339, UTC
	// LabelDetached is "true" on the container of a run with [Lifecycle.Wait]
	// false: Run handed it over to the caller, and [Runner.Prune] keeps it
	// while the process that created it lives.
	LabelDetached = "dev.lading.detached"
)

// cleanupTimeout bounds every cleanup call, which runs on a fresh context so
// that a cancelled caller still leaves a clean engine.
const cleanupTimeout = core.CleanupTimeout

// EngineTimeout bounds each wait for the engine once a run is being stopped
// (its context cancelled or its timeout reached): the stop call gets the
// kill grace period plus EngineTimeout, every later call (the wait for the
// exit, the inspect, the removal, a start or create that was under way)
// EngineTimeout. When a call goes unanswered, Run makes no further call and
// returns an error matching [runner.ErrEngineUnresponsive], with a
// [*runner.WaitError] naming the call; the container is left on the engine
// for [Runner.Prune]. So with a frozen engine Run returns
// within KillGracePeriod + EngineTimeout of the cancel.
const EngineTimeout = core.EngineTimeout

// OutputWaitDelay bounds how long Run waits, once the container has exited,
// for its output to reach the task's Stdout and Stderr writers and OnLine
// callback, counted from the last byte that moved: like os/exec's
// Cmd.WaitDelay, when a writer or the callback has not returned for that
// long, Run returns an error matching [runner.ErrOutputBlocked], with a
// [*runner.WaitError] naming the writer or the callback, without
// waiting for it (the call still under way returns when the writer does;
// nothing is written after Run returned). A stream the engine does not close
// within that delay of the exit is closed, with a warning.
const OutputWaitDelay = core.OutputWaitDelay

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
	limiter  *runner.Limiter   // nil: no limit; shared with the Runners from With
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
	// [Lifecycle.Delete] (the default) the container no longer exists when Run
	// returns.
	ContainerID string
	// RunID is the random id lading gave the run, in the container's
	// [LabelRun] label and name ("lading-<RunID>"), or, for a run in a warm
	// pool, only here.
	RunID string
	// ExecID is the id of the exec that ran the task in a container of the
	// warm pool ([WithPool]), "" for a run in a container of its own. The
	// pool's container (ContainerID) outlives the run.
	ExecID string
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
	if o.pool != nil {
		if err := o.pool.Validate(); err != nil {
			return nil, err
		}
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
	limiter := o.limiter
	if limiter == nil && o.maxConcurrency > 0 {
		limiter = runner.NewLimiter(o.maxConcurrency)
	}
	if o.pool != nil {
		o.pools = newPoolSet(*o.pool, o.logger)
	}
	return newRunner(cfg, comp, o, cli, limiter, &engineCPUs{}, newInflight()), nil
}

// newRunner returns a Runner for cfg, compiled as comp, on cli and the
// state it shares with the Runners made from it.
func newRunner(cfg Config, comp *compiled, o options, cli *client.Client, limiter *runner.Limiter, cpus *engineCPUs, runs *inflight) *Runner {
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, opts: o, compiled: comp, cli: cli, log: log, limiter: limiter, owner: ownerLabels(), cpus: cpus, runs: runs}
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
// been read to the end, and (with [Lifecycle.Delete]) it has been removed.
//
// See [runner.Runner] for the meaning of the result and the errors. When ctx
// is cancelled or [runner.Task.Timeout] is reached, the container is stopped
// as [Lifecycle.KillGracePeriod] says, its output up to then is kept in the
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
// [Lifecycle.Wait] false, Run returns once the container has started, and
// neither limit applies to the container after that.
func (r *Runner) Run(ctx context.Context, task runner.Task) (*runner.Result, error) {
	ctx, end, err := r.runs.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	opts := core.Options{
		Name: "docker", Log: r.log, Limiter: r.limiter,
		Resume: r.cfg.Resume, Wait: r.cfg.waits(), Delete: r.cfg.deletes(), KillGrace: time.Duration(r.cfg.KillGracePeriod),
		MaxOutputBytes: r.cfg.MaxOutputBytes, MaxOutputFiles: r.cfg.MaxOutputFiles,
		Warnings: r.cfg.Memory.Warnings(), Track: liveRuns.Add, ContainerDir: r.cfg.Container.WorkingDir,
	}
	pooled := r.opts.pools != nil && r.poolable() == "" && task.OnStats == nil
	return core.Run(ctx, task, opts, func(c *core.State) core.Engine {
		cold := &run{r: r, c: c, task: c.Task, log: c.Log}
		if pooled {
			return newPoolRun(cold)
		}
		return cold
	})
}

// run is the Docker engine of one Run call: what [core.Run] asks of it.
type run struct {
	r     *Runner
	c     *core.State
	task  runner.Task // the task as given (its Image, OnPull, OnStats); c.Task is the rendered one
	log   *slog.Logger
	files fileStrategy // chosen once, by Files

	imageUser      string // the image's configured user, when imageUserKnown
	imageUserKnown bool
}

var (
	_ core.Engine  = (*run)(nil)
	_ core.Resumer = (*run)(nil)
)

// event reports a stage to the task's OnEvent and the debug log.
func (run *run) event(stage runner.Stage, detail string) { run.c.Event(stage, detail) }

// Image makes the image present as the pull policy says.
func (run *run) Image(ctx context.Context) error { return run.r.ensureImage(ctx, run) }

// Details is the docker part of the result.
func (run *run) Details() any { return &Details{ContainerID: run.c.ContainerID, RunID: run.c.ID} }

// Error wraps an error of the engine's API.
func (run *run) Error(doing string, err error) error { return engineError(run.r, doing, err) }

// Create makes the container.
func (run *run) Create(ctx context.Context) error {
	cfg := &run.r.cfg
	ws := run.c.WS
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, map[string]string{
		LabelManaged: "true",
		LabelRun:     run.c.ID,
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
	mounts, err := run.mounts(labels)
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
	name := run.c.Name()
	run.event(runner.StageCreating, name)
	// The create is not cancelled half-way: a cancelled request can leave a
	// container the engine finishes creating after lading looked for it.
	// Cancellation is honoured once the engine has answered, or has not
	// within EngineTimeout of it.
	createCtx, cancelCreate := core.EngineCall(ctx, EngineTimeout)
	defer cancelCreate()
	createCtx, cancelCreateTimeout := context.WithTimeout(createCtx, cleanupTimeout)
	defer cancelCreateTimeout()
	created, err := run.r.cli.ContainerCreate(createCtx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:        run.task.Image,
			Entrypoint:   comp.entryPoint,
			Cmd:          append(interpreter(run.task), strings.Join(ws.Commands, "\n")),
			Env:          ws.Env,
			WorkingDir:   run.c.WS.ContainerDir,
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
		run.c.ContainerID = name
		return errors.Join(run.c.CallError(createCtx, "create container "+name, EngineTimeout, err), run.c.Remove(ctx))
	}
	run.c.ContainerID = created.ID
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), run.c.Remove(ctx))
	}
	for _, w := range created.Warnings {
		run.log.Warn("engine warning", "warning", w)
	}
	return nil
}

// Attach attaches to the created container's output and registers the
// wait for its exit, before the start.
func (run *run) Attach(ctx context.Context) (*core.Attachment, error) {
	cli, id := run.r.cli, run.c.ContainerID
	att, err := cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, engineError(run.r, "attach to container", err)
	}
	// The wait outlives a cancelled ctx: after a stop we still learn the
	// exit status.
	waiting, stopWaiting := context.WithCancel(context.WithoutCancel(ctx))
	wait := cli.ContainerWait(waiting, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	oom := run.watchOOM(ctx, id, time.Now())
	return run.attachment(att.Reader, func() { att.Close(); stopWaiting(); oom.close() }, wait, oom), nil
}

// attachment is the shape the core follows of a container's multiplexed
// stream, its registered wait and its oom events (nil: not followed).
func (run *run) attachment(stream io.Reader, closeStream func(), wait client.ContainerWaitResult, oom *oomWatch) *core.Attachment {
	id := run.c.ContainerID
	a := &core.Attachment{
		Stream: stream,
		Close:  closeStream,
		Demux: func(stdout, stderr io.Writer, src io.Reader) error {
			_, err := stdcopy.StdCopy(stdout, stderr, src)
			return err
		},
		Wait: func(ctx context.Context) (core.Exit, error) {
			select {
			case status := <-wait.Result:
				exit := core.Exit{Code: int(status.StatusCode)}
				oom.exited(exit.Code)
				if status.Error != nil {
					exit.Message = status.Error.Message
				}
				return exit, nil
			case err := <-wait.Error:
				return core.Exit{}, err
			case <-ctx.Done():
				return core.Exit{}, ctx.Err()
			}
		},
		OOM: func(ctx context.Context) (bool, error) {
			inspected, err := run.r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err != nil {
				return false, err
			}
			if st := inspected.Container.State; st != nil && st.OOMKilled {
				return true, nil
			}
			return oom.killed(ctx), nil
		},
	}
	if run.statsWanted() {
		a.Stats = func(ctx context.Context, res *runner.Result) error { return run.followStats(ctx, id, res) }
	}
	return a
}

// Start starts the created container.
func (run *run) Start(ctx context.Context) error {
	_, err := run.r.cli.ContainerStart(ctx, run.c.ContainerID, client.ContainerStartOptions{})
	return err
}

// Stop stops the container with the configured signal and grace period.
func (run *run) Stop(ctx context.Context, grace time.Duration) error {
	var err error
	if grace == 0 {
		_, err = run.r.cli.ContainerKill(ctx, run.c.ContainerID, client.ContainerKillOptions{Signal: "SIGKILL"})
	} else {
		secs := int(math.Ceil(grace.Seconds()))
		_, err = run.r.cli.ContainerStop(ctx, run.c.ContainerID, client.ContainerStopOptions{Signal: run.r.cfg.StopSignal, Timeout: &secs})
	}
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return err
	}
	return nil
}

// Remove deletes the container and its anonymous volumes. A container that
// is already gone, or being removed, counts as removed.
func (run *run) Remove(ctx context.Context) error {
	_, err := run.r.cli.ContainerRemove(ctx, run.c.ContainerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		return nil
	}
	return err
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
