package docker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// requireVolumeRemoved fails unless the run's output volume is gone.
func requireVolumeRemoved(t *testing.T, cli *client.Client, res *runner.Result) {
	t.Helper()
	vols, err := cli.VolumeList(context.Background(), client.VolumeListOptions{
		Filters: make(client.Filters).Add("label", docker.LabelRun+"="+details(t, res).RunID)})
	require.NoError(t, err)
	require.Empty(t, vols.Items, "the run's volumes are still there")
}

func TestNonRootUserWritesItsDirectories(t *testing.T) {
	cli := testenv.Engine(t)
	// An image whose own USER is not root, run with no user configured.
	const nobodyImage = "lading-test/busybox-nobody:latest"
	require.NoError(t, testenv.ImportImage(t.Context(), cli, nobodyImage, "USER nobody"))
	t.Cleanup(func() { testenv.RemoveImage(t, cli, nobodyImage) })
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		for _, user := range []string{"1000:1000", "nobody", "lading", "image's USER"} {
			for _, inputs := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/inputs=%v", strategy, user, inputs), func(t *testing.T) {
					cfg, image := docker.Config{FileHandlingStrategy: strategy, Container: docker.Container{User: user}}, testenv.Image
					if user == "image's USER" {
						cfg.User, image = "", nobodyImage
					}
					r, cli := newRunner(t, cfg)
					task := runner.Task{
						Image:       image,
						OutputFiles: []string{"*.txt"},
						Commands:    []string{"test $(id -u) != 0", "echo made > result.txt", "echo out > $OUTPUT_DIR/out.txt"},
					}
					want := map[string]string{"result.txt": "made\n", "out.txt": "out\n"}
					if inputs {
						task.InputFiles = map[string]runner.Source{"in/data.txt": files.String("input")}
						task.Commands = append(task.Commands, "echo changed >> in/data.txt", "cat in/data.txt > result.txt")
						want["result.txt"] = "inputchanged\n"
					}
					res, err := r.Run(t.Context(), task)
					require.NoError(t, err)
					t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
					got := map[string]string{}
					for rel, p := range res.OutputFiles {
						data, err := os.ReadFile(p)
						require.NoError(t, err)
						got[rel] = string(data)
					}
					assert.Equal(t, want, got)
					if strategy == docker.FileHandlingVolume {
						requireVolumeRemoved(t, cli, res)
					}
				})
			}
		}
	}
}

func TestVolumes(t *testing.T) {
	t.Run("refused unless the host program enables them", func(t *testing.T) {
		_, err := docker.New(docker.Config{Container: docker.Container{Volumes: []string{"/etc:/host-etc:ro"}}})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "volumes", fe.Field)
		assert.Contains(t, err.Error(), "Allow.Volumes (docker.WithAllow)")

		_, err = docker.ParseConfig([]byte(`{"volumes":["/etc:/host-etc"]}`))
		require.ErrorIs(t, err, runner.ErrInvalidConfig, "JSON alone cannot enable volumes")
	})
	t.Run("bad specs", func(t *testing.T) {
		for _, v := range []string{"/a", "rel:/b", "/a:rel", "/a:/b:rx"} {
			_, err := docker.New(docker.Config{Container: docker.Container{Volumes: []string{v}}}, docker.WithAllow(docker.Allow{Volumes: true}))
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe, v)
			assert.Equal(t, v, fe.Value)
		}
	})
	t.Run("mounted when enabled", func(t *testing.T) {
		host := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(host, "shared.txt"), []byte("from host"), 0o644))
		r, _ := newRunner(t, docker.Config{Container: docker.Container{Volumes: []string{host + ":/shared:ro"}}}, docker.WithAllow(docker.Allow{Volumes: true}))
		var out strings.Builder
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Stdout: &out,
			Commands: []string{"cat /shared/shared.txt; echo", "touch /shared/x 2>/dev/null || echo read-only"}})
		require.NoError(t, err)
		assert.Equal(t, "from host\nread-only\n", out.String())
	})
	t.Run("not over the working directory, which is at the host's path", func(t *testing.T) {
		host, work := t.TempDir(), t.TempDir()
		for _, target := range []string{work, work + "/sub"} {
			r, _ := newRunner(t, docker.Config{Container: docker.Container{Volumes: []string{host + ":" + target}}}, docker.WithAllow(docker.Allow{Volumes: true}))
			_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: work, Commands: []string{"true"}})
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe, target)
			assert.Equal(t, "volumes", fe.Field)
			assert.Contains(t, err.Error(), "must not mount over the working directory "+work)
		}
	})
}

func TestOutputLimits(t *testing.T) {
	r, _ := newRunner(t, docker.Config{MaxOutputFiles: 3})
	dir := t.TempDir()
	res, err := r.Run(t.Context(), runner.Task{
		Image: testenv.Image, WorkingDir: dir, OutputFiles: []string{"*.dat"},
		Commands: []string{"for i in 1 2 3 4 5 6; do echo $i > f$i.dat; done"},
	})
	require.ErrorIs(t, err, files.ErrLimit)
	assert.Contains(t, err.Error(), "3 files")
	require.NotNil(t, res)
	matches, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
	assert.Empty(t, matches, "partial output removed")
}

func TestTempWorkingDirRemovedWhenNothingRan(t *testing.T) {
	// A private TMPDIR: other test processes (go test runs packages side
	// by side) make lading-* directories of their own in the shared one.
	t.Setenv("TMPDIR", t.TempDir())
	r, _ := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}})
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "lading-*"))
	_, err := r.Run(t.Context(), runner.Task{Image: "lading-test/absent:x", Commands: []string{"true"},
		InputFiles: map[string]runner.Source{"a.txt": files.String("a")}})
	require.ErrorIs(t, err, runner.ErrImageNotFound)
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "lading-*"))
	assert.ElementsMatch(t, before, after, "the temporary working directory was removed")
}

// TestMountUnseenByEngine runs a test process in a private mount namespace
// with a tmpfs working directory: the engine cannot see it, and MOUNT must
// say so.
func TestMountUnseenByEngine(t *testing.T) {
	if dir := os.Getenv("LADING_PRIVATE_DIR"); dir != "" {
		r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount})
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Commands: []string{"true"}})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
		require.ErrorContains(t, err, "does not see the host directory")
		require.ErrorContains(t, err, "VOLUME")
		return
	}
	testenv.Engine(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1) to make a private mount namespace")
	}
	dir := t.TempDir()
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs lading "$LADING_PRIVATE_DIR" && exec "$0" -test.run '^TestMountUnseenByEngine$' -test.count=1 -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "LADING_PRIVATE_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestMountUnseenByEngine")
	t.Logf("in a private mount namespace:\n%s", out)
}
