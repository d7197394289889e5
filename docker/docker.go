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
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
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
)

// cleanupTimeout bounds every cleanup call, which runs on a fresh context so
// that a cancelled caller still leaves a clean engine.
const cleanupTimeout = 30 * time.Second

// drainTimeout bounds how long Run waits for the log stream to end after the
// container has exited; the engine closes it at once in practice.
const drainTimeout = 30 * time.Second

// Runner runs tasks in containers on a Docker Engine (or any engine that
// serves the Docker API, such as Podman). It is safe for concurrent use; call
// Close when done with it.
type Runner struct {
	cfg      Config
	cli      *client.Client
	log      *slog.Logger
	slots    chan struct{}     // nil: no limit
	owner    map[string]string // labels naming this process, for Prune
	platform *ocispec.Platform // nil: the engine's own
	resolver credentials.Resolver
	ncpuOnce sync.Once
	ncpu     int // the engine's CPU count, 0 until known
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

// New returns a Runner for cfg. It validates cfg but does not contact the
// engine: the API version is negotiated on the first call, so New never
// blocks.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w: %w", runner.ErrInvalidConfig, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{cfg: cfg, cli: cli, log: log, owner: ownerLabels()}
	r.platform, _ = parsePlatform(cfg.Platform) // validated above
	r.resolver.Explicit = cfg.Credentials
	if cfg.DockerConfig != "" {
		r.resolver.Config, _ = credentials.LoadConfig(string(cfg.DockerConfig)) // validated above
	}
	for _, w := range cfg.Memory.Warnings() {
		log.Warn(w)
	}
	if cfg.MaxConcurrency > 0 {
		r.slots = make(chan struct{}, cfg.MaxConcurrency)
	}
	return r, nil
}

// Close releases the connection to the engine. Runs in progress fail.
func (r *Runner) Close() error { return r.cli.Close() }

// Run pulls the task's image as the pull policy says, runs the script in a
// new container and returns when the container has exited, its output has
// been read to the end, and (with [Config.Delete]) it has been removed.
//
// See [runner.Runner] for the meaning of the result and the errors. When ctx
// is cancelled or [runner.Task.Timeout] is reached, the container is stopped
// as [Config.KillGracePeriod] says, its output up to then is kept in the
// returned Result, and the error wraps [context.Canceled] or
// [runner.ErrTimeout] with [context.DeadlineExceeded].
func (r *Runner) Run(ctx context.Context, task runner.Task) (res *runner.Result, err error) {
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
	if r.slots != nil {
		select {
		case r.slots <- struct{}{}:
			defer func() { <-r.slots }()
		case <-ctx.Done():
			return nil, fmt.Errorf("docker: waiting for a free slot (maxConcurrency %d): %w", r.cfg.MaxConcurrency, context.Cause(ctx))
		}
	}
	if task.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, task.Timeout,
			&runner.TimeoutError{Timeout: task.Timeout.String(), Cause: context.DeadlineExceeded})
		defer cancel()
	}

	run := &run{r: r, task: task, id: newRunID(), mask: masker}
	run.log = r.log.With("run", run.id, "image", task.Image)
	if task.ID != "" {
		run.log = run.log.With("task", task.ID)
	}
	var resumed bool
	if r.cfg.Resume && task.ID != "" {
		found, err := r.resumable(ctx, task.ID)
		if err != nil {
			return nil, stopped(ctx, err)
		}
		if found != nil {
			run.id, run.containerID, resumed = found.Labels[LabelRun], found.ID, true
		}
	}
	ws, err := run.prepare(ctx)
	if err != nil {
		return nil, stopped(ctx, err)
	}
	defer func() {
		if res == nil {
			ws.discard()
		}
	}()

	cleanup := r.cfg.deletes() && (r.cfg.waits() || resumed)
	if !resumed {
		if err := r.ensureImage(ctx, run); err != nil {
			return nil, stopped(ctx, err)
		}
		if err := run.stage(ctx, ws); err != nil {
			return nil, stopped(ctx, err)
		}
		if err := run.create(ctx, ws); err != nil {
			return nil, stopped(ctx, err)
		}
	}
	if cleanup {
		defer func() { err = errors.Join(err, run.remove()) }()
	}
	if resumed {
		res, err = run.reattach(ctx)
	} else {
		if err := run.copyIn(ctx, ws); err != nil {
			if !cleanup { // nothing else removes what never started
				err = errors.Join(err, run.remove())
			}
			return nil, stopped(ctx, err)
		}
		res, err = run.start(ctx)
	}
	if res != nil {
		res.WorkingDir = ws.hostDir
		res.Warnings = append(res.Warnings, r.cfg.Memory.Warnings()...)
	}
	if res != nil && r.cfg.waits() {
		err = errors.Join(err, run.collect(ctx, ws, res))
	}
	return res, stopped(ctx, err)
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

// stopped returns the error to report for err: when ctx is done, its cause
// (a *runner.TimeoutError, or context.Canceled) is in the chain, whichever
// call noticed, so callers can match it.
func stopped(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if cause := context.Cause(ctx); !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", cause, err)
	}
	return err
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
}

func (run *run) name() string { return "lading-" + run.id }

// event reports a stage to the task's OnEvent and the debug log.
func (run *run) event(stage runner.Stage, detail string) {
	detail = run.mask.String(detail)
	run.log.Debug(string(stage), "detail", detail)
	if run.task.OnEvent != nil {
		run.task.OnEvent(runner.Event{Stage: stage, Time: time.Now(), Detail: detail})
	}
}

func (run *run) create(ctx context.Context, ws *workspace) error {
	cfg := &run.r.cfg
	entry := cfg.EntryPoint
	switch {
	case entry == nil:
		entry = []string{""} // Kestra's default: clear the image's entrypoint
	case len(entry) == 0:
		entry = nil // keep the image's entrypoint
	}
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
	maps.Copy(labels, run.r.owner)
	ports, _ := portBindings(cfg.PortBindings) // validated in New
	shm, _ := shmSize(cfg.ShmSize)
	mounts, err := run.mounts(ws, labels)
	if err != nil {
		return err
	}
	if err := run.r.checkCPUs(ctx); err != nil {
		return err
	}
	hostCfg := &container.HostConfig{
		Init:         initFlag(cfg.Init),
		Mounts:       mounts,
		NetworkMode:  container.NetworkMode(cfg.NetworkMode),
		ExtraHosts:   cfg.ExtraHosts,
		Privileged:   cfg.Privileged,
		ShmSize:      shm,
		PortBindings: network.PortMap{},
		Resources:    run.r.resources(),
	}
	exposed := network.PortSet{}
	for port, bindings := range ports {
		p, err := network.ParsePort(string(port))
		if err != nil {
			return &runner.FieldError{Field: "portBindings", Value: string(port), Problem: err.Error(), Err: runner.ErrInvalidConfig}
		}
		exposed[p] = struct{}{}
		for _, b := range bindings {
			pb := network.PortBinding{HostPort: b.HostPort}
			if b.HostIP != "" {
				if pb.HostIP, err = netip.ParseAddr(b.HostIP); err != nil {
					return &runner.FieldError{Field: "portBindings", Value: b.HostIP, Problem: "is not an IP address", Err: runner.ErrInvalidConfig}
				}
			}
			hostCfg.PortBindings[p] = append(hostCfg.PortBindings[p], pb)
		}
	}
	run.event(runner.StageCreating, run.name())
	// The create is not cancelled half-way: a cancelled request can leave a
	// container the engine finishes creating after lading looked for it.
	// Cancellation is honoured once the engine has answered.
	createCtx, cancelCreate := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancelCreate()
	created, err := run.r.cli.ContainerCreate(createCtx, client.ContainerCreateOptions{
		Name: run.name(),
		Config: &container.Config{
			Image:        run.task.Image,
			Entrypoint:   entry,
			Cmd:          append(interpreter(run.task), strings.Join(ws.commands, "\n")),
			Env:          ws.env,
			WorkingDir:   ContainerWorkingDir,
			User:         cfg.User,
			Labels:       labels,
			ExposedPorts: exposed,
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
		return errors.Join(engineError(run.r, "create container", err), run.remove())
	}
	run.containerID = created.ID
	if ctx.Err() != nil {
		return errors.Join(context.Cause(ctx), run.remove())
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

	if !run.r.cfg.waits() {
		res.Started = time.Now()
		if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return nil, engineError(run.r, "start container", err)
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
		// Output may arrive, and the caller may cancel, before the start
		// call returns: the start itself is not cancelled, the stop in
		// follow handles it.
		if _, err := cli.ContainerStart(following, id, client.ContainerStartOptions{}); err != nil {
			return engineError(run.r, "start container", err)
		}
		return nil
	})
}

// follow reads the container's multiplexed output from stream into the
// task's sinks, calls start (if any), waits for the exit (stopping the
// container when ctx ends first), drains the stream and fills res.
// following is the context that outlives ctx for the wait and the reads.
func (run *run) follow(ctx, following context.Context, res *runner.Result, stream io.Reader, closeStream func(),
	wait client.ContainerWaitResult, start func() error) (*runner.Result, error) {
	cli := run.r.cli
	id := run.containerID
	sink := logs.New(run.task.Stdout, run.task.Stderr, run.task.OnLine, run.mask)
	drained := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(sink.Writer(runner.Stdout), sink.Writer(runner.Stderr), stream)
		drained <- err
	}()
	if start != nil {
		if err := start(); err != nil {
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
		return nil, engineError(run.r, "wait for container", err)
	case <-ctx.Done():
		stopped = true
		run.event(runner.StageStopping, context.Cause(ctx).Error())
		stopErr = run.stop()
		select {
		case status = <-wait.Result:
		case err := <-wait.Error:
			return nil, errors.Join(context.Cause(ctx), stopErr, engineError(run.r, "wait for stopped container", err))
		}
	}
	res.Finished = time.Now()
	res.ExitCode = int(status.StatusCode)
	stopStats()
	<-statsDone // res is complete: no more writes from the stats goroutine

	select {
	case err := <-drained:
		if err != nil && ctx.Err() == nil {
			res.Warnings = append(res.Warnings, "reading the container's output: "+err.Error())
		}
	case <-time.After(drainTimeout):
		closeStream()
		<-drained
		res.Warnings = append(res.Warnings, fmt.Sprintf("the container's output stream did not end within %s of its exit; later output may be missing", drainTimeout))
	}
	writeErr := sink.Close()
	sink.Fill(res)

	if res.ExitCode != 0 {
		inspected, err := cli.ContainerInspect(following, id, client.ContainerInspectOptions{})
		if err == nil && inspected.Container.State != nil {
			res.OOMKilled = inspected.Container.State.OOMKilled
		}
	}
	switch {
	case status.Error != nil && status.Error.Message != "":
		return res, errors.Join(fmt.Errorf("docker: wait for container %s: %s", id, status.Error.Message), stopErr, writeErr)
	case stopped:
		return res, errors.Join(fmt.Errorf("docker: container stopped, exit code %d: %w", res.ExitCode, context.Cause(ctx)), stopErr, writeErr)
	case res.ExitCode != 0:
		return res, errors.Join(&runner.ExitError{ExitCode: res.ExitCode, OOMKilled: res.OOMKilled}, writeErr)
	}
	return res, writeErr
}

// stop stops the container with the configured signal and grace period, on
// a fresh context.
func (run *run) stop() error {
	cfg := &run.r.cfg
	grace := time.Duration(cfg.KillGracePeriod)
	ctx, cancel := context.WithTimeout(context.Background(), grace+cleanupTimeout)
	defer cancel()
	var err error
	if grace <= 0 {
		_, err = run.r.cli.ContainerKill(ctx, run.containerID, client.ContainerKillOptions{Signal: "SIGKILL"})
	} else {
		secs := int(math.Ceil(grace.Seconds()))
		_, err = run.r.cli.ContainerStop(ctx, run.containerID, client.ContainerStopOptions{Signal: cfg.StopSignal, Timeout: &secs})
	}
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return engineError(run.r, "stop container", err)
	}
	return nil
}

// remove deletes the container and its anonymous volumes on a fresh, bounded
// context. A container that is already gone counts as removed.
func (run *run) remove() error {
	run.event(runner.StageCleaning, run.containerID)
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, err := run.r.cli.ContainerRemove(ctx, run.containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if cerrdefs.IsConflict(err) {
		return nil // removal already in progress
	}
	return engineError(run.r, "remove container "+run.containerID, err)
}

// resources returns the container's limits from the configuration.
func (r *Runner) resources() container.Resources {
	mem := r.cfg.Memory.Limits()
	res := container.Resources{
		NanoCPUs:          r.cfg.CPU.CPUs.NanoCPUs(),
		Memory:            mem.Memory,
		MemorySwap:        mem.MemorySwap,
		MemoryReservation: mem.MemoryReservation,
		MemorySwappiness:  mem.MemorySwappiness,
		OomKillDisable:    mem.OOMKillDisable,
		DeviceRequests:    deviceRequests(r.cfg.DeviceRequests),
	}
	if r.cfg.PidsLimit > 0 {
		res.PidsLimit = &r.cfg.PidsLimit
	}
	return res
}

// checkCPUs fails when the CPU limit is above what the engine has. The
// engine's count is asked once per Runner.
func (r *Runner) checkCPUs(ctx context.Context) error {
	if r.cfg.CPU.CPUs == 0 {
		return nil
	}
	r.ncpuOnce.Do(func() {
		info, err := r.cli.Info(ctx, client.InfoOptions{})
		if err == nil {
			r.ncpu = info.Info.NCPU
		}
	})
	return r.cfg.CPU.Validate(r.ncpu)
}

func initFlag(b bool) *bool {
	if !b {
		return nil
	}
	return &b
}

func deviceRequests(in []DeviceRequest) []container.DeviceRequest {
	if len(in) == 0 {
		return nil
	}
	out := make([]container.DeviceRequest, len(in))
	for i, d := range in {
		out[i] = container.DeviceRequest{Driver: d.Driver, Count: d.Count, DeviceIDs: d.DeviceIDs, Capabilities: d.Capabilities, Options: d.Options}
	}
	return out
}

// engineError wraps an error of the engine's API with what lading was doing,
// and with [runner.ErrEngineUnreachable] and a hint when the engine could not
// be reached at all.
func engineError(r *Runner, doing string, err error) error {
	if client.IsErrConnectionFailed(err) {
		host := r.cli.DaemonHost()
		return fmt.Errorf("docker: %s: %w at %s: start the engine, or point Config.Host or DOCKER_HOST at its socket (for example unix:///var/run/docker.sock, or unix://$XDG_RUNTIME_DIR/podman/podman.sock for Podman): %w",
			doing, runner.ErrEngineUnreachable, host, err)
	}
	return fmt.Errorf("docker: %s: %w", doing, err)
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
