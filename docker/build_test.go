package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// buildContext writes files into a fresh directory, with a random file
// (.nonce) so that the engine's layer cache from an earlier run of the
// tests never hides a step's output.
func buildContext(t *testing.T, files map[string]string) (dir, nonce string) {
	t.Helper()
	dir = t.TempDir()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	nonce = hex.EncodeToString(b)
	files[".nonce"] = nonce
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir, nonce
}

// removeBuilt removes a built image when the test ends, by id (all its
// tags), with its untagged parents (the intermediate images of its steps).
func removeBuilt(t *testing.T, cli *client.Client, img build.Image) {
	t.Helper()
	require.NotEmpty(t, img.ID)
	t.Cleanup(func() { removeBuiltImage(t, cli, img) })
}

func removeBuiltImage(t testing.TB, cli *client.Client, img build.Image) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("remove built image %s: %v", img.Ref, err)
	}
}

// writeBuildBenchContext writes a small context: a Containerfile with a COPY
// and a RUN, and a few files.
func writeBuildBenchContext(t testing.TB, dir string) {
	t.Helper()
	files := map[string]string{
		"Containerfile": "FROM lading-test/busybox:latest\nCOPY . /src\nRUN wc -c /src/* > /sizes\n",
		"a.txt":         "alpha\n",
		"b.txt":         "beta\n",
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

// removeBuildSteps removes, when the test ends, the images of the steps a
// failed or cancelled build completed (its " ---> <id>" lines): the
// engine keeps them as its layer cache.
func removeBuildSteps(t *testing.T, cli *client.Client, l *buildLines) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		steps := strings.Split(l.text(), "\n")
		slices.Reverse(steps)
		for _, line := range steps {
			id, ok := strings.CutPrefix(line, " ---> ") // Podman: "--> id"
			if !ok {
				id, ok = strings.CutPrefix(line, "--> ")
			}
			if ok && id != "" && !strings.Contains(id, " ") {
				if inspected, err := cli.ImageInspect(ctx, id); err == nil && len(inspected.RepoTags) == 0 {
					_, _ = cli.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true})
				}
			}
		}
	})
}

// buildLines collects progress lines.
type buildLines struct {
	mu sync.Mutex
	l  []build.Progress
}

func (l *buildLines) add(p build.Progress) { l.mu.Lock(); l.l = append(l.l, p); l.mu.Unlock() }
func (l *buildLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, p := range l.l {
		b.WriteString(p.Line + "\n")
	}
	return b.String()
}

// buildCountingEngine serves the engine's API on a unix socket of its own,
// counting the build calls that pass through it.
func buildCountingEngine(t *testing.T, cli *client.Client) (host string, builds *atomic.Int64) {
	return buildProxyEngine(t, cli, false)
}

// buildProxyEngine is buildCountingEngine; with breakBuilds it closes the connection
// of every build call instead of passing it on.
func buildProxyEngine(t *testing.T, cli *client.Client, breakBuilds bool) (host string, builds *atomic.Int64) {
	t.Helper()
	upstream := strings.TrimPrefix(cli.DaemonHost(), "unix://")
	if strings.Contains(upstream, "://") {
		t.Skipf("the counting proxy needs a unix socket engine, not %s", cli.DaemonHost())
	}
	dir, err := os.MkdirTemp("", "lading-build-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "engine.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	builds = &atomic.Int64{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", upstream)
		}},
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/build") {
			builds.Add(1)
			if breakBuilds {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock, builds
}

const buildMultiStage = `FROM lading-test/busybox:latest AS base
ARG GREETING=none
COPY . /ctx
RUN echo "greeting=$GREETING" > /greeting
FROM base AS final
RUN echo final > /stage
`

func TestBuildArgsTargetAndCacheByContent(t *testing.T) {
	cli := testenv.Engine(t)
	host, builds := buildCountingEngine(t, cli)
	r, _ := newRunner(t, docker.Config{Host: host, Pull: docker.Pull{PullPolicy: docker.PullNever}})
	dir, _ := buildContext(t, map[string]string{"Containerfile": buildMultiStage, "data.txt": "one\n"})
	spec := build.Spec{Context: dir, Args: map[string]string{"GREETING": "hello-arg"}, Target: "base", Name: "lading-test/build-cache"}

	var first buildLines
	spec.OnProgress = first.add
	img, err := r.Build(t.Context(), spec)
	require.NoError(t, err)
	removeBuilt(t, cli, img)
	assert.False(t, img.Cached)
	assert.EqualValues(t, 1, builds.Load())
	assert.Equal(t, "lading-test/build-cache:"+strings.TrimPrefix(img.Digest, "sha256:"), img.Ref)
	assert.Regexp(t, `(?m)^(Step 1/\d : |STEP 1/\d: )FROM lading-test/busybox:latest AS base$`, first.text())
	assert.NotContains(t, first.text(), "RUN echo final", "target base stops before the final stage")

	res, err := r.Run(t.Context(), runner.Task{Image: img.Ref, DisableTemplates: true, Commands: []string{
		`echo "::{\"outputs\":{\"greeting\":\"$(cat /greeting)\",\"final\":$(test -e /stage && echo true || echo false)}}::"`,
	}})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"greeting": "greeting=hello-arg", "final": false}, res.Outputs)

	t.Run("unchanged input is a cache hit without a build call", func(t *testing.T) {
		var again buildLines
		spec.OnProgress = again.add
		img2, err := r.Build(t.Context(), spec)
		require.NoError(t, err)
		assert.True(t, img2.Cached)
		assert.Equal(t, img, build.Image{Ref: img2.Ref, ID: img2.ID, Digest: img2.Digest, Cached: false})
		assert.EqualValues(t, 1, builds.Load(), "no second /build call")
		assert.Empty(t, again.l)
	})
	t.Run("one changed byte rebuilds", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "data.txt"), []byte("One\n"), 0o644))
		img3, err := r.Build(t.Context(), spec)
		require.NoError(t, err)
		removeBuilt(t, cli, img3)
		assert.False(t, img3.Cached)
		assert.NotEqual(t, img.Ref, img3.Ref)
		assert.EqualValues(t, 2, builds.Load())
	})
	t.Run("an arg rebuilds", func(t *testing.T) {
		other := spec
		other.Args = map[string]string{"GREETING": "other"}
		img4, err := r.Build(t.Context(), other)
		require.NoError(t, err)
		removeBuilt(t, cli, img4)
		assert.False(t, img4.Cached)
		assert.EqualValues(t, 3, builds.Load())
	})
	t.Run("NoCache forces a build", func(t *testing.T) {
		forced := spec
		forced.NoCache = true
		img5, err := r.Build(t.Context(), forced)
		require.NoError(t, err)
		removeBuilt(t, cli, img5)
		again, err := r.Build(t.Context(), spec)
		require.NoError(t, err)
		assert.True(t, again.Cached, "tagged as an ordinary build")
		assert.Equal(t, img5.ID, again.ID)
		assert.False(t, img5.Cached)
		assert.EqualValues(t, 4, builds.Load())
	})
}

func TestBuildFailingStepMasksSecretArgs(t *testing.T) {
	cli := testenv.Engine(t)
	r, _ := newRunner(t, docker.Config{})
	dir, _ := buildContext(t, map[string]string{
		"Containerfile": "FROM lading-test/busybox:latest\nARG TOKEN\nCOPY .nonce /nonce\nRUN echo before-the-failure && echo \"token=$TOKEN\" && exit 3\n",
	})
	const secret = "s3cret-build-t0ken"
	var out buildLines
	removeBuildSteps(t, cli, &out)
	_, err := r.Build(t.Context(), build.Spec{Context: dir, SecretArgs: map[string]string{"TOKEN": secret}, OnProgress: out.add})
	require.ErrorIs(t, err, build.ErrBuildFailed)
	var stepErr *build.StepError
	require.ErrorAs(t, err, &stepErr)
	assert.Equal(t, 4, stepErr.Step)
	assert.Equal(t, 4, stepErr.Steps)
	assert.Equal(t, "RUN echo before-the-failure && echo \"token=$TOKEN\" && exit 3", stepErr.Instruction)
	assert.Contains(t, stepErr.Instruction, "RUN echo before-the-failure")
	assert.Contains(t, stepErr.Lines, "before-the-failure")
	assert.Contains(t, stepErr.Lines, "token=****")
	assert.Regexp(t, `returned a non-zero code: 3|exit status 3`, stepErr.Message) // Docker | Podman
	assert.Contains(t, err.Error(), "step 4/4")
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, out.text(), secret)
	assert.Contains(t, out.text(), "token=****")
	assert.NoError(t, buildLeftovers(t, cli, "before-the-failure"))
}

// buildLeftovers waits (at most 30 s) until the engine has no container
// whose command holds marker, the intermediate containers of a build.
func buildLeftovers(t *testing.T, cli *client.Client, marker string) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true})
		require.NoError(t, err)
		var left []string
		for _, c := range list.Items {
			if strings.Contains(c.Command, marker) {
				left = append(left, c.ID[:12]+" "+string(c.State))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("intermediate containers left: " + strings.Join(left, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestBuildCancelLeavesNoIntermediateContainers(t *testing.T) {
	cli := testenv.Engine(t)
	r, _ := newRunner(t, docker.Config{})
	dir, nonce := buildContext(t, map[string]string{})
	marker := "sleep 30 # " + nonce
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM lading-test/busybox:latest\nRUN "+marker+"\n"), 0o644))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	running := make(chan struct{})
	var once sync.Once
	var out buildLines
	removeBuildSteps(t, cli, &out)
	start := time.Now()
	_, err := r.Build(ctx, build.Spec{Context: dir, OnProgress: func(p build.Progress) {
		out.add(p)
		if strings.HasPrefix(p.Instruction, "RUN sleep") {
			once.Do(func() { close(running); time.AfterFunc(time.Second, cancel) })
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "step 2/2 (RUN "+marker+")")
	assert.Less(t, time.Since(start), 25*time.Second, "the build stopped before its sleep ended")
	select {
	case <-running:
	default:
		t.Fatal("the RUN step never started")
	}
	// On Podman 4.3 this passes without proving much: Buildah's working
	// container is not listed through the Docker API, and it runs the sleep
	// to its end before removing it (see Build's doc).
	assert.NoError(t, buildLeftovers(t, cli, nonce))
}

func TestBuildFromPrivateRegistryBase(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	base := reg.Push(t, cli, "lading/build-base", "v1")
	testenv.RemoveImage(t, cli, base)
	dir, _ := buildContext(t, map[string]string{"Containerfile": "FROM " + base + "\nCOPY .nonce /nonce\n"})

	t.Run("without credentials the registry refuses", func(t *testing.T) {
		r, _ := newRunner(t, docker.Config{})
		_, err := r.Build(t.Context(), build.Spec{Context: dir})
		require.ErrorIs(t, err, build.ErrBuildFailed)
	})
	t.Run("with the runner's credentials the base is pulled", func(t *testing.T) {
		before := reg.ManifestGets()
		r, _ := newRunner(t, docker.Config{Pull: docker.Pull{Credentials: &credentials.Credentials{Registry: reg.Host, Username: reg.Username, Password: reg.Password}}})
		img, err := r.Build(t.Context(), build.Spec{Context: dir})
		require.NoError(t, err)
		removeBuilt(t, cli, img)
		testenv.RemoveImage(t, cli, base)
		assert.Greater(t, reg.ManifestGets(), before)
	})
}

func TestBuildSecretArgMaskedInEngineErrors(t *testing.T) {
	cli := testenv.Engine(t)
	host, builds := buildProxyEngine(t, cli, true)
	r, _ := newRunner(t, docker.Config{Host: host})
	dir, _ := buildContext(t, map[string]string{"Containerfile": "FROM lading-test/busybox:latest\nARG TOKEN\n"})
	const secret = "s3cret/build+t0ken"
	_, err := r.Build(t.Context(), build.Spec{Context: dir, SecretArgs: map[string]string{"TOKEN": secret}})
	require.Error(t, err)
	require.EqualValues(t, 1, builds.Load())
	t.Log(err)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestBuildLongLinesArriveInPieces(t *testing.T) {
	cli := testenv.Engine(t)
	r, _ := newRunner(t, docker.Config{})
	dir, _ := buildContext(t, map[string]string{"Containerfile": "FROM lading-test/busybox:latest\nCOPY .nonce /nonce\nRUN yes x | head -c 400000 | tr -d '\\n'; echo; echo after\n"})
	var out buildLines
	removeBuildSteps(t, cli, &out)
	img, err := r.Build(t.Context(), build.Spec{Context: dir, OnProgress: out.add})
	require.NoError(t, err)
	removeBuilt(t, cli, img)
	var xs int
	for _, p := range out.l {
		assert.LessOrEqual(t, len(p.Line), 64<<10)
		if strings.Trim(p.Line, "x") == "" {
			xs += len(p.Line)
		}
	}
	assert.Equal(t, 200000, xs, "yes prints x and a newline: 400,000 bytes, half of them x")
	assert.Contains(t, out.text(), "\nafter\n")
}

// The docker CLI sends the Dockerfile and .dockerignore even when
// .dockerignore excludes them, and the engine hides them from COPY: so
// does lading.
func TestBuildExcludedDockerfileIsHiddenFromCopy(t *testing.T) {
	cli := testenv.Engine(t)
	r, _ := newRunner(t, docker.Config{})
	dir, _ := buildContext(t, map[string]string{
		"Dockerfile":    "FROM lading-test/busybox:latest\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sort | sed 's/^/sent: /'\n",
		".dockerignore": "Dockerfile\n.dockerignore\n",
		"app.go":        "",
	})
	var out buildLines
	img, err := r.Build(t.Context(), build.Spec{Context: dir, OnProgress: out.add})
	require.NoError(t, err)
	removeBuilt(t, cli, img)
	var sent []string
	for _, l := range strings.Split(out.text(), "\n") {
		if s, ok := strings.CutPrefix(l, "sent: "); ok {
			sent = append(sent, s)
		}
	}
	assert.Equal(t, []string{"./.nonce", "./app.go"}, sent)
}
