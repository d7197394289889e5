package docker_test

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/runner/runnertest"
)

// engineRuntimes lists the OCI runtimes the tests' engine has.
func engineRuntimes(t *testing.T, cli *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	info, err := cli.Info(ctx, client.InfoOptions{})
	require.NoError(t, err)
	var names []string
	for name := range info.Info.Runtimes {
		names = append(names, name)
	}
	return names
}

func TestRuntimeNeedsAllow(t *testing.T) {
	_, err := docker.ParseConfig([]byte(`{"runtime":"runc"}`))
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "runtime", fe.Field)
	assert.Equal(t, "runc", fe.Value)
	assert.Contains(t, err.Error(), "sets Allow.Runtimes")

	_, err = docker.ParseConfigAllowing([]byte(`{"runtime":"runc"}`), docker.Allow{Runtimes: []string{"runsc"}})
	require.ErrorAs(t, err, &fe, "a runtime the host program did not list is refused")
	assert.Equal(t, "runtime", fe.Field)

	cfg, err := docker.ParseConfigAllowing([]byte(`{"runtime":"runsc"}`), docker.Allow{Runtimes: []string{"runsc"}})
	require.NoError(t, err)
	assert.Equal(t, "runsc", cfg.Runtime)
	_, err = docker.ParseConfigAllowing([]byte(`{"runtime":"kata"}`), docker.Allow{Runtimes: []string{"*"}})
	require.NoError(t, err)

	_, err = docker.ParseConfigAllowing([]byte(`{"runtime":"run sc"}`), docker.Allow{Runtimes: []string{"*"}})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "runtime", fe.Field)
	assert.Equal(t, "run sc", fe.Value)
}

func TestUnknownRuntimeNamesTheEngines(t *testing.T) {
	r, cli := newRunner(t, docker.Config{Container: docker.Container{Runtime: "no-such-runtime"}}, docker.WithAllow(docker.Allow{Runtimes: []string{"*"}}))
	have := engineRuntimes(t, cli)
	for range 2 { // the second Run uses the cached list
		res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "runtime", fe.Field)
		assert.Equal(t, "no-such-runtime", fe.Value)
		for _, name := range have {
			assert.Contains(t, fe.Problem, name, "the error names the engine's runtimes")
		}
		if res != nil && res.WorkingDir != "" {
			_ = os.RemoveAll(res.WorkingDir)
		}
	}
}

// TestRuntimeListRetriedAfterAFailure: a failed look-up of the engine's
// runtimes is not cached; the next Run asks again.
func TestRuntimeListRetriedAfterAFailure(t *testing.T) {
	socket := engineSocket(t)
	var infoCalls atomic.Int32
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "docker" },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
	}
	front := filepath.Join(t.TempDir(), "front.sock")
	ln, err := net.Listen("unix", front)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/info") && infoCalls.Add(1) == 1 {
			http.Error(w, `{"message":"engine busy"}`, http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	r, _ := newRunner(t, docker.Config{Host: "unix://" + front, Container: docker.Container{Runtime: "no-such-runtime"}}, docker.WithAllow(docker.Allow{Runtimes: []string{"*"}}))
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.Error(t, err)
	assert.NotErrorIs(t, err, runner.ErrInvalidConfig, "the engine's failure, not a verdict on the runtime")
	assert.Contains(t, err.Error(), "list the engine's runtimes")
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe, "asked again and got the list")
	assert.Equal(t, "runtime", fe.Field)
	assert.Contains(t, fe.Problem, "runc")
	assert.EqualValues(t, 2, infoCalls.Load())
}

func TestRuntimeReachesTheEngine(t *testing.T) {
	cli := testenv.Engine(t)
	have := engineRuntimes(t, cli)
	require.Contains(t, have, "runc")
	r, _ := newRunner(t, docker.Config{Container: docker.Container{Runtime: "runc"}, Lifecycle: docker.Lifecycle{Delete: docker.Bool(false)}}, docker.WithAllow(docker.Allow{Runtimes: []string{"runc"}}))
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.NoError(t, err)
	id := details(t, res).ContainerID
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	_ = os.RemoveAll(res.WorkingDir)
	testenv.SkipOnPodman(t, `Podman 4.3's compatible inspect reports HostConfig.Runtime "oci" whatever runtime ran the container`)
	inspect, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.Equal(t, "runc", inspect.Container.HostConfig.Runtime)
}

// TestConformanceRunsc runs the conformance suite under gVisor's runsc, as a
// host program that runs untrusted scripts would (Config.Runtime "runsc" and
// nothing else). Under CI the engine must have runsc (.ci/runsc registers
// it); Podman is tested with its own runtime (runc) only.
func TestConformanceRunsc(t *testing.T) {
	cli := testenv.Engine(t)
	testenv.SkipOnPodman(t, "Podman's Info lists runsc from its built-in defaults whether or not it works with Podman's conmon; gVisor is tested on Docker")
	if !slices.Contains(engineRuntimes(t, cli), "runsc") {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and the engine has no runsc runtime: run .ci/runsc")
		}
		t.Skip("the engine has no runsc runtime (run .ci/runsc to register gVisor's)")
	}
	sandboxed := docker.Allow{Runtimes: []string{"runsc"}}
	t.Run("sandboxed", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{Container: docker.Container{Runtime: "runsc"}}, docker.WithAllow(sandboxed))
		var kernel []string
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"uname -r"},
			OnLine: func(l runner.Line) { kernel = append(kernel, l.Text) }})
		require.NoError(t, err)
		assert.Equal(t, []string{"4.4.0"}, kernel, "gVisor's kernel answers uname, not the host's")
	})
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		t.Run(string(strategy), func(t *testing.T) {
			runnertest.Run(t, runnertest.Config{
				Image: testenv.Image,
				New: func(t *testing.T) runner.Runner {
					r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy, Container: docker.Container{Runtime: "runsc"}}, docker.WithAllow(sandboxed))
					return r
				},
			})
		})
	}
}

// BenchmarkTrivialByRuntime is the trivial task (`true`, one at a time) with
// the engine's default runtime and with runsc, on the engine DOCKER_HOST
// names (Docker or Podman). BENCHMARKS.md has the figures.
func BenchmarkTrivialByRuntime(b *testing.B) {
	cli := testenv.Engine(b)
	info, err := cli.Info(b.Context(), client.InfoOptions{})
	require.NoError(b, err)
	for _, rt := range []string{"", "runsc"} {
		name := cmp.Or(rt, "default-"+info.Info.DefaultRuntime)
		b.Run(name, func(b *testing.B) {
			if _, ok := info.Info.Runtimes[rt]; rt != "" && (!ok || testenv.IsPodman(b)) {
				b.Skip("no runsc on this engine (or Podman, where it is not tested)")
			}
			r, err := docker.New(docker.Config{Container: docker.Container{Runtime: rt}}, docker.WithAllow(docker.Allow{Runtimes: []string{"*"}}))
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			for b.Loop() {
				res, err := r.Run(b.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
				require.NoError(b, err)
				_ = os.RemoveAll(res.WorkingDir)
			}
		})
	}
}
