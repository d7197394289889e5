package docker_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

func TestRegistryFixture(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/busybox", "v1")
	resp, err := cli.ImagePull(t.Context(), ref, client.ImagePullOptions{RegistryAuth: reg.Auth()})
	require.NoError(t, err)
	require.NoError(t, resp.Wait(t.Context()))
	require.EqualValues(t, 1, reg.ManifestGets())
}

// registryRunner returns a runner with the registry's credentials.
func registryRunner(t *testing.T, reg *testenv.Registry, cfg docker.Config) *docker.Runner {
	t.Helper()
	if cfg.Credentials == nil && cfg.DockerConfig == "" {
		cfg.Credentials = &credentials.Credentials{Registry: reg.Host, Username: reg.Username, Password: reg.Password}
	}
	r, _ := newRunner(t, cfg)
	return r
}

func runEcho(t *testing.T, r *docker.Runner, image string) (*runner.Result, error) {
	t.Helper()
	return r.Run(t.Context(), runner.Task{Image: image, Commands: []string{`echo '::{"outputs":{"ran":true}}::'`}})
}

func TestPullPoliciesAgainstARegistry(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/policies", "v1")

	t.Run("IF_NOT_PRESENT pulls once", func(t *testing.T) {
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
		for range 2 {
			res, err := runEcho(t, r, ref)
			require.NoError(t, err)
			assert.Equal(t, true, res.Outputs["ran"])
		}
		assert.EqualValues(t, 1, reg.ManifestGets())
	})
	t.Run("ALWAYS pulls every time", func(t *testing.T) {
		before := reg.ManifestGets()
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullAlways}})
		for range 2 {
			_, err := runEcho(t, r, ref)
			require.NoError(t, err)
		}
		assert.EqualValues(t, before+2, reg.ManifestGets())
	})
	t.Run("NEVER fails clearly when absent", func(t *testing.T) {
		testenv.RemoveImage(t, cli, ref)
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}})
		_, err := runEcho(t, r, ref)
		require.ErrorIs(t, err, runner.ErrImageNotFound)
		assert.Contains(t, err.Error(), ref)
	})
}

func TestPullErrors(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/errors", "v1")

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-4711"
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{Credentials: &credentials.Credentials{Registry: reg.Host, Username: reg.Username, Password: wrong}}})
		_, err := runEcho(t, r, ref)
		require.ErrorIs(t, err, runner.ErrUnauthorized)
		assert.Contains(t, err.Error(), reg.Host)
		assert.Contains(t, err.Error(), ref)
		assert.NotContains(t, err.Error(), wrong)
		assert.NotContains(t, err.Error(), reg.Password)
	})
	t.Run("no credentials", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{})
		_, err := runEcho(t, r, ref)
		require.ErrorIs(t, err, runner.ErrUnauthorized)
		assert.Contains(t, err.Error(), "no credentials")
	})
	t.Run("missing tag", func(t *testing.T) {
		r := registryRunner(t, reg, docker.Config{})
		_, err := runEcho(t, r, reg.Host+"/lading/errors:absent")
		require.ErrorIs(t, err, runner.ErrImageNotFound)
		assert.Contains(t, err.Error(), "lading/errors:absent")
	})
	t.Run("without retries a server error fails", func(t *testing.T) {
		testenv.RemoveImage(t, cli, ref)
		reg.FailNext(2)
		defer reg.FailNext(0)
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullAlways, PullRetries: -1}})
		_, err := runEcho(t, r, ref)
		require.Error(t, err, "the injected failure reaches lading")
	})
	t.Run("transient server errors are retried", func(t *testing.T) {
		testenv.RemoveImage(t, cli, ref)
		reg.FailNext(2)
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullAlways}})
		_, err := runEcho(t, r, ref)
		require.NoError(t, err)
	})
	t.Run("retries give up", func(t *testing.T) {
		reg.FailNext(1000)
		defer reg.FailNext(0)
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullAlways, PullRetries: 1}})
		_, err := runEcho(t, r, ref)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "pull "+ref)
	})
}

func TestPullStallsAndCancellation(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/stall", "v1")
	reg.Stall()

	t.Run("a stalled pull is detected", func(t *testing.T) {
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullStallTimeout: docker.Duration(2 * time.Second)}})
		start := time.Now()
		_, err := runEcho(t, r, ref)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no progress for 2s")
		assert.Less(t, time.Since(start), 30*time.Second)
	})
	t.Run("cancellation during a pull", func(t *testing.T) {
		r := registryRunner(t, reg, docker.Config{})
		ctx, cancel := context.WithCancel(t.Context())
		var once sync.Once
		_, err := r.Run(ctx, runner.Task{Image: ref, Commands: []string{"true"},
			OnEvent: func(e runner.Event) {
				if e.Stage == runner.StagePulling {
					once.Do(func() { time.AfterFunc(500*time.Millisecond, cancel) })
				}
			}})
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("pullTimeout", func(t *testing.T) {
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullTimeout: docker.Duration(time.Second)}})
		_, err := runEcho(t, r, ref)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "pullTimeout")
	})
}

func TestPullProgressAndSecretsStayOut(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/progress", "v1")
	r := registryRunner(t, reg, docker.Config{})
	var progress []runner.PullProgress
	var out strings.Builder
	res, err := r.Run(t.Context(), runner.Task{Image: ref, Stdout: &out, OutputFiles: []string{"**"},
		Commands: []string{"env", "ls -la"},
		OnPull:   func(p runner.PullProgress) { progress = append(progress, p) }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
	var sawBytes bool
	for _, p := range progress {
		sawBytes = sawBytes || (p.Layer != "" && p.Total > 0 && p.Current > 0)
	}
	if testenv.IsPodman(t) {
		// Podman 4.3 reports each layer's stages but never its byte counts.
		assert.NotEmpty(t, progress, "progress has the layers' stages")
	} else {
		assert.True(t, sawBytes, "progress has a layer with bytes done and total: %+v", progress)
	}
	assert.NotContains(t, out.String(), reg.Password, "the password is not in the container")
	assert.Empty(t, res.OutputFiles, "nothing was put in the working directory")
}

func TestPullWithDockerConfigAndHelper(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/helper", "v1")

	t.Run("inline config", func(t *testing.T) {
		testenv.RemoveImage(t, cli, ref)
		auth := map[string]any{"auths": map[string]any{reg.Host: map[string]string{"username": reg.Username, "password": reg.Password}}}
		data, _ := json.Marshal(auth)
		cfg, err := docker.ParseConfig([]byte(`{"config":` + string(data) + `}`))
		require.NoError(t, err)
		assert.NotContains(t, cfg.DockerConfig.String(), reg.Password)
		r := registryRunner(t, reg, cfg)
		_, err = runEcho(t, r, ref)
		require.NoError(t, err)
	})
	t.Run("credential helper", func(t *testing.T) {
		testenv.RemoveImage(t, cli, ref)
		dir := t.TempDir()
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "docker-credential-ladingreg"), "../credentials/testdata/helper").CombinedOutput()
		require.NoError(t, err, "%s", out)
		fixture, _ := json.Marshal(map[string]any{reg.Host: map[string]string{"Username": reg.Username, "Secret": reg.Password}})
		require.NoError(t, os.WriteFile(filepath.Join(dir, "fixture.json"), fixture, 0o600))
		t.Setenv("LADING_HELPER_FIXTURE", filepath.Join(dir, "fixture.json"))
		t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{DockerConfig: docker.DockerConfig(`{"credHelpers":{"` + reg.Host + `":"ladingreg"}}`)}})
		_, err = runEcho(t, r, ref)
		require.NoError(t, err)
	})
}
