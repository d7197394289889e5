package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/servicetest"
)

// TestServiceHostVolumes: a host path is mounted only when the host
// program allows volumes, as for tasks; refused, nothing is left.
func TestServiceHostVolumes(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("from-the-host\n"), 0o644))
	spec := func(ns string) service.Spec {
		return service.Spec{Slug: "reader", Namespace: ns, Image: testenv.Image, Ephemeral: true,
			HostVolumes: []service.HostVolume{{HostPath: dir, Path: "/in", ReadOnly: true}},
			Command:     `sh -c 'cat /in/f; touch /in/g || echo read-only; exec sleep 3600'`}
	}

	denied, cli := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	_, err := denied.Deploy(t.Context(), spec(ns))
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, service.ErrInvalidSpec)
	assert.Equal(t, "hostVolumes[0].hostPath", fe.Field)
	assert.Equal(t, dir, fe.Value)
	assert.Contains(t, fe.Problem, "Allow{Volumes: true}")
	assert.Empty(t, networksOf(t, cli, ns), "refused before any network was made")

	r, _ := newRunner(t, docker.Config{}, docker.WithAllow(docker.Allow{Volumes: true}))
	allowed, err := r.Services(docker.ServicesConfig{StopTimeout: -1})
	require.NoError(t, err)
	svc, err := allowed.Deploy(t.Context(), spec(ns))
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Delete(context.Background()) })
	require.Eventually(t, func() bool {
		var out bytes.Buffer
		_ = svc.Logs(t.Context(), service.LogOptions{Stdout: &out})
		return out.String() == "from-the-host\nread-only\n"
	}, time.Minute, 100*time.Millisecond)
	_, err = os.Stat(filepath.Join(dir, "g"))
	assert.True(t, os.IsNotExist(err), "read-only: nothing written on the host")
}

// randomSubnet returns a /24 in 10.0.0.0/8 that no network of the engine
// uses.
func randomSubnet(t *testing.T, cli *client.Client) string {
	t.Helper()
	list, err := cli.NetworkList(t.Context(), client.NetworkListOptions{})
	require.NoError(t, err)
	used := map[string]bool{}
	for _, n := range list.Items {
		for _, c := range n.IPAM.Config {
			used[c.Subnet.String()] = true
		}
	}
	for {
		var b [2]byte
		_, _ = rand.Read(b[:])
		s := fmt.Sprintf("10.%d.%d.0/24", 100+int(b[0])%150, b[1])
		if !used[s] {
			return s
		}
	}
}

// TestServiceFixedIP: a service has the fixed IP asked for on its
// namespace's network, another service reaches it there, the IP is kept
// by an update, and a taken IP is a clear error.
func TestServiceFixedIP(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	cli := testenv.Engine(t)
	ns := servicetest.Namespace(t)
	subnet := randomSubnet(t, cli)
	ip := strings.TrimSuffix(subnet, "0/24") + "10"
	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1, Namespaces: map[string]service.Namespace{ns: {Subnet: subnet}}})
	t.Cleanup(func() {
		list, _ := s.List(context.Background(), ns)
		for _, svc := range list {
			_ = svc.Delete(context.Background())
		}
	})
	web := webSpec(ns, "fixed-ip", 0)
	web.IP = ip
	svc, err := s.Deploy(t.Context(), web)
	require.NoError(t, err)
	_, err = servicetest.Wait(t, svc)
	require.NoError(t, err)
	in, err := cli.ContainerInspect(t.Context(), svc.Info().ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.Contains(t, in.Container.NetworkSettings.Networks, docker.NetworkName(ns))
	assert.Equal(t, ip, in.Container.NetworkSettings.Networks[docker.NetworkName(ns)].IPAddress.String())

	// Reached at that IP by another service of the namespace.
	caller, err := s.Deploy(t.Context(), service.Spec{Slug: "client", Namespace: ns, Image: testenv.Image, Command: "sleep 3600", Ephemeral: true,
		Health: &service.HealthCheck{Command: []string{"sh", "-c", "wget -q -O - http://" + ip + ":8080/ | grep -q fixed-ip"}, Interval: 100 * time.Millisecond, Retries: 50}})
	require.NoError(t, err)
	_, err = servicetest.Wait(t, caller)
	require.NoError(t, err)

	// The IP is taken.
	clash := service.Spec{Slug: "clash", Namespace: ns, Image: testenv.Image, Command: "sleep 3600", IP: ip, Ephemeral: true}
	_, err = s.Deploy(t.Context(), clash)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe, "%v", err)
	assert.Equal(t, "ip", fe.Field)
	assert.Contains(t, fe.Problem, "taken")
	_, err = s.Get(t.Context(), ns, "clash")
	require.ErrorIs(t, err, service.ErrNotFound, "nothing left of it")

	// An update keeps the IP (the old container stops first: one address,
	// one holder).
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	web.Command = servicetest.HTTPServer("fixed-ip-v2")
	v2, err := s.Update(ctx, web)
	require.NoError(t, err)
	in, err = cli.ContainerInspect(t.Context(), v2.Info().ID, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.Equal(t, ip, in.Container.NetworkSettings.Networks[docker.NetworkName(ns)].IPAddress.String())
}

// TestServiceFromBuild: a service whose image is built from a
// Containerfile, with its port from the EXPOSE the build wrote.
func TestServiceFromBuild(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, cli := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM "+testenv.Image+"\n"+
		"RUN mkdir -p /www && echo built > /www/index.html\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"), 0o644))
	name := fmt.Sprintf("lading-test/svcbuild-%d", os.Getpid())
	var ref string
	t.Cleanup(func() {
		if ref != "" {
			testenv.RemoveImage(t, cli, ref)
		}
	})
	svc, err := s.Deploy(t.Context(), service.Spec{Slug: "built", Namespace: ns, Build: &build.Spec{Context: dir, Name: name}, Ephemeral: true,
		Health: &service.HealthCheck{HTTP: &service.HTTPCheck{}, Interval: 100 * time.Millisecond}})
	require.NoError(t, err)
	ref = svc.Info().Image
	t.Cleanup(func() { _ = svc.Delete(context.Background()) })
	assert.True(t, strings.HasPrefix(ref, name+":"), "the built image: %s", ref)
	assert.Equal(t, 8080, svc.Info().Port, "from the built image's EXPOSE")
	_, err = servicetest.Wait(t, svc)
	require.NoError(t, err)
	addr, err := svc.Endpoint(t.Context())
	require.NoError(t, err)
	body, err := get(addr)
	require.NoError(t, err)
	assert.Equal(t, "built\n", body)
}
