package docker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// shutdownRunner returns a Runner whose containers and volumes carry a
// label of this test, and a function that lists those left on the engine.
// The Runner is not closed for the test: each test shuts it down itself.
func shutdownRunner(t *testing.T) (*docker.Runner, func() []string) {
	t.Helper()
	cli := testenv.Engine(t)
	scope := map[string]string{"lading.test": "shutdown-" + strings.ReplaceAll(t.Name(), "/", "-")}
	r, err := docker.New(docker.Config{Container: docker.Container{Labels: scope}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, func() []string {
		t.Helper()
		filter := make(client.Filters).Add("label", "lading.test="+scope["lading.test"])
		var left []string
		list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: filter})
		require.NoError(t, err)
		for _, c := range list.Items {
			left = append(left, "container "+c.ID[:12]+" "+string(c.State))
		}
		vols, err := cli.VolumeList(context.Background(), client.VolumeListOptions{Filters: filter})
		require.NoError(t, err)
		for _, v := range vols.Items {
			left = append(left, "volume "+v.Name)
		}
		return left
	}
}

// startRun runs task on r in the background once it is running: it returns
// when the script has printed "started", with a channel that gets Run's
// outcome.
func startRun(t *testing.T, r *docker.Runner, commands ...string) <-chan runResult {
	t.Helper()
	started := make(chan struct{})
	done := make(chan runResult, 1)
	go func() {
		var out strings.Builder
		res, err := r.Run(context.Background(), runner.Task{
			Image:    testenv.Image,
			Commands: append([]string{"echo started"}, commands...),
			Stdout:   &out,
			OnLine: func(l runner.Line) {
				if l.Text == "started" {
					close(started)
				}
			},
		})
		done <- runResult{res: res, err: err, out: out.String()}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("the run ended before it started: %v", r.err)
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not start within 60 s")
	}
	return done
}

type runResult struct {
	res *runner.Result
	err error
	out string
}

// waitClosed returns once r refuses new runs (Shutdown has begun): a task
// without an image is invalid before Shutdown and refused after it, never
// run.
func waitClosed(t *testing.T, r *docker.Runner) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.Run(context.Background(), runner.Task{Commands: []string{"true"}})
		if errors.Is(err, runner.ErrClosed) {
			return
		}
		require.ErrorIs(t, err, runner.ErrInvalidTask)
		require.True(t, time.Now().Before(deadline), "Shutdown did not begin")
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownWaitsForRunsInFlight: a run under way when Shutdown is called
// finishes, with its output, and is removed; new runs are refused from the
// start of Shutdown, on the Runner and on one made from it by With; Shutdown
// returns once the run has.
func TestShutdownWaitsForRunsInFlight(t *testing.T) {
	r, left := shutdownRunner(t)
	derived, err := r.With(docker.Config{Container: docker.Container{Labels: map[string]string{"lading.test": "shutdown-" + t.Name()}}})
	require.NoError(t, err)
	done := startRun(t, derived, "sleep 2", "echo finished")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		shut <- r.Shutdown(ctx)
	}()
	waitClosed(t, r)
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.ErrorIs(t, err, runner.ErrClosed, "Run after Shutdown")
	_, err = derived.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.ErrorIs(t, err, runner.ErrClosed, "and on a Runner from With")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a run was in flight", err)
	default:
	}

	got := <-done
	require.NoError(t, got.err)
	assert.Equal(t, "started\nfinished\n", got.out)
	select {
	case err := <-shut:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return after the last run")
	}
	assert.Empty(t, left(), "the run's container and volume are removed")
	require.NoError(t, r.Shutdown(t.Context()), "a second Shutdown returns at once")
	require.NoError(t, derived.Shutdown(t.Context()), "Shutdown on a Runner from With does nothing")
}

// TestShutdownExpiredCancelsAndCleans: when Shutdown's context ends first,
// the runs in flight are cancelled with ErrClosed as the cause, stop, and
// remove their containers and volumes; Shutdown returns the context's
// error once they have. Close does the same without waiting at all.
func TestShutdownExpiredCancelsAndCleans(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shutdown func(r *docker.Runner) error
		want     error
	}{
		{"expired context", func(r *docker.Runner) error {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			return r.Shutdown(ctx)
		}, context.DeadlineExceeded},
		{"Close", func(r *docker.Runner) error { return r.Close() }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, left := shutdownRunner(t)
			first := startRun(t, r, "sleep 300")
			second := startRun(t, r, "sleep 300")
			require.GreaterOrEqual(t, len(left()), 2, "both containers are on the engine")
			err := tc.shutdown(r)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			} else {
				require.NoError(t, err)
			}
			for _, done := range []<-chan runResult{first, second} {
				var got runResult
				select {
				case got = <-done:
				default:
					t.Fatal("Shutdown returned before the cancelled run did")
				}
				require.ErrorIs(t, got.err, runner.ErrClosed)
				require.ErrorIs(t, got.err, context.Canceled)
				assert.Equal(t, "started\n", got.out, "the output up to the cancel is kept")
				assert.Contains(t, got.err.Error(), "runner closed")
			}
			assert.Empty(t, left(), "the cancelled runs' containers and volumes are removed")
			_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
			require.ErrorIs(t, err, runner.ErrClosed)
		})
	}
}
