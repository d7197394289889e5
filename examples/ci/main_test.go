package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
)

// The pipelines run against the real engine, in the offline test image,
// which testenv builds when the engine lacks it. Each test names its CI
// runner after itself and the test process, so its Prune and its checks see
// only its own containers.

const token = "tok-3f9a1c7e"

func newCI(t *testing.T, o Options) (*CI, docker.PruneResult, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	o.Name = fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid())
	o.Out = out
	o.Secret = func(name string) (string, bool) {
		if name == "DEPLOY_TOKEN" {
			return token, true
		}
		return "", false
	}
	c, pruned, err := New(t.Context(), o)
	require.NoError(t, err)
	t.Cleanup(func() { t.Log("log:\n" + out.String()); _ = c.Close() })
	return c, pruned, out
}

func TestPipelinePasses(t *testing.T) {
	testenv.Engine(t)
	p, err := ReadPipeline("testdata/repo/pipeline.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	c, _, out := newCI(t, Options{Dir: dir})

	rep, err := c.Run(t.Context(), p, "testdata/repo", "run1")
	require.NoError(t, err)
	require.Equal(t, Passed, rep.State)
	for _, s := range rep.Steps {
		assert.Equal(t, Passed, s.State, "%s: %v", s.Name, s.Err)
	}
	log := out.String()
	assert.Contains(t, log, "[build/compile] cache miss")
	assert.Contains(t, log, "[test/unit] PASS")
	assert.Contains(t, log, "[test/lint] ok src/greet.sh")
	assert.Contains(t, log, "[test/lint] templates off: {{ .State.Status }}")
	assert.Contains(t, log, "[deploy/deploy] deploying greet with token ****")
	assert.NotContains(t, log, token)

	// Artifacts: copies outside the checkout, with what the steps wrote.
	greet, err := os.ReadFile(rep.Step("compile").Artifacts["dist/greet"])
	require.NoError(t, err)
	assert.Contains(t, string(greet), "Hello, ")
	unit, err := os.ReadFile(rep.Step("unit").Artifacts["reports/unit.txt"])
	require.NoError(t, err)
	assert.Equal(t, "greet: ok\n", string(unit))
	assert.True(t, strings.HasPrefix(rep.Step("deploy").Artifacts["deploy.log"], rep.Artifacts))

	// The cache outlives the run: a second run finds it.
	rep, err = c.Run(t.Context(), p, "testdata/repo", "run2")
	require.NoError(t, err)
	assert.Equal(t, Passed, rep.State)
	assert.Contains(t, out.String(), "[build/compile] cache hit")
	assertNoContainers(t, c)
}

func TestFailFast(t *testing.T) {
	testenv.Engine(t)
	p, err := ReadPipeline("testdata/failing.yaml")
	require.NoError(t, err)
	c, _, out := newCI(t, Options{})

	rep, err := c.Run(t.Context(), p, "testdata/repo", "run1")
	require.NoError(t, err)
	assert.Equal(t, Failed, rep.State)
	unit, slow, deploy := rep.Step("unit"), rep.Step("slow"), rep.Step("deploy")
	assert.Equal(t, Failed, unit.State)
	assert.Equal(t, 1, unit.ExitCode)
	assert.Equal(t, Cancelled, slow.State, "the other step of the stage is cancelled")
	assert.ErrorContains(t, slow.Err, "step unit failed")
	assert.Equal(t, Skipped, deploy.State)
	assert.Contains(t, out.String(), "[test/unit] unit: 1 test failed")
	assert.NotContains(t, out.String(), "never printed")
	assertNoContainers(t, c)
}

func TestInterrupt(t *testing.T) {
	testenv.Engine(t)
	p, err := ReadPipeline("testdata/hang.yaml")
	require.NoError(t, err)
	c, _, out := newCI(t, Options{})

	ctx, cancel := context.WithCancel(t.Context()) // what Ctrl-C does in main
	go func() {
		for ctx.Err() == nil && !strings.Contains(out.String(), "[test/wait] waiting") {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	rep, err := c.Run(ctx, p, "testdata/repo", "run1")
	require.NoError(t, err)
	assert.Equal(t, Cancelled, rep.State)
	assert.Equal(t, Cancelled, rep.Step("wait").State)
	assert.ErrorIs(t, rep.Step("wait").Err, context.Canceled)
	assertNoContainers(t, c)
}

func TestPruneAtStartUp(t *testing.T) {
	testenv.Engine(t)
	p, err := ReadPipeline("testdata/repo/pipeline.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	// A runner that keeps its containers stands for one that crashed.
	crashed, pruned, _ := newCI(t, Options{Dir: dir, Delete: docker.Bool(false)})
	assert.Empty(t, pruned.Containers)
	rep, err := crashed.Run(t.Context(), p, "testdata/repo", "run1")
	require.NoError(t, err)
	require.Equal(t, Passed, rep.State)
	left := containers(t, crashed)
	require.Len(t, left, 4, "one container per step was kept")

	c, pruned, _ := newCI(t, Options{Dir: dir})
	assert.ElementsMatch(t, left, pruned.Containers)
	assertNoContainers(t, c)
}

func TestReadPipelineRefuses(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown property", "stages: [a]\nsteps:\n  - {name: x, stage: a, image: i, scirpt: [true]}\n", "field scirpt not found"},
		{"unknown stage", "stages: [a]\nsteps:\n  - {name: x, stage: b, image: i, script: [true]}\n", `stage "b": not one of the stages [a]`},
		{"no image", "stages: [a]\nsteps:\n  - {name: x, stage: a, script: [true]}\n", "image is empty"},
		{"name used twice", "image: i\nstages: [a]\nsteps:\n  - {name: x, stage: a, script: [true]}\n  - {name: x, stage: a, script: [true]}\n", `name "x": used twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pipeline.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o644))
			_, err := ReadPipeline(path)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestMissingSecretRunsNothing(t *testing.T) {
	p, err := ReadPipeline("testdata/repo/pipeline.yaml")
	require.NoError(t, err)
	c := &CI{dir: t.TempDir(), secret: func(string) (string, bool) { return "", false }}
	_, err = c.Run(t.Context(), p, "testdata/repo", "run1")
	assert.ErrorContains(t, err, "step deploy: secret DEPLOY_TOKEN is not set")
}

// containers lists the ids of the containers of c's runner name.
func containers(t *testing.T, c *CI) []string {
	t.Helper()
	cli := testenv.Engine(t)
	list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelCI+"="+c.name),
	})
	require.NoError(t, err)
	var ids []string
	for _, ctr := range list.Items {
		ids = append(ids, ctr.ID)
	}
	return ids
}

func assertNoContainers(t *testing.T, c *CI) {
	t.Helper()
	assert.Empty(t, containers(t, c), "containers left on the engine")
}

// syncBuffer is a bytes.Buffer safe for the steps' concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
