package docker_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// TestWithSharesTheConcurrencyLimit runs two Runners from With, with other
// users and limits, under their root's limit of 1: the second run starts
// only once the first has been cleaned up, and each keeps its own settings.
func TestWithSharesTheConcurrencyLimit(t *testing.T) {
	root, _ := newRunner(t, docker.Config{}, docker.WithMaxConcurrency(1))
	a, err := root.With(docker.Config{Container: docker.Container{User: "lading", PidsLimit: 50}})
	require.NoError(t, err)
	b, err := root.With(docker.Config{Container: docker.Container{User: "nobody", PidsLimit: 70}})
	require.NoError(t, err)

	var mu sync.Mutex
	var events []string
	record := func(who string) func(runner.Event) {
		return func(e runner.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, who+":"+string(e.Stage))
		}
	}
	script := []string{"echo in", "id -un", "cat /sys/fs/cgroup/pids/pids.max", "sleep 3"}
	aIn := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var outA, outB strings.Builder
	var errA, errB error
	wg.Go(func() {
		_, errA = a.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: script, OnEvent: record("a"), Stdout: &outA,
			OnLine: func(l runner.Line) {
				if l.Text == "in" {
					once.Do(func() { close(aIn) })
				}
			}})
		once.Do(func() { close(aIn) })
	})
	<-aIn // a holds the only slot
	wg.Go(func() {
		_, errB = b.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: script[:3], OnEvent: record("b"), Stdout: &outB})
	})
	wg.Wait()
	require.NoError(t, errA)
	require.NoError(t, errB)
	assert.Equal(t, "in\nlading\n50\n", outA.String())
	assert.Equal(t, "in\nnobody\n70\n", outB.String())

	lastA, firstB := -1, -1
	for i, e := range events {
		if strings.HasPrefix(e, "a:") {
			lastA = i
		}
		if strings.HasPrefix(e, "b:") && firstB < 0 {
			firstB = i
		}
	}
	require.GreaterOrEqual(t, firstB, 0, "events: %v", events)
	assert.Greater(t, firstB, lastA, "b waited for a's slot: %v", events)
}

func TestWithRefusesWhatIsTheRoots(t *testing.T) {
	root, err := docker.New(docker.Config{Host: "unix:///var/run/docker.sock"}, docker.WithMaxConcurrency(2))
	require.NoError(t, err)
	defer root.Close()
	for _, tc := range []struct {
		name, field string
		cfg         docker.Config
	}{
		{"other host", "host", docker.Config{Host: "tcp://127.0.0.1:2375"}},
		{"invalid setting", "pullPolicy", docker.Config{Pull: docker.Pull{PullPolicy: "SOMETIMES"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := root.With(tc.cfg)
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.field, fe.Field)
		})
	}
	for _, cfg := range []docker.Config{{}, {Host: "unix:///var/run/docker.sock"}} {
		_, err := root.With(cfg)
		assert.NoError(t, err)
	}
}

// TestWithCloseLeavesTheConnection closes a Runner from With: its root
// still runs tasks.
func TestWithCloseLeavesTheConnection(t *testing.T) {
	root, _ := newRunner(t, docker.Config{})
	d, err := root.With(docker.Config{Container: docker.Container{User: "lading"}})
	require.NoError(t, err)
	require.NoError(t, d.Close())
	var out strings.Builder
	_, err = root.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"echo ok"}, Stdout: &out})
	require.NoError(t, err)
	assert.Equal(t, "ok\n", out.String())
}
