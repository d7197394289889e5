package docker_test

import (
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// TestRenderedYAMLBlockReachesTheContainer: a taskRunner block of a YAML
// flow whose values went through templates (booleans and numbers as
// strings, a YAML int for user) configures the container as its typed
// form would.
func TestRenderedYAMLBlockReachesTheContainer(t *testing.T) {
	cfg, err := docker.ParseConfigMap(map[string]any{
		"delete":    "false",
		"wait":      "true",
		"pidsLimit": "50",
		"cpu":       map[string]any{"cpus": "0.5"},
		"memory":    map[any]any{"memory": 67108864, "oomKillDisable": "false"},
		"user":      1000,
		"init":      "TRUE",
	})
	require.NoError(t, err)
	r, cli := newRunner(t, cfg)
	var out strings.Builder
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: append([]string{"id -u"}, cgroupScript...), Stdout: &out})
	require.NoError(t, err)
	id := details(t, res).ContainerID
	removeAfter(t, cli, id)
	got := map[string]string{}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, line := range lines[1:] {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	assert.Equal(t, "1000", lines[0], `user: 1000 (a YAML int) is the user "1000"`)
	assert.Equal(t, "50", got["pids"], `pidsLimit "50"`)
	assert.Equal(t, "50000 100000", got["cpu"], `cpus "0.5"`)
	assert.Equal(t, "67108864", got["memory"], "memory: 67108864 bytes")
	inspected, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	require.NoError(t, err, `delete "false" kept the container`)
	require.NotNil(t, inspected.Container.HostConfig.Init)
	assert.True(t, *inspected.Container.HostConfig.Init, `init "TRUE"`)
}
