package docker

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/core"
)

// resumable finds the newest container of an earlier run of the task whose
// creating process is gone, or returns nil.
func (r *Runner) resumable(ctx context.Context, taskID string) (*container.Summary, error) {
	list, err := r.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelManaged+"=true", LabelTask+"="+taskID)})
	if err != nil {
		return nil, engineError(r, "look for a container to resume", err)
	}
	var found *container.Summary
	for i, c := range list.Items {
		if c.Labels[LabelTask] != taskID || ownerMayBeAliveHere(c.Labels) {
			continue
		}
		if found == nil || c.Created > found.Created {
			found = &list.Items[i]
		}
	}
	return found, nil
}

// ownerMayBeAliveHere reports whether the creating process is on this host
// and may still be running: such a container belongs to a live run. A
// container of another host's process is taken over, as a restarted worker
// elsewhere would.
func ownerMayBeAliveHere(labels map[string]string) bool {
	return onThisHost(labels) && ownerMayBeAlive(labels)
}

// Find looks for a container of an earlier run of the task to resume, and
// takes over its run id.
func (run *run) Find(ctx context.Context) (bool, error) {
	found, err := run.r.resumable(ctx, run.task.ID)
	if err != nil || found == nil {
		return false, err
	}
	run.c.ID, run.c.ContainerID = found.Labels[LabelRun], found.ID
	return true, nil
}

// Reattach follows a container created by an earlier process: it reads the
// container's log from the start and waits for (or collects) its exit. A
// container that never started gives no attachment.
func (run *run) Reattach(ctx context.Context) (*core.Attachment, time.Time, error) {
	cli := run.r.cli
	id := run.c.ContainerID
	var started time.Time
	inspected, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, started, engineError(run.r, "inspect container to resume", err)
	}
	if c := inspected.Container.Config; c != nil && c.WorkingDir != "" {
		// The earlier run's working directory is where its files are: a
		// new run's temporary directory has another path.
		run.c.WS.ContainerDir = c.WorkingDir
	}
	if st := inspected.Container.State; st != nil {
		started, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
		if st.Status == container.StateCreated {
			return nil, started, nil // the earlier process died between create and start
		}
	}
	following, stopFollowing := context.WithCancel(context.WithoutCancel(ctx))
	wait := cli.ContainerWait(following, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	logs, err := cli.ContainerLogs(following, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		stopFollowing()
		return nil, started, engineError(run.r, "read the log of the container to resume", err)
	}
	oom := run.watchOOM(ctx, id, started)
	return run.attachment(logs, func() { _ = logs.Close(); stopFollowing(); oom.close() }, wait, oom), started, nil
}
