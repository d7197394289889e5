package docker_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/servicetest"
)

// TestServiceNamedVolume: a named volume outlives the service that created
// it, is mounted by the next one, is listed, and is deleted only when
// asked (and not while in use).
func TestServiceNamedVolume(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, cli := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	t.Cleanup(func() { _ = s.DeleteVolume(context.Background(), ns, "data") })
	vols := []service.Volume{{Name: "data", Path: "/data"}}
	writer, err := s.Deploy(t.Context(), service.Spec{Slug: "writer", Namespace: ns, Image: testenv.Image, Volumes: vols, Ephemeral: true,
		Command: `sh -c 'echo persisted > /data/f && exec sleep 3600'`, Health: &service.HealthCheck{Command: []string{"test", "-e", "/data/f"}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = writer.Delete(context.Background()) })
	_, err = servicetest.Wait(t, writer)
	require.NoError(t, err)
	err = s.DeleteVolume(t.Context(), ns, "data")
	require.Error(t, err, "in use")
	assert.Contains(t, err.Error(), "in use")
	require.NoError(t, writer.Delete(t.Context()))

	list, err := s.ListVolumes(t.Context(), ns)
	require.NoError(t, err)
	require.Len(t, list, 1, "kept after the service's delete")
	assert.Equal(t, service.VolumeInfo{Namespace: ns, Name: "data", ID: "lading-vol-" + ns + "-data"}, list[0])

	reader, err := s.Deploy(t.Context(), service.Spec{Slug: "reader", Namespace: ns, Image: testenv.Image,
		Volumes: []service.Volume{{Name: "data", Path: "/in", ReadOnly: true}}, Ephemeral: true, Command: `sh -c 'cat /in/f; touch /in/g || echo read-only; exec sleep 3600'`})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reader.Delete(context.Background()) })
	require.Eventually(t, func() bool {
		var out bytes.Buffer
		_ = reader.Logs(t.Context(), service.LogOptions{Stdout: &out})
		return out.String() == "persisted\nread-only\n"
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, reader.Delete(t.Context()))
	require.NoError(t, s.DeleteVolume(t.Context(), ns, "data"))
	require.NoError(t, s.DeleteVolume(t.Context(), ns, "data"), "idempotent")
	list, err = s.ListVolumes(t.Context(), ns)
	require.NoError(t, err)
	assert.Empty(t, list)
	_, err = cli.VolumeInspect(t.Context(), "lading-vol-"+ns+"-data", client.VolumeInspectOptions{})
	assert.Error(t, err)
}

func TestServiceCPUSharesAndDiskSize(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, cli := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	svc, err := s.Deploy(t.Context(), service.Spec{Slug: "shares", Namespace: ns, Image: testenv.Image, CPUShares: 512, Command: "sleep 3600", Ephemeral: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Delete(context.Background()) })
	in, err := cli.ContainerInspect(t.Context(), svc.Info().ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(512), in.Container.HostConfig.CPUShares)

	// In a namespace of its own, so that a refusal must leave no network.
	diskNS := servicetest.Namespace(t)
	disk, err := s.Deploy(t.Context(), service.Spec{Slug: "disk", Namespace: diskNS, Image: testenv.Image, DiskSize: 64 << 20, Command: "sleep 3600", Ephemeral: true})
	if err == nil {
		// A driver that supports it (overlay2 on xfs with pquota).
		t.Cleanup(func() { _ = disk.Delete(context.Background()) })
		in, err := cli.ContainerInspect(t.Context(), disk.Info().ID, client.ContainerInspectOptions{})
		require.NoError(t, err)
		assert.Equal(t, "67108864", in.Container.HostConfig.StorageOpt["size"])
		return
	}
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe, "%v", err)
	assert.Equal(t, "diskSize", fe.Field)
	assert.Equal(t, "64MiB", fe.Value)
	assert.Contains(t, fe.Problem, "storage driver")
	t.Logf("refused: %v", err)
	_, err = s.Get(t.Context(), diskNS, "disk")
	require.ErrorIs(t, err, service.ErrNotFound, "nothing left")
	assert.Empty(t, networksOf(t, cli, diskNS), "nor the network made for it")
}
