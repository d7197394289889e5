package docker_test

import (
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/testenv"
)

func TestRegistryFixture(t *testing.T) {
	cli := testenv.Engine(t)
	reg := testenv.NewRegistry(t)
	ref := reg.Push(t, cli, "lading/busybox", "v1")
	resp, err := cli.ImagePull(t.Context(), ref, client.ImagePullOptions{RegistryAuth: reg.Auth()})
	require.NoError(t, err)
	require.NoError(t, resp.Wait(t.Context()))
	require.EqualValues(t, 1, reg.ManifestGets())
}
