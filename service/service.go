package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinels for the failures callers branch on; match them with
// [errors.Is].
var (
	// ErrInvalidSpec: the spec cannot be deployed as written. The error is a
	// [*runner.FieldError] naming the field and the value.
	ErrInvalidSpec = errors.New("invalid service spec")
	// ErrSlugTaken: another service of the namespace has the slug.
	ErrSlugTaken = errors.New("slug taken")
	// ErrNotFound: no service has this slug in this namespace (never
	// deployed, or deleted).
	ErrNotFound = errors.New("service not found")
	// ErrNoPort: the service has no port, so no endpoint.
	ErrNoPort = errors.New("service has no port")
	// ErrFailed: [Wait] saw the service FAILED; the error is a
	// [*FailedError] with the reason.
	ErrFailed = errors.New("service failed")
)

// Status is a service's phase, Dataflow's four.
type Status string

// The statuses.
const (
	// Pending: being created or started, restarting, or not healthy yet
	// within its health check's start period and retries.
	Pending Status = "PENDING"
	// Deployed: running, and healthy when it has a health check.
	Deployed Status = "DEPLOYED"
	// Failed: not running (exited, killed for memory, restarts
	// exhausted), or running with its health check failing.
	Failed Status = "FAILED"
	// Deleting: being removed.
	Deleting Status = "DELETING"
)

// State is what a service's status is made of, read from the engine when
// it is asked for. Secrets are masked in every field.
type State struct {
	Status Status
	// Reason says, for PENDING and FAILED, why, in words a user can act on:
	// "exited with code 3: <last log lines>", "killed for memory (limit
	// 64MiB)", "restarts exhausted (2)", "health check failing: <the last
	// probe's result>".
	Reason string
	// StartedAt is when the container last started; zero before.
	StartedAt time.Time
	// Restarts counts the engine's restarts of the container.
	Restarts int
	// ExitCode of the last exit, when Exited.
	ExitCode int
	Exited   bool
	// OOMKilled is set when the last exit was a kill for memory.
	OOMKilled bool
	// Health is the last probe, nil without a health check or before the
	// first probe.
	Health *Probe
}

// Probe is the result of one health probe.
type Probe struct {
	Healthy bool
	// Output: the HTTP status, the connection error, the command's output.
	Output string
	Time   time.Time
}

// Info is what does not change in a service's life: read from the engine
// (labels) once, by Deploy, Get and List.
type Info struct {
	Namespace string
	Slug      string
	Name      string
	// Hostname is "<slug>-<unique id>": the service's name on its
	// namespace's network (the slug is another).
	Hostname string
	Image    string
	// Port is the service's port inside the container, zero without one.
	Port int
	// ID is the engine's id of the service (a container id on Docker).
	ID string
	// Ephemeral: see [Spec.Ephemeral].
	Ephemeral bool
}

// Stats is one sample of a service's resource use, with Zero-OS's fields,
// names and units.
type Stats struct {
	Timestamp   int64  `json:"timestamp"`    // Unix seconds
	MemoryUsage uint64 `json:"memory_usage"` // bytes
	MemoryLimit uint64 `json:"memory_limit"` // bytes
	MemoryCache uint64 `json:"memory_cache"` // bytes of page cache
	CPUUsage    uint64 `json:"cpu_usage"`    // CPU time since the start, in 10 µs units
	PidsCurrent uint64 `json:"pids_current"`
}

// LogOptions says which logs [Service.Logs] writes and where.
type LogOptions struct {
	// Follow keeps writing until ctx is done or the service stops.
	Follow bool
	// Since, when set, skips lines logged before it.
	Since time.Time
	// Tail, when positive, starts at the last Tail lines.
	Tail int
	// Stdout and Stderr receive the streams apart, line by line (each
	// Write is one line with its newline), secrets masked; nil discards.
	Stdout, Stderr io.Writer
}

// Service is a handle on a deployed service: a view of the engine's state,
// refreshed by each call, never a cache. Implementations are safe for
// concurrent use.
type Service interface {
	// Info returns the service's fixed description.
	Info() Info
	// Status reads the service's state from the engine.
	Status(ctx context.Context) (State, error)
	// Endpoint returns "host:port" where the service's port is published on
	// the host (what testcontainers calls the mapped port), or an error
	// matching [ErrNoPort].
	Endpoint(ctx context.Context) (string, error)
	// Logs writes the service's logs as opts says; with Follow it returns
	// when ctx is done (nil) or the service stops.
	Logs(ctx context.Context, opts LogOptions) error
	// Stats returns one sample.
	Stats(ctx context.Context) (Stats, error)
	// Delete removes the service: its container and anonymous volumes, and
	// its namespace's network once no service is left on it. Idempotent: a
	// service already gone is success.
	Delete(ctx context.Context) error
}

// Manager deploys services and finds them again. It keeps no state of its
// own: a new Manager on the same engine lists and gets back the services
// an earlier one (or an earlier process) deployed.
type Manager interface {
	// Deploy starts a service and returns its handle once the engine has
	// started it; its status is then PENDING until it is running and
	// healthy (see [Wait]). A slug taken in the namespace is
	// [ErrSlugTaken]; a bad spec [ErrInvalidSpec].
	Deploy(ctx context.Context, spec Spec) (Service, error)
	// Get returns the service of a slug in a namespace ("" is
	// [DefaultNamespace]), or [ErrNotFound].
	Get(ctx context.Context, namespace, slug string) (Service, error)
	// List returns the services of a namespace, or of all namespaces when
	// namespace is "", ordered by namespace and slug.
	List(ctx context.Context, namespace string) ([]Service, error)
}

// Updater is implemented by Managers that replace a service's spec while
// keeping its slug and hostname; find it by type assertion.
type Updater interface {
	// Update deploys spec (same namespace and slug as a deployed service)
	// in place of the service: the new one is started and must be
	// DEPLOYED before the old one is removed, so that the service's
	// hostname stays served (a request sent to the old one just as it
	// leaves may still fail: BENCHMARKS.md measures it). An engine may
	// stop the old one first when both cannot run at once (a fixed host
	// port or IP): it says so. When it turns FAILED (a [*FailedError]),
	// or ctx ends first, the new one is removed and the old one kept. Give
	// ctx a deadline.
	Update(ctx context.Context, spec Spec) (Service, error)
}

// VolumeInfo describes a named volume of a namespace.
type VolumeInfo struct {
	Namespace string
	Name      string
	// ID is the engine's name of the volume.
	ID string
}

// Volumes is implemented by Managers whose services mount named volumes
// ([Spec.Volumes]); find it by type assertion.
type Volumes interface {
	// ListVolumes returns the named volumes of a namespace ("" for all),
	// ordered by namespace and name.
	ListVolumes(ctx context.Context, namespace string) ([]VolumeInfo, error)
	// DeleteVolume removes a named volume; one a service still mounts is
	// refused. A volume already gone is success.
	DeleteVolume(ctx context.Context, namespace, name string) error
}

// Execer is implemented by services that run a command inside a running
// service, as testcontainers' Exec does; find it by type assertion.
type Execer interface {
	// Exec runs cmd (exec form: no shell unless it names one) in the
	// service and returns once it has exited. A command that ran and
	// exited non-zero is not an error: see ExecResult.ExitCode.
	Exec(ctx context.Context, cmd []string) (ExecResult, error)
}

// ExecResult is what an [Execer]'s command did. Its output is capped at
// [ExecOutputLimit] per stream (Truncated says so), secrets masked.
type ExecResult struct {
	ExitCode       int
	Stdout, Stderr string
	Truncated      bool
}

// ExecOutputLimit caps each stream of an [ExecResult].
const ExecOutputLimit = 4 << 20

// FailedError is [Wait]'s error for a service that turned FAILED.
type FailedError struct {
	Slug  string
	State State
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("service %s: %s: %s", e.Slug, Failed, e.State.Reason)
}

// Unwrap returns [ErrFailed].
func (e *FailedError) Unwrap() error { return ErrFailed }

// WaitPoll is how often [Wait] reads a service's status.
const WaitPoll = 100 * time.Millisecond

// Wait reads svc's status until it is DEPLOYED (it returns the state and
// nil) or FAILED (the state and a [*FailedError]), or ctx is done (the last
// state and an error saying what it was waiting for, matching ctx.Err()).
// Give ctx a deadline: a service that stays PENDING keeps Wait waiting.
func Wait(ctx context.Context, svc Service) (State, error) {
	var last State
	tick := time.NewTicker(WaitPoll)
	defer tick.Stop()
	for {
		st, err := svc.Status(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return last, waitDone(ctx, svc, last)
			}
			return st, err
		}
		last = st
		switch st.Status {
		case Deployed:
			return st, nil
		case Failed:
			return st, &FailedError{Slug: svc.Info().Slug, State: st}
		case Deleting:
			return st, fmt.Errorf("service %s: %w: it is being deleted", svc.Info().Slug, ErrNotFound)
		}
		select {
		case <-ctx.Done():
			return last, waitDone(ctx, svc, last)
		case <-tick.C:
		}
	}
}

func waitDone(ctx context.Context, svc Service, last State) error {
	return fmt.Errorf("service %s: waiting for DEPLOYED, still %s (%s): %w", svc.Info().Slug, last.Status, last.Reason, context.Cause(ctx))
}

// Sinks are where [Stream] pushes a service's output and stats.
type Sinks struct {
	// Stdout and Stderr receive the logs line by line (as
	// [LogOptions.Stdout] does), from the service's start, followed.
	Stdout, Stderr io.Writer
	// Stats receives a sample every StatsPeriod.
	Stats func(Stats)
	// StatsPeriod is the period of the samples; zero means 2 s (Zero-OS's).
	StatsPeriod time.Duration
}

// Stream pushes svc's logs and stats to sinks until ctx is done, then
// returns nil; an error of the engine ends it early. The service never
// waits for a sink: the engine keeps the logs, and lading reads them as
// fast as the writers take them, so a slow writer delays its own lines,
// never the service; a stats sample is taken only when the previous one
// has been handed over, so a slow Stats callback gets fewer samples.
func Stream(ctx context.Context, svc Service, sinks Sinks) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	n := 0
	if sinks.Stdout != nil || sinks.Stderr != nil {
		n++
		go func() {
			errs <- svc.Logs(ctx, LogOptions{Follow: true, Stdout: sinks.Stdout, Stderr: sinks.Stderr})
		}()
	}
	if sinks.Stats != nil {
		n++
		period := sinks.StatsPeriod
		if period <= 0 {
			period = 2 * time.Second
		}
		go func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				s, err := svc.Stats(ctx)
				if ctx.Err() != nil {
					errs <- nil
					return
				}
				if err != nil {
					errs <- err
					return
				}
				sinks.Stats(s)
				select {
				case <-ctx.Done():
					errs <- nil
					return
				case <-tick.C:
				}
			}
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		return first
	}
	<-ctx.Done()
	return nil
}
