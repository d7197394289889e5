package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/core"
)

// Labels that say which process created a container, so that [Runner.Prune]
// can tell a live run from one whose process died.
const (
	LabelOwnerHost = "dev.lading.owner.host"  // the creating process's host name
	LabelOwnerPID  = "dev.lading.owner.pid"   // its process id
	LabelOwnerBoot = "dev.lading.owner.start" // its start time in clock ticks since boot (Linux), to tell a reused pid
)

// PruneOptions says what [Runner.Prune] removes.
type PruneOptions struct {
	// OlderThan spares what was created less than this long ago. Zero
	// means everything that qualifies, whatever its age.
	OlderThan time.Duration
	// Labels, when set, narrows the sweep to resources carrying all of
	// these labels (see [Container.Labels]).
	Labels map[string]string
	// DryRun reports what would be removed without removing it.
	DryRun bool
}

// PruneResult lists what [Runner.Prune] removed (or, with DryRun, would
// remove).
type PruneResult struct {
	Containers []string // container ids
	Volumes    []string // volume names
}

// Prune removes what lading runs left behind on the engine, typically after
// the host program crashed: containers and volumes that carry
// [LabelManaged], were created more than OlderThan ago, and are not in use.
//
// A container or volume is in use, and kept, whatever its state (created,
// running, exited...), while its owner may still be at work on it: for a run
// of this process, while its Run call is in progress (of any Runner), or,
// with [Lifecycle.Wait] false, while this process lives; for a process on this
// host, while that process exists; for a process on another host, always
// (lading cannot tell). So a container a run of this process left behind
// (an engine that stopped answering, or went away) is removed once the run
// has returned, and one of a crashed process at once. Containers and volumes
// without lading's label are never touched. Prune is safe to call while runs
// are in progress, from any number of processes.
func (r *Runner) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	var res PruneResult
	var errs []error
	cutoff := time.Now().Add(-opts.OlderThan)

	filters := make(client.Filters).Add("label", LabelManaged+"=true")
	for k, v := range opts.Labels {
		filters.Add("label", k+"="+v)
	}
	list, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return res, engineError(r, "list containers", err)
	}
	for _, c := range list.Items {
		if !createdBefore(c.Labels, time.Unix(c.Created, 0), cutoff) {
			continue
		}
		if ownerMayBeAlive(c.Labels) {
			continue
		}
		if !opts.DryRun {
			_, err := r.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			if cerrdefs.IsConflict(err) {
				continue // its removal is already in progress
			}
			if err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, engineError(r, "remove container "+c.ID, err))
				continue
			}
		}
		res.Containers = append(res.Containers, c.ID)
	}

	vols, err := r.cli.VolumeList(ctx, client.VolumeListOptions{Filters: filters})
	if err != nil {
		return res, errors.Join(append(errs, engineError(r, "list volumes", err))...)
	}
	for _, v := range vols.Items {
		created, _ := time.Parse(time.RFC3339, v.CreatedAt)
		if !createdBefore(v.Labels, created, cutoff) || ownerMayBeAlive(v.Labels) {
			continue
		}
		if !opts.DryRun {
			// A volume a container still uses cannot be removed: the engine
			// answers with a conflict, and the volume is kept.
			_, err := r.cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{})
			if cerrdefs.IsConflict(err) {
				continue
			}
			if err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, engineError(r, "remove volume "+v.Name, err))
				continue
			}
		}
		res.Volumes = append(res.Volumes, v.Name)
	}
	return res, errors.Join(errs...)
}

// createdBefore reports whether a resource was created before cutoff,
// preferring lading's own creation label to the engine's timestamp.
func createdBefore(labels map[string]string, engineCreated, cutoff time.Time) bool {
	created := engineCreated
	if t, err := time.Parse(time.RFC3339, labels[LabelCreated]); err == nil {
		created = t
	}
	return !created.After(cutoff)
}

// liveRuns holds the ids of the runs in progress in this process, those of
// every Runner: Prune and Resume tell by it a container a live run of this
// process is working on (only created while its files are copied in, or
// exited while its files are collected) from one a finished run left
// behind. It is lading's one piece of package state: which runs are live is
// a fact about the process, not about one Runner.
var liveRuns core.RunSet

// ownerLabels returns the labels that identify this process.
func ownerLabels() map[string]string {
	host, _ := os.Hostname()
	labels := map[string]string{LabelOwnerHost: host, LabelOwnerPID: strconv.Itoa(os.Getpid())}
	if start := processStart(os.Getpid()); start != "" {
		labels[LabelOwnerBoot] = start
	}
	return labels
}

// ownerMayBeAlive reports whether the owner of a resource may still be at
// work on it: a process on another host; a process on this host with its
// pid (and start time, where known); or, for this very process, a run still
// in progress, or a run that handed its container over ([LabelDetached]).
func ownerMayBeAlive(labels map[string]string) bool {
	if !onThisHost(labels) {
		return true
	}
	pid, err := strconv.Atoi(labels[LabelOwnerPID])
	if err != nil || pid <= 0 {
		return true // no owner recorded: assume the worst
	}
	if pid == os.Getpid() {
		if labels[LabelOwnerBoot] != processStart(pid) {
			return false // an earlier process that had this pid
		}
		return labels[LabelDetached] == "true" || labels[LabelRun] == "" || liveRuns.Has(labels[LabelRun])
	}
	start := processStart(pid)
	if start == "" {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return err == nil || !errors.Is(err, os.ErrNotExist)
	}
	return start == labels[LabelOwnerBoot]
}

// onThisHost reports whether the creating process ran on this host.
func onThisHost(labels map[string]string) bool {
	host, _ := os.Hostname()
	return labels[LabelOwnerHost] == host
}

// processStart returns a process's start time in clock ticks since boot,
// from /proc/<pid>/stat (field 22), or "" where that is not available.
func processStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	const startField = 22 - 3 // fields after ")" start at field 3
	if len(fields) <= startField {
		return ""
	}
	return fields[startField]
}
