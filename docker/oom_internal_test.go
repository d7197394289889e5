package docker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/testenv"
)

// oomRun is a run whose runner has a memory limit, on cli.
func oomRun(cli *client.Client) *run {
	return &run{r: &Runner{cli: cli, compiled: &compiled{container: compiledContainer{resources: container.Resources{Memory: 32 << 20}}}}}
}

// Docker 20.10 sets State.OOMKilled only when containerd's OOM event beats
// the exit event; when it does not, its "oom" event comes just after the
// "die". The engine here sends it 300 ms after the subscription, as a late
// one: a 137 exit waits for it, any other exit does not.
func TestOOMEventAfterTheExit(t *testing.T) {
	const late = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		assert.NotEmpty(t, q.Get("since"), "the subscription replays from before the start")
		assert.Contains(t, q.Get("filters"), `"oom"`)
		assert.Contains(t, q.Get("filters"), `"c1"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(late):
		case <-req.Context().Done():
			return
		}
		_ = json.NewEncoder(w).Encode(events.Message{Type: events.ContainerEventType, Action: events.ActionOOM, Actor: events.Actor{ID: "c1"}})
		w.(http.Flusher).Flush()
		<-req.Context().Done()
	}))
	t.Cleanup(srv.Close)
	cli, err := client.New(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersion("1.41"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })

	t.Run("a 137 exit waits for the late event", func(t *testing.T) {
		w := oomRun(cli).watchOOM(t.Context(), "c1", time.Now())
		t.Cleanup(w.close)
		w.exited(137)
		assert.True(t, w.killed(t.Context()))
	})
	t.Run("another exit does not wait", func(t *testing.T) {
		w := oomRun(cli).watchOOM(t.Context(), "c1", time.Now())
		t.Cleanup(w.close)
		w.exited(1)
		assert.False(t, w.killed(t.Context()), "asked before the event came")
	})
	t.Run("no memory limit, no watch", func(t *testing.T) {
		r := oomRun(cli)
		r.r.compiled.container.resources.Memory = 0
		w := r.watchOOM(t.Context(), "c1", time.Now())
		assert.Nil(t, w)
		w.exited(137)
		assert.False(t, w.killed(t.Context()))
		w.close()
	})
}

// The watch's filters match what a real engine sends for a real OOM kill,
// whatever State.OOMKilled says.
func TestOOMEventFromTheEngine(t *testing.T) {
	cli := testenv.Engine(t)
	testenv.SkipOnPodman(t, "Podman 4.3 sends no oom event")
	ctx := t.Context()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: testenv.Image, Cmd: []string{"awk", `BEGIN { s = "x"; while (1) s = s s }`}},
		HostConfig: &container.HostConfig{Resources: container.Resources{Memory: 32 << 20}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(t.Context(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	w := oomRun(cli).watchOOM(ctx, created.ID, time.Now())
	t.Cleanup(w.close)
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	_, err = cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{})
	require.NoError(t, err)
	select {
	case st := <-wait.Result:
		require.EqualValues(t, 137, st.StatusCode)
	case err := <-wait.Error:
		require.NoError(t, err)
	}
	w.exited(137)
	assert.True(t, w.killed(ctx), "no oom event within OOMEventDelay")
}
