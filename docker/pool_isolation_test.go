package docker_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// probe is the task run after each attack, in the same pool: it prints
// what the attack could have left for it, and nothing when it finds
// nothing. It lists the processes outside the init's session and its own
// (and its task script, which has no parent in the container), the marker
// files, the variables a login shell would get from a profile, and files
// holding the secret.
var probe = []string{
	`read -r l < /proc/self/stat; set -- ${l##*) }; S=$4`,
	`for d in /proc/[0-9]*; do read -r l 2>/dev/null < $d/stat || continue; set -- ${l##*) }; [ "$4" = 1 ] || [ "$4" = "$S" ] || [ "$2" = 0 ] || echo "process: $(tr '\0' ' ' < $d/cmdline)"; done`,
	`for f in /tmp/leak /dev/shm/leak /root/leak /leak; do [ -e $f ] && echo "file: $f"; done; true`,
	`v=$(sh -lc 'echo "$LEAK"'); [ -z "$v" ] || echo "profile: LEAK=$v"`,
	`[ -z "$LEAK" ] || echo "env: LEAK=$LEAK"`,
	`s=lading-pool; s=$s-secret; grep -rl "$s" /tmp /root /etc /home /var /dev/shm 2>/dev/null | sed 's/^/secret: /'; true`,
	`env | grep "^TOKEN=" | sed 's/^/env: /'; true`,
}

const poolSecret = "lading-pool-secret-0123"

// TestPoolIsolation tries to leave something behind in a container of a
// pool of one, then runs the probe in the same pool: it must find nothing,
// whether the container was reused or discarded (each case says which it
// expects, and the pool's counters confirm it).
func TestPoolIsolation(t *testing.T) {
	cli := testenv.Engine(t)
	type attack struct {
		name    string
		cfg     docker.Config
		task    runner.Task
		onLine  func(ctx context.Context, cancel context.CancelFunc, r *docker.Runner) // run once the task printed "started"
		wantErr func(t *testing.T, res *runner.Result, err error)
		discard string // the taint expected, "" when the container is reused
	}
	exitOK := func(t *testing.T, _ *runner.Result, err error) { require.NoError(t, err) }
	grace := docker.Config{Lifecycle: docker.Lifecycle{KillGracePeriod: docker.Duration(time.Second)}}
	attacks := []attack{
		{name: "background process", task: runner.Task{Commands: []string{"sleep 1000 &", "echo left"}}, wantErr: exitOK},
		{name: "daemon in a session of its own", task: runner.Task{Commands: []string{"(setsid sh -c 'sleep 1001' </dev/null >/dev/null 2>&1 &)", "(setsid sleep 1005 &)"}}, wantErr: exitOK},
		{name: "process ignoring SIGTERM past the timeout", cfg: grace,
			task:    runner.Task{Timeout: 3 * time.Second, Commands: []string{`sh -c "trap '' TERM; sleep 1002" &`, "trap '' TERM", "echo started", "while :; do sleep 1; done"}},
			wantErr: func(t *testing.T, _ *runner.Result, err error) { require.ErrorIs(t, err, runner.ErrTimeout) }},
		{name: "file in /tmp", task: runner.Task{Commands: []string{"echo x > /tmp/leak"}}, wantErr: exitOK, discard: "file system changed"},
		{name: "file in /dev/shm", task: runner.Task{Commands: []string{"echo x > /dev/shm/leak"}}, wantErr: exitOK, discard: "tmpfs, volume or /etc/hosts changed"},
		{name: "env exported to a profile", task: runner.Task{Commands: []string{`echo 'export LEAK=1' >> /etc/profile`, `echo 'export LEAK=1' >> "${HOME:-/root}/.profile"`, "export LEAK=1"}}, wantErr: exitOK, discard: "file system changed"},
		{name: "secret left in the working directory", task: runner.Task{Secrets: map[string]string{"TOKEN": poolSecret}, Commands: []string{`echo "$TOKEN" > token.txt`, `mkdir -p d && echo "$TOKEN" > d/token`}}, wantErr: exitOK},
		{name: "secret left outside", task: runner.Task{Secrets: map[string]string{"TOKEN": poolSecret}, Commands: []string{`echo "$TOKEN" > /root/leak`}}, wantErr: exitOK, discard: "file system changed"},
		{name: "fork bomb under pidsLimit", cfg: docker.Config{Container: docker.Container{PidsLimit: 40}},
			task:    runner.Task{Timeout: 5 * time.Second, Commands: []string{"b() { b | b & }", "b", "sleep 30"}},
			wantErr: func(t *testing.T, _ *runner.Result, err error) { require.Error(t, err) }, discard: "?"},
		{name: "OOM", cfg: parseConfig(t, `{"memory":{"memory":"32m"}}`),
			task: runner.Task{Commands: []string{`awk 'BEGIN { s = "x"; while (1) s = s s }'`}},
			wantErr: func(t *testing.T, res *runner.Result, err error) {
				var exit *runner.ExitError
				require.ErrorAs(t, err, &exit)
				assert.True(t, exit.OOMKilled, "the task is reported OOM-killed")
				assert.Equal(t, 137, res.ExitCode)
			}, discard: "oom"},
		{name: "cancel mid-task", task: runner.Task{Commands: []string{"sleep 1003 &", "echo started", "sleep 1004"}},
			onLine:  func(_ context.Context, cancel context.CancelFunc, _ *docker.Runner) { cancel() },
			wantErr: func(t *testing.T, _ *runner.Result, err error) { require.ErrorIs(t, err, context.Canceled) }},
		{name: "engine kills the container", task: runner.Task{Commands: []string{"echo started", "sleep 30"}},
			onLine: func(ctx context.Context, _ context.CancelFunc, r *docker.Runner) {
				list, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("label", docker.LabelOwnerPID+"="+strconv.Itoa(os.Getpid())).Add("label", docker.LabelPool)})
				if assert.NoError(t, err) {
					for _, c := range list.Items {
						_, _ = cli.ContainerKill(ctx, c.ID, client.ContainerKillOptions{Signal: "SIGKILL"})
					}
				}
			},
			wantErr: func(t *testing.T, _ *runner.Result, err error) { require.Error(t, err) }, discard: "?"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := newPool(t, a.cfg, docker.Pool{Size: 1})
			require.NoError(t, r.Warm(t.Context(), testenv.Image))
			before := r.PoolStats()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			task := a.task
			var once sync.Once
			if a.onLine != nil {
				task.OnLine = func(l runner.Line) {
					if l.Text == "started" {
						once.Do(func() { go a.onLine(ctx, cancel, r) })
					}
				}
			}
			task.Image = testenv.Image
			res, err := r.Run(ctx, task)
			if res != nil {
				t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
			}
			a.wantErr(t, res, err)
			// The probe waits for the container to be checked (a pool of
			// one): it runs in the same container, or in a new one.
			var out strings.Builder
			pres, perr := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: probe, Stdout: &out, Stderr: &out})
			require.NoError(t, perr, out.String())
			t.Cleanup(func() { _ = os.RemoveAll(pres.WorkingDir) })
			assert.Empty(t, out.String(), "the next task saw what the attack left")
			after := r.PoolStats()
			t.Logf("pool after: %+v", after)
			switch a.discard {
			case "":
				assert.Equal(t, before.Discarded, after.Discarded, "the container was reused: %v", after.Taints)
				assert.Equal(t, before.Warmed, after.Warmed)
			case "?":
			default:
				assert.Equal(t, before.Discarded+1, after.Discarded, "the container was discarded")
				assert.Equal(t, 1, after.Taints[a.discard], "taints %v", after.Taints)
			}
		})
	}
}

// TestPoolCloseRemovesAll checks that Close removes every container of the
// pool, free and busy, and that the Runner refuses runs afterwards.
func TestPoolCloseRemovesAll(t *testing.T) {
	cli := testenv.Engine(t)
	r, err := docker.New(docker.Config{}, docker.WithPool(docker.Pool{Size: 3}))
	require.NoError(t, err)
	require.NoError(t, r.Warm(t.Context(), testenv.Image))
	assert.Equal(t, 3, r.PoolStats().Free)
	mine := make(client.Filters).Add("label", docker.LabelOwnerPID+"="+strconv.Itoa(os.Getpid())).Add("label", docker.LabelPool)
	list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: mine})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(list.Items), 3)
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background(), runner.Task{Image: testenv.Image, Commands: []string{"echo started", "sleep 30"},
			OnLine: func(l runner.Line) { t.Log(l.Text); once.Do(func() { close(started) }) }})
		done <- err
	}()
	<-started
	require.NoError(t, r.Close())
	assert.ErrorIs(t, <-done, runner.ErrClosed)
	ids := map[string]bool{}
	for _, c := range list.Items {
		ids[c.ID] = true
	}
	after, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: mine})
	require.NoError(t, err)
	for _, c := range after.Items {
		assert.False(t, ids[c.ID], "container %s of the pool is still there", c.ID[:12])
	}
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	assert.ErrorIs(t, err, runner.ErrClosed)
}

// TestPoolPruneSparesLivePool checks that Prune leaves the containers of a
// live pool alone (they carry no run id: their owner, this process, lives),
// and that the pool goes on using them.
func TestPoolPruneSparesLivePool(t *testing.T) {
	r := newPool(t, docker.Config{}, docker.Pool{Size: 2})
	require.NoError(t, r.Warm(t.Context(), testenv.Image))
	res, err := r.Prune(t.Context(), docker.PruneOptions{})
	require.NoError(t, err)
	s := r.PoolStats()
	require.Equal(t, 2, s.Free)
	_, _, d := pooledRun(t, r, runner.Task{Commands: []string{"true"}})
	for _, id := range res.Containers {
		assert.NotEqual(t, d.ContainerID, id, "Prune removed a container of the live pool")
	}
	assert.Equal(t, s.Warmed, r.PoolStats().Warmed, "the task ran in a container warmed before the prune")
}

// TestPoolOneTaskPerContainer runs many tasks from many goroutines on a
// pool smaller than their number: each task looks, twice, for processes of
// another task in its container, and finds none.
func TestPoolOneTaskPerContainer(t *testing.T) {
	r := newPool(t, docker.Config{}, docker.Pool{Size: 3})
	look := probe[:2] // its own session, and the processes outside it
	commands := append(append(append([]string{}, look...), "sleep 0.3"), look...)
	var wg sync.WaitGroup
	outs := make([]strings.Builder, 16)
	errs := make([]error, len(outs))
	for i := range outs {
		wg.Go(func() {
			res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: commands, Stdout: &outs[i], Stderr: &outs[i]})
			if res != nil {
				defer os.RemoveAll(res.WorkingDir)
				if d, ok := res.Details.(*docker.Details); !ok || d.ExecID == "" {
					err = errors.Join(err, errors.New("the task did not run in the pool"))
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range outs {
		assert.NoError(t, errs[i])
		assert.Empty(t, outs[i].String(), "task %d saw another task's processes", i)
	}
	s := r.PoolStats()
	assert.Equal(t, len(outs), s.Pooled)
	assert.LessOrEqual(t, s.Warmed, 3+s.Discarded, "never more than Size containers")
}

// TestPoolIdleTimeout checks that a free container is removed once idle
// for IdleTimeout, and that the next task warms another.
func TestPoolIdleTimeout(t *testing.T) {
	cli := testenv.Engine(t)
	r := newPool(t, docker.Config{}, docker.Pool{Size: 1, IdleTimeout: 100 * time.Millisecond})
	_, _, d := pooledRun(t, r, runner.Task{Commands: []string{"true"}})
	// A bound on hanging, not a speed target.
	deadline := time.Now().Add(30 * time.Second)
	for r.PoolStats().IdleRemoved == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, 1, r.PoolStats().IdleRemoved, "the idle container was removed")
	for time.Now().Before(deadline) {
		if _, err := cli.ContainerInspect(t.Context(), d.ContainerID, client.ContainerInspectOptions{}); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	requireRemoved(t, cli, d.ContainerID)
	_, _, d2 := pooledRun(t, r, runner.Task{Commands: []string{"true"}})
	assert.NotEqual(t, d.ContainerID, d2.ContainerID)
	assert.Equal(t, 2, r.PoolStats().Warmed)
}
