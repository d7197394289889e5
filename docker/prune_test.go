package docker_test

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// plant creates a container with the given labels, started when running is
// true, removed at the end of the test if Prune left it.
func plant(t *testing.T, cli *client.Client, labels map[string]string, running bool) string {
	t.Helper()
	created, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Config: &container.Config{Image: testenv.Image, Entrypoint: []string{""}, Cmd: []string{"sleep", "60"}, Labels: labels},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	if running {
		_, err = cli.ContainerStart(t.Context(), created.ID, client.ContainerStartOptions{})
		require.NoError(t, err)
	}
	return created.ID
}

func TestPrune(t *testing.T) {
	scope := map[string]string{"lading.test": "prune-" + strconv.Itoa(os.Getpid())}
	r, cli := newRunner(t, docker.Config{Container: docker.Container{Labels: scope}})
	host, _ := os.Hostname()
	old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	young := time.Now().UTC().Format(time.RFC3339)
	labels := func(created string, owner map[string]string) map[string]string {
		l := map[string]string{docker.LabelManaged: "true", docker.LabelCreated: created}
		maps.Copy(l, scope)
		maps.Copy(l, owner)
		return l
	}
	crashed := map[string]string{docker.LabelOwnerHost: host, docker.LabelOwnerPID: strconv.Itoa(deadPID(t))}
	elsewhere := map[string]string{docker.LabelOwnerHost: "another-host", docker.LabelOwnerPID: "1"}

	exitedOld := plant(t, cli, labels(old, crashed), false)
	runningCrashed := plant(t, cli, labels(old, crashed), true)
	runningElsewhere := plant(t, cli, labels(old, elsewhere), true)
	exitedYoung := plant(t, cli, labels(young, crashed), false)
	notOurs := plant(t, cli, map[string]string{docker.LabelCreated: old, "lading.test": scope["lading.test"]}, false)

	// A live run of this very process, still running.
	liveRunner, _ := newRunner(t, docker.Config{Container: docker.Container{Labels: scope}, Lifecycle: docker.Lifecycle{Wait: docker.Bool(false)}})
	res, err := liveRunner.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"sleep 60"}})
	require.NoError(t, err)
	live := details(t, res).ContainerID
	removeAfter(t, cli, live)

	dry, err := r.Prune(t.Context(), docker.PruneOptions{OlderThan: time.Hour, Labels: scope, DryRun: true})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{exitedOld, runningCrashed}, dry.Containers)
	for _, id := range dry.Containers {
		_, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
		require.NoError(t, err, "a dry run removes nothing")
	}

	swept, err := r.Prune(t.Context(), docker.PruneOptions{OlderThan: time.Hour, Labels: scope})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{exitedOld, runningCrashed}, swept.Containers, "exited, and running with a dead creator")
	requireRemoved(t, cli, exitedOld)
	requireRemoved(t, cli, runningCrashed)

	// With no age limit the young exited one goes too; the live run, the
	// other host's running container and the unlabelled one stay.
	swept, err = r.Prune(t.Context(), docker.PruneOptions{Labels: scope})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{exitedYoung}, swept.Containers)
	for _, kept := range []string{runningElsewhere, notOurs, live} {
		_, err := cli.ContainerInspect(t.Context(), kept, client.ContainerInspectOptions{})
		require.NoError(t, err, "kept: %s", kept)
	}
}

// TestPruneSparesLiveRuns calls Prune, from another Runner, while a run's
// container is only created (its input files being copied in) and while it
// has exited (its output files being collected): the run's container and
// volume are kept and the run succeeds.
func TestPruneSparesLiveRuns(t *testing.T) {
	for _, stage := range []runner.Stage{runner.StageStaging, runner.StageCollecting} {
		t.Run(string(stage), func(t *testing.T) {
			scope := map[string]string{"lading.test": "prune-live-" + strconv.Itoa(os.Getpid())}
			r, _ := newRunner(t, docker.Config{Container: docker.Container{Labels: scope}})
			sweeper, _ := newRunner(t, docker.Config{})
			var swept docker.PruneResult
			var pruneErr error
			dir := t.TempDir()
			res, err := r.Run(t.Context(), runner.Task{
				Image: testenv.Image, WorkingDir: dir,
				InputFiles:  map[string]runner.Source{"in.txt": files.String("in")},
				OutputFiles: []string{"out.txt"},
				Commands:    []string{"cat in.txt > out.txt", `echo x > "$OUTPUT_DIR/o.txt"`},
				OnEvent: func(e runner.Event) {
					if e.Stage == stage {
						swept, pruneErr = sweeper.Prune(t.Context(), docker.PruneOptions{Labels: scope})
					}
				},
			})
			require.NoError(t, err)
			require.NoError(t, pruneErr)
			assert.Empty(t, swept.Containers, "a live run's container is not pruned")
			assert.Empty(t, swept.Volumes, "a live run's volume is not pruned")
			assert.Equal(t, map[string]string{
				"out.txt": filepath.Join(dir, "out.txt"),
				"o.txt":   filepath.Join(dir, "outputs-"+details(t, res).RunID, "o.txt"),
			}, res.OutputFiles, "the run brought its files back")
		})
	}
}
