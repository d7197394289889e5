package docker

import (
	"context"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/runner"
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

// reattach follows a container created by an earlier process: it reads the
// container's log from the start and waits for (or collects) its exit.
func (run *run) reattach(ctx context.Context) (*runner.Result, error) {
	cli := run.r.cli
	id := run.containerID
	res := &runner.Result{Details: &Details{ContainerID: id, RunID: run.id}}
	inspected, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, engineError(run.r, "inspect container to resume", err)
	}
	if st := inspected.Container.State; st != nil {
		res.Started, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
		if st.Status == container.StateCreated {
			// The earlier process died between create and start.
			run.log.Debug("resuming a container that never started", "container", id)
			return run.start(ctx)
		}
	}

	following, stopFollowing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFollowing()
	wait := cli.ContainerWait(following, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	logs, err := cli.ContainerLogs(following, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return nil, engineError(run.r, "read the log of the container to resume", err)
	}
	defer logs.Close()
	run.event(runner.StageRunning, "resumed "+id)
	return run.follow(ctx, following, res, logs, func() { _ = logs.Close() }, wait, nil)
}
