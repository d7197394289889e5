package docker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// The cadence of stats is lading's: it polls one-shot samples at the
// interval. The engine here answers a one-shot poll at once (as Podman and
// recent Docker do) and streams a sample every 5 s (as Podman does), which
// the shared Docker 20.10 engine cannot show: its one-shot answers wait for
// its own 1 s collector.
func TestStatsPollOneShotSamples(t *testing.T) {
	var polls, streams atomic.Int64
	var mem atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasSuffix(req.URL.Path, "/containers/c1/stats") {
			http.NotFound(w, req)
			return
		}
		sample := func() container.StatsResponse {
			var s container.StatsResponse
			s.Read = time.Now()
			s.PidsStats.Current = 1
			s.MemoryStats.Usage = uint64(mem.Add(1 << 20))
			s.CPUStats.CPUUsage.TotalUsage = uint64(time.Since(time.Time{}.Add(1)))
			return s
		}
		if req.URL.Query().Get("stream") != "false" {
			streams.Add(1)
			enc := json.NewEncoder(w)
			for {
				if enc.Encode(sample()) != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-req.Context().Done():
					return
				case <-time.After(5 * time.Second):
				}
			}
		}
		assert.Equal(t, "true", req.URL.Query().Get("one-shot"))
		s := sample()
		if polls.Add(1) > 10 {
			// The processes have exited; the cgroup still holds memory.
			s.PidsStats.Current = 0
		}
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	cli, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithVersion("1.41"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })

	const interval = 50 * time.Millisecond
	var mu sync.Mutex
	var samples []runner.Stats
	run := &run{
		r: &Runner{cfg: Config{StatsInterval: Duration(interval)}, cli: cli},
		task: runner.Task{OnStats: func(s runner.Stats) {
			mu.Lock()
			defer mu.Unlock()
			samples = append(samples, s)
		}},
	}
	const span = time.Second
	ctx, cancel := context.WithTimeout(t.Context(), span)
	defer cancel()
	res := &runner.Result{}
	start := time.Now()
	require.NoError(t, run.followStats(ctx, "c1", res))
	took := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d polls in %v at %v", polls.Load(), took, interval)
	assert.Zero(t, streams.Load(), "the engine's stream is not used")
	// Loose: 20 polls fit in 1 s at 50 ms; a loaded machine may lose some.
	assert.GreaterOrEqual(t, int(polls.Load()), 8, "polls in %v at %v", took, interval)
	assert.LessOrEqual(t, int(polls.Load()), int(took/interval)+2, "at most one poll per interval")
	assert.Equal(t, 10, len(samples), "every poll is a sample until the processes have gone")
	for _, s := range samples {
		assert.Positive(t, s.PIDs, "a sample of no processes is not passed on")
	}
	assert.Equal(t, samples[len(samples)-1].MemoryUsage, res.PeakMemory, "without max_usage the peak is the samples' peak")
}
