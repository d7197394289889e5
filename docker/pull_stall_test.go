package docker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
)

// TestPullStalledSentinel: a stalled pull's error matches
// [docker.ErrPullStalled], so a host can tell it from other pull failures.
func TestPullStalledSentinel(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/stalled", "v1")
	reg.Stall()
	r := registryRunner(t, reg, docker.Config{Pull: docker.Pull{PullStallTimeout: docker.Duration(2 * time.Second)}})
	_, err := runEcho(t, r, ref)
	require.ErrorIs(t, err, docker.ErrPullStalled)
	assert.Contains(t, err.Error(), "pullStallTimeout")
}
