package docker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// newRunner returns a Runner on the test engine with cfg, closed at the end
// of the test.
func newRunner(t *testing.T, cfg docker.Config, opts ...docker.Option) (*docker.Runner, *client.Client) {
	t.Helper()
	cli := testenv.Engine(t)
	r, err := docker.New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, cli
}

// details returns the docker part of a result.
func details(t *testing.T, res *runner.Result) *docker.Details {
	t.Helper()
	require.NotNil(t, res)
	d, ok := res.Details.(*docker.Details)
	require.True(t, ok, "Details is %T", res.Details)
	require.NotEmpty(t, d.ContainerID)
	return d
}

// requireRemoved fails unless the container is gone from the engine.
func requireRemoved(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	_, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	require.Truef(t, cerrdefs.IsNotFound(err), "container %s still exists (inspect error: %v)", id, err)
}

// removeAfter force-removes a container the test keeps on purpose, and its
// volumes.
func removeAfter(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
}

func TestIssueExample(t *testing.T) {
	r, cli := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
	var stdout, stderr strings.Builder
	res, err := r.Run(t.Context(), runner.Task{
		Image:    testenv.Image,
		Commands: []string{"echo Hello World", `echo '::{"outputs":{"greeting":"hi"}}::'`, `echo "NAME=$NAME"`},
		Env:      map[string]string{"NAME": "x"},
		Stdout:   &stdout, Stderr: &stderr,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hi", res.Outputs["greeting"])
	assert.Equal(t, "Hello World\n::{\"outputs\":{\"greeting\":\"hi\"}}::\nNAME=x\n", stdout.String())
	assert.Empty(t, stderr.String())
	assert.Equal(t, 3, res.StdoutLines)
	requireRemoved(t, cli, details(t, res).ContainerID)
}

func TestContainerIsLabelledAndRemovedOnEveryPath(t *testing.T) {
	r, cli := newRunner(t, docker.Config{})
	tests := []struct {
		name     string
		commands []string
		timeout  time.Duration
		check    func(t *testing.T, err error)
	}{
		{"success", []string{"echo ok"}, 0, func(t *testing.T, err error) { require.NoError(t, err) }},
		{"failure", []string{"exit 3"}, 0, func(t *testing.T, err error) {
			var exit *runner.ExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, 3, exit.ExitCode)
		}},
		{"timeout", []string{"sleep 30"}, time.Second, func(t *testing.T, err error) {
			require.ErrorIs(t, err, runner.ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var labels map[string]string
			res, err := r.Run(t.Context(), runner.Task{
				ID:       "task-" + tt.name,
				Image:    testenv.Image,
				Commands: append([]string{"echo started"}, tt.commands...),
				Timeout:  tt.timeout,
				OnLine: func(runner.Line) {
					if labels != nil {
						return
					}
					list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
						Filters: client.Filters{}.Add("label", docker.LabelTask+"=task-"+tt.name),
					})
					if err == nil && len(list.Items) == 1 {
						labels = list.Items[0].Labels
					}
				},
			})
			tt.check(t, err)
			d := details(t, res)
			require.NotNil(t, labels, "the running container was found by its task label")
			assert.Equal(t, "true", labels[docker.LabelManaged])
			assert.Equal(t, d.RunID, labels[docker.LabelRun])
			created, perr := time.Parse(time.RFC3339, labels[docker.LabelCreated])
			require.NoError(t, perr)
			assert.WithinDuration(t, time.Now(), created, time.Minute)
			requireRemoved(t, cli, d.ContainerID)
		})
	}
}

func TestDeleteFalseKeepsContainer(t *testing.T) {
	r, cli := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{Delete: docker.Bool(false)}})
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"exit 4"}})
	require.Error(t, err)
	id := details(t, res).ContainerID
	removeAfter(t, cli, id)
	inspected, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.Equal(t, 4, inspected.Container.State.ExitCode)
}

func TestWaitFalseReturnsAtOnce(t *testing.T) {
	r, cli := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{Wait: docker.Bool(false)}})
	start := time.Now()
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"echo hidden", "sleep 30"}})
	require.NoError(t, err)
	id := details(t, res).ContainerID
	removeAfter(t, cli, id)
	assert.Less(t, time.Since(start), 25*time.Second, "Run did not wait for the script")
	inspected, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.True(t, inspected.Container.State.Running, "the container is still running")
	assert.Zero(t, res.StdoutLines, "no logs are read with wait: false")
	assert.DirExists(t, res.WorkingDir, "the temporary working directory is handed over")
	t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
}

func TestEntryPoint(t *testing.T) {
	cli := testenv.Engine(t)
	const image = "lading-test/entrypoint:latest"
	require.NoError(t, testenv.ImportImage(t.Context(), cli, image, `ENTRYPOINT ["/bin/echo", "from-entrypoint"]`))
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), image, client.ImageRemoveOptions{Force: true}) })

	tests := []struct {
		name  string
		entry []string
		want  string
	}{
		{"cleared by default", nil, "script-ran"},
		// The script is Kestra's: set -e first (Task.FailFast).
		{"image's own kept with empty slice", []string{}, "from-entrypoint /bin/sh -c set -e\necho script-ran"},
		{"replaced", []string{"/bin/echo", "replaced"}, "replaced /bin/sh -c set -e\necho script-ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newRunner(t, docker.Config{Container: docker.Container{EntryPoint: tt.entry}})
			var out strings.Builder
			_, err := r.Run(t.Context(), runner.Task{Image: image, Commands: []string{"echo script-ran"}, Stdout: &out})
			require.NoError(t, err)
			assert.Equal(t, tt.want+"\n", out.String())
		})
	}
}

func TestConfigReachesTheContainer(t *testing.T) {
	r, _ := newRunner(t, docker.Config{
		Container: docker.Container{User: "1000:1000", NetworkMode: "none", ExtraHosts: []string{"lading-db:10.1.2.3"}, ShmSize: "32m"},
	})
	var out strings.Builder
	_, err := r.Run(t.Context(), runner.Task{
		Image: testenv.Image,
		Commands: []string{
			"id -u", "id -g",
			"grep lading-db /etc/hosts | cut -f1",
			"ls /sys/class/net | tr '\\n' ' '; echo",
			"df -k /dev/shm | tail -1 | awk '{print $2}'",
		},
		Stdout: &out,
	})
	require.NoError(t, err)
	assert.Equal(t, "1000\n1000\n10.1.2.3\nlo \n32768\n", out.String())
}

func TestPortBindings(t *testing.T) {
	r, cli := newRunner(t, docker.Config{Container: docker.Container{PortBindings: []string{"127.0.0.1:18080:8080/tcp", "18081:81/udp"}}, Lifecycle: docker.Lifecycle{Delete: docker.Bool(false)}}, docker.WithAllow(docker.Allow{PortBindings: true}))
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"echo up"}})
	require.NoError(t, err)
	id := details(t, res).ContainerID
	removeAfter(t, cli, id)
	inspected, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	var got []string
	for port, bindings := range inspected.Container.HostConfig.PortBindings {
		for _, b := range bindings {
			ip := ""
			if b.HostIP.IsValid() {
				ip = b.HostIP.String()
			}
			got = append(got, fmt.Sprintf("%s:%s:%s", ip, b.HostPort, port))
		}
	}
	assert.ElementsMatch(t, []string{"127.0.0.1:18080:8080/tcp", ":18081:81/udp"}, got)
}

func TestPullPolicies(t *testing.T) {
	t.Run("NEVER with a missing image names it", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}})
		_, err := r.Run(t.Context(), runner.Task{Image: "lading-test/absent:nope", Commands: []string{"true"}})
		require.ErrorIs(t, err, runner.ErrImageNotFound)
		assert.Contains(t, err.Error(), "lading-test/absent:nope")
		assert.Contains(t, err.Error(), "NEVER")
	})
	t.Run("NEVER with a present image runs", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}})
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
		require.NoError(t, err)
	})
	t.Run("IF_NOT_PRESENT with a present image does not pull", func(t *testing.T) {
		// The test image exists only locally: a pull would fail.
		r, _ := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
		require.NoError(t, err)
	})
	t.Run("ALWAYS pulls even when present", func(t *testing.T) {
		// Here the pull goes to a registry on 127.0.0.1 that does not
		// answer, which proves a pull was attempted for a present image.
		cli := testenv.Engine(t)
		const image = "127.0.0.1:1/lading-test/always:latest"
		_, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: testenv.Image, Target: image})
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), image, client.ImageRemoveOptions{}) })

		r, _ := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullAlways}})
		_, err = r.Run(t.Context(), runner.Task{Image: image, Commands: []string{"true"}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "pull "+image)
	})
}

func TestInvalidImageReference(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	_, err := r.Run(t.Context(), runner.Task{Image: "Upper/Case:tag", Commands: []string{"true"}})
	require.ErrorIs(t, err, runner.ErrInvalidTask)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "image", fe.Field)
	assert.Equal(t, "Upper/Case:tag", fe.Value)
}

func TestEngineUnreachable(t *testing.T) {
	// No engine needed: the point is that there is none at this address.
	r, err := docker.New(docker.Config{Host: "unix:///nonexistent/lading.sock"})
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Run(t.Context(), runner.Task{Image: "busybox:1.36", Commands: []string{"true"}})
	require.ErrorIs(t, err, runner.ErrEngineUnreachable)
	assert.Contains(t, err.Error(), "/nonexistent/lading.sock")
	assert.Contains(t, err.Error(), "DOCKER_HOST")
}

func TestPartialMessagesRejoined(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	// 3 lines of 40,000 characters: each crosses Docker's 16 KiB boundary.
	var mu sync.Mutex
	var lines []string
	_, err := r.Run(t.Context(), runner.Task{
		Image:    testenv.Image,
		Commands: []string{"for c in a b c; do head -c 40000 /dev/zero | tr '\\0' $c; echo; done"},
		OnLine: func(l runner.Line) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, l.Text)
		},
	})
	require.NoError(t, err)
	require.Len(t, lines, 3)
	for i, c := range []string{"a", "b", "c"} {
		assert.Equal(t, strings.Repeat(c, 40000), lines[i])
	}
}

func TestCancelBeforeStartLeavesNothing(t *testing.T) {
	r, cli := newRunner(t, docker.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.Run(ctx, runner.Task{ID: "cancelled-early", Image: testenv.Image, Commands: []string{"true"}})
	require.ErrorIs(t, err, context.Canceled)
	list, lerr := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", docker.LabelTask+"=cancelled-early")})
	require.NoError(t, lerr)
	assert.Empty(t, list.Items)
	assert.False(t, errors.Is(err, runner.ErrTimeout))
}
