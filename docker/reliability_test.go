package docker_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

var soakRuns = flag.Int("soak", 40, "runs in TestSoak (go test ./docker -run TestSoak -soak 500 for a long soak)")

func TestCancelAtEveryStage(t *testing.T) {
	for _, stage := range []runner.Stage{runner.StageCreating, runner.StageStaging, runner.StageRunning, runner.StageCollecting} {
		t.Run(string(stage), func(t *testing.T) {
			r, cli := newRunner(t, docker.Config{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			dir := t.TempDir()
			start := time.Now()
			res, err := r.Run(ctx, runner.Task{
				Image: testenv.Image, WorkingDir: dir, ID: "cancel-" + string(stage),
				InputFiles:  map[string]runner.Source{"in.txt": files.String("in")},
				OutputFiles: []string{"out.txt"},
				Commands:    []string{"echo out > out.txt", "sleep 1"},
				OnEvent: func(e runner.Event) {
					if e.Stage == stage {
						cancel()
					}
				},
			})
			if stage == runner.StageCollecting {
				// As with os/exec, a cancel after the script exited does not
				// undo the run: its files are collected on a fresh context.
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, context.Canceled)
			}
			assert.Less(t, time.Since(start), 20*time.Second)
			list, lerr := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", docker.LabelTask+"=cancel-"+string(stage))})
			require.NoError(t, lerr)
			assert.Empty(t, list.Items, "no container left")
			if stage == runner.StageCollecting {
				require.NotNil(t, res)
				assert.FileExists(t, filepath.Join(dir, "out.txt"), "files produced before the cancel come back")
			}
		})
	}
}

// socketProxy forwards a unix socket to the engine's, until stop cuts every
// connection, as an engine that goes away would.
func socketProxy(t *testing.T) (host string, stop func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "engine.sock")
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c) }()
			go func() { _, _ = io.Copy(c, up) }()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			l.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
	}
	t.Cleanup(stop)
	return "unix://" + path, stop
}

func TestEngineDisappearsMidRun(t *testing.T) {
	testenv.Engine(t)
	if os.Getenv("DOCKER_HOST") != "" {
		t.Skip("the proxy forwards to /var/run/docker.sock")
	}
	host, stop := socketProxy(t)
	r, err := docker.New(docker.Config{Host: host, Container: docker.Container{Labels: map[string]string{"lading.test": "disappear-" + strconv.Itoa(os.Getpid())}}})
	require.NoError(t, err)
	defer r.Close()
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background(), runner.Task{Image: testenv.Image, Commands: []string{"echo up", "sleep 2"},
			OnLine: func(runner.Line) { stop() }})
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.True(t, errors.Is(err, runner.ErrEngineUnreachable), "the error says the engine is gone: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("Run hung after the engine went away")
	}

	// What the run could not clean up, the sweep of another Runner of this
	// process does once the run has returned.
	sweeper, cli := newRunner(t, docker.Config{})
	scope := map[string]string{"lading.test": "disappear-" + strconv.Itoa(os.Getpid())}
	require.Eventually(t, func() bool {
		_, err := sweeper.Prune(t.Context(), docker.PruneOptions{Labels: scope})
		require.NoError(t, err)
		list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "lading.test="+scope["lading.test"])})
		require.NoError(t, err)
		vols, err := cli.VolumeList(t.Context(), client.VolumeListOptions{Filters: make(client.Filters).Add("label", "lading.test="+scope["lading.test"])})
		require.NoError(t, err)
		return len(list.Items) == 0 && len(vols.Items) == 0
	}, 30*time.Second, 500*time.Millisecond, "the sweep removed the container and its volume")
}

// TestSoak runs many tasks, 8 at a time, cancelling each at a random point,
// and relies on TestMain to find anything left behind.
func TestSoak(t *testing.T) {
	r, _ := newRunner(t, docker.Config{}, docker.WithMaxConcurrency(8))
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range *soakRuns {
		wg.Go(func() {
			// Cancel at a random point once the run has its slot: during
			// create, staging, the script or collection.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var once sync.Once
			res, err := r.Run(ctx, runner.Task{Image: testenv.Image, ID: "soak-" + strconv.Itoa(i),
				OnEvent: func(runner.Event) {
					once.Do(func() { time.AfterFunc(time.Duration(rand.IntN(2500))*time.Millisecond, cancel) })
				},
				InputFiles:  map[string]runner.Source{"in.txt": files.String("x")},
				OutputFiles: []string{"*.txt"},
				Commands:    []string{"cat in.txt > out.txt", "sleep 0.$((RANDOM % 10))"}})
			if res != nil && res.WorkingDir != "" {
				_ = os.RemoveAll(res.WorkingDir)
			}
			kind := "ok"
			switch {
			case errors.Is(err, context.Canceled):
				kind = "cancelled"
			case err != nil:
				kind = "error: " + err.Error()
			}
			mu.Lock()
			outcomes[kind]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d runs: %v", *soakRuns, outcomes)
	for kind := range outcomes {
		assert.Contains(t, []string{"ok", "cancelled"}, kind)
	}
}

// runAsync runs task on r in a goroutine and returns a channel that gets
// its result.
func runAsync(ctx context.Context, r *docker.Runner, task runner.Task) <-chan runOutcome {
	done := make(chan runOutcome, 1)
	go func() {
		res, err := r.Run(ctx, task)
		done <- runOutcome{res, err}
	}()
	return done
}

type runOutcome struct {
	res *runner.Result
	err error
}

// TestFrozenEngine freezes a second engine (SIGSTOP of its dockerd) during a
// run and cancels the run: Run must come back, within the kill grace period
// and docker.EngineTimeout of the cancel, saying the engine did not answer,
// and leave the container for Prune.
func TestFrozenEngine(t *testing.T) {
	tests := []struct {
		name    string
		grace   time.Duration
		started bool // the start call returned before the freeze
		// removalPending: the call the engine did not answer is the
		// removal, which it may carry out when it resumes.
		removalPending bool
		// freeze returns the task's callbacks that freeze the engine and
		// cancel the run at the moment the case is about.
		freeze func(e *testenv.SecondEngine, cancel context.CancelFunc) runner.Task
	}{
		// The first line may come before the engine answers the start
		// call: the freeze comes a second later, when the start call has
		// returned long ago.
		{"after start", 0, true, false, func(e *testenv.SecondEngine, cancel context.CancelFunc) runner.Task {
			var once sync.Once
			return runner.Task{Commands: []string{"echo ready", "sleep 60"}, OnLine: func(l runner.Line) {
				once.Do(func() { time.AfterFunc(time.Second, func() { e.Freeze(t); cancel() }) })
			}}
		}},
		{"after start, with a kill grace period", 2 * time.Second, true, false, func(e *testenv.SecondEngine, cancel context.CancelFunc) runner.Task {
			var once sync.Once
			return runner.Task{Commands: []string{"echo ready", "sleep 60"}, OnLine: func(l runner.Line) {
				once.Do(func() { time.AfterFunc(time.Second, func() { e.Freeze(t); cancel() }) })
			}}
		}},
		{"before start: the start call is pending", 0, false, false, func(e *testenv.SecondEngine, cancel context.CancelFunc) runner.Task {
			// StageRunning is reported just before the start call.
			return runner.Task{Commands: []string{"echo ready", "sleep 60"}, OnEvent: func(ev runner.Event) {
				if ev.Stage == runner.StageRunning {
					e.Freeze(t)
					time.AfterFunc(500*time.Millisecond, cancel)
				}
			}}
		}},
		{"copy-in: the removal after the cancel", 0, false, true, func(e *testenv.SecondEngine, cancel context.CancelFunc) runner.Task {
			// The copy-in is cancelled with ctx; the removal that follows
			// is the call the frozen engine does not answer.
			return runner.Task{Commands: []string{"true"}, InputFiles: map[string]runner.Source{"in.txt": files.String("in")},
				OnEvent: func(ev runner.Event) {
					if ev.Stage == runner.StageStaging {
						e.Freeze(t)
						time.AfterFunc(500*time.Millisecond, cancel)
					}
				}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testenv.StartSecondEngine(t)
			scope := map[string]string{"lading.test": "frozen-" + strconv.Itoa(os.Getpid())}
			r, err := docker.New(docker.Config{Host: e.Host, Container: docker.Container{Labels: scope}, Lifecycle: docker.Lifecycle{KillGracePeriod: docker.Duration(tt.grace)}})
			require.NoError(t, err)
			defer r.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			task := tt.freeze(e, cancel)
			task.Image = testenv.Image
			cancelled := make(chan time.Time, 1)
			context.AfterFunc(ctx, func() { cancelled <- time.Now() })
			done := runAsync(ctx, r, task)
			var out runOutcome
			select {
			case out = <-done:
			case <-time.After(tt.grace + docker.EngineTimeout + 30*time.Second):
				e.Thaw(t)
				<-done
				t.Fatal("Run did not return while the engine was frozen; it returned once the engine resumed")
			}
			t.Logf("Run returned %s after the cancel: %v", time.Since(<-cancelled).Round(time.Millisecond), out.err)
			require.ErrorIs(t, out.err, runner.ErrEngineUnresponsive)
			require.ErrorIs(t, out.err, context.Canceled)
			if tt.started {
				require.NotNil(t, out.res, "the script ran: a Result with the output read until the freeze")
				assert.Equal(t, -1, out.res.ExitCode, "the exit code is unknown")
				assert.Equal(t, 1, out.res.StdoutLines)
			}
			assert.NotErrorIs(t, out.err, runner.ErrEngineUnreachable)
			assert.Contains(t, out.err.Error(), "did not answer")
			assert.Contains(t, out.err.Error(), "Prune")

			// The container is left on the engine, and Prune (of another
			// Runner of this process) sweeps it once the engine answers. A
			// removal the frozen engine had not answered may be carried
			// out when it resumes: then the sweep finds nothing.
			e.Thaw(t)
			sweeper, err := docker.New(docker.Config{Host: e.Host})
			require.NoError(t, err)
			defer sweeper.Close()
			list, err := e.Client.ContainerList(t.Context(), client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", docker.LabelManaged+"=true")})
			require.NoError(t, err)
			if tt.removalPending {
				require.LessOrEqual(t, len(list.Items), 1)
			} else {
				require.Len(t, list.Items, 1, "the container is left for Prune")
				swept, err := sweeper.Prune(t.Context(), docker.PruneOptions{Labels: scope})
				require.NoError(t, err)
				assert.Equal(t, []string{list.Items[0].ID}, swept.Containers)
			}
			require.Eventually(t, func() bool {
				_, err := sweeper.Prune(t.Context(), docker.PruneOptions{Labels: scope})
				require.NoError(t, err)
				list, err := e.Client.ContainerList(t.Context(), client.ContainerListOptions{All: true,
					Filters: make(client.Filters).Add("label", docker.LabelManaged+"=true")})
				require.NoError(t, err)
				return len(list.Items) == 0
			}, 30*time.Second, 200*time.Millisecond, "nothing left once the engine answers")
		})
	}
}

// blockingWriter blocks its first Write until release is closed, and counts
// the Write calls made after Run returned.
type blockingWriter struct {
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
	returned atomic.Bool // Run has returned
	late     atomic.Int32
}

func newBlockingWriter(t *testing.T) *blockingWriter {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(w.Release)
	return w
}

func (w *blockingWriter) Release() {
	select {
	case <-w.release:
	default:
		close(w.release)
	}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if w.returned.Load() {
		w.late.Add(1)
	}
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return len(p), nil
}

func TestBlockedWriter(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		match   []error
		onLine  bool // the OnLine callback blocks, not Stdout
	}{
		{"the script exits on its own", 0, []error{runner.ErrOutputBlocked}, false},
		{"the task times out", 2 * time.Second, []error{runner.ErrOutputBlocked, runner.ErrTimeout, context.DeadlineExceeded}, false},
		{"OnLine blocks", 0, []error{runner.ErrOutputBlocked}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, cli := newRunner(t, docker.Config{})
			w := newBlockingWriter(t)
			script := []string{"echo one", "echo two", "echo three"}
			if tt.timeout > 0 {
				script = append(script, "sleep 60")
			}
			task := runner.Task{Image: testenv.Image, Commands: script, Stdout: w, Timeout: tt.timeout}
			if tt.onLine {
				task.Stdout = nil
				task.OnLine = func(l runner.Line) { _, _ = w.Write([]byte(l.Text)) }
			}
			done := runAsync(t.Context(), r, task)
			var out runOutcome
			select {
			case out = <-done:
			case <-time.After(tt.timeout + docker.OutputWaitDelay + 40*time.Second):
				w.Release()
				<-done
				t.Fatal("Run did not return while the Stdout writer was blocked; it returned once the writer was released")
			}
			w.returned.Store(true)
			for _, target := range tt.match {
				require.ErrorIs(t, out.err, target)
			}
			assert.Contains(t, out.err.Error(), "still being written")
			require.NotNil(t, out.res, "the script ran")
			requireRemoved(t, cli, details(t, out.res).ContainerID)

			// The blocked Write returns when released; nothing is written
			// after Run returned.
			w.Release()
			time.Sleep(200 * time.Millisecond)
			assert.Zero(t, w.late.Load(), "writes after Run returned")
		})
	}
}

// TestKilledEngine kills a second engine's dockerd mid-run, as a crash
// would: Run returns at once, saying the engine is unreachable.
func TestKilledEngine(t *testing.T) {
	e := testenv.StartSecondEngine(t)
	r, err := docker.New(docker.Config{Host: e.Host})
	require.NoError(t, err)
	defer r.Close()
	var once sync.Once
	done := runAsync(t.Context(), r, runner.Task{Image: testenv.Image, Commands: []string{"echo ready", "sleep 60"},
		OnLine: func(runner.Line) { once.Do(func() { go e.Kill(t) }) }})
	select {
	case out := <-done:
		t.Logf("error: %v", out.err)
		require.ErrorIs(t, out.err, runner.ErrEngineUnreachable)
		assert.NotErrorIs(t, out.err, runner.ErrEngineUnresponsive)
		assert.Contains(t, out.err.Error(), "start the engine")
	case <-time.After(60 * time.Second):
		t.Fatal("Run hung after the engine was killed")
	}
}
