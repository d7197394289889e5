package docker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

func TestStats(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	var mu sync.Mutex
	var samples []runner.Stats
	res, err := r.Run(t.Context(), runner.Task{
		Image: testenv.Image,
		Commands: []string{
			// Hold 64 MiB in memory (tail keeps its one long line) while
			// one core spins for 3 seconds.
			"head -c 67108864 /dev/zero | tail -c 67108864 >/dev/null & ",
			"timeout 3 sh -c 'while :; do :; done'",
			"wait",
		},
		OnStats: func(s runner.Stats) {
			mu.Lock()
			defer mu.Unlock()
			samples = append(samples, s)
		},
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(samples), 2, "about one sample a second over 3 s")
	last := samples[len(samples)-1]
	assert.Positive(t, last.MemoryLimit)
	assert.Positive(t, last.PIDs)
	assert.Greater(t, last.CPUUsage, 500*time.Millisecond)
	var busy bool
	for _, s := range samples {
		busy = busy || s.CPUPercent > 50
	}
	assert.True(t, busy, "a spinning core shows as more than 50%% of a CPU: %+v", samples)
	assert.Greater(t, res.PeakMemory, int64(60<<20), "peak memory covers the 64 MiB held")
	assert.Greater(t, res.CPUTime, time.Second)
}

func TestNoStatsByDefault(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"sleep 1.5"}})
	require.NoError(t, err)
	assert.Zero(t, res.PeakMemory)
	assert.Zero(t, res.CPUTime)
}
