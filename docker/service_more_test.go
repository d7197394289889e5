package docker_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/servicetest"
)

// TestServiceReachedFromTask: a task whose networkMode is the namespace's
// network reaches a service by slug and by hostname.
func TestServiceReachedFromTask(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	web, err := s.Deploy(t.Context(), service.Spec{Slug: "web", Namespace: ns, Image: testenv.Image, Port: 8080,
		Command: servicetest.HTTPServer("hello-task"), Health: &service.HealthCheck{TCP: true}, Ephemeral: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = web.Delete(context.Background()) })
	_, err = servicetest.Wait(t, web)
	require.NoError(t, err)

	netName := docker.NetworkName(ns)
	r, _ := newRunner(t, docker.Config{Container: docker.Container{NetworkMode: netName}}, docker.WithAllow(docker.Allow{Networks: []string{netName}}))
	var out strings.Builder
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Stdout: &out, Commands: []string{
		"wget -q -O - http://web:8080/",
		"wget -q -O - http://" + web.Info().Hostname + ":8080/",
	}})
	require.NoError(t, err)
	assert.Equal(t, "hello-task\nhello-task\n", out.String())
}

// exposingImage commits the test image with EXPOSE lines, removed at the
// end of the test.
func exposingImage(t *testing.T, cli *client.Client, ports ...string) string {
	t.Helper()
	ref := "lading-test/expose:" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-" + strings.Join(ports, "-")
	c, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{Config: &container.Config{Image: testenv.Image, Cmd: []string{"true"}}})
	require.NoError(t, err)
	defer func() {
		_, _ = cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	}()
	var changes []string
	for _, p := range ports {
		changes = append(changes, "EXPOSE "+p)
	}
	_, err = cli.ContainerCommit(t.Context(), c.ID, client.ContainerCommitOptions{Reference: ref, Changes: changes})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
	return ref
}

func TestServicePortFromExpose(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, cli := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := namespaceDeletedAtEnd(t, s)

	one := exposingImage(t, cli, "8080")
	svc, err := s.Deploy(t.Context(), service.Spec{Slug: "one", Namespace: ns, Image: one, Command: servicetest.HTTPServer("exposed"),
		Health: &service.HealthCheck{HTTP: &service.HTTPCheck{}}, Ephemeral: true})
	require.NoError(t, err)
	assert.Equal(t, 8080, svc.Info().Port, "the image's one EXPOSE")
	_, err = servicetest.Wait(t, svc)
	require.NoError(t, err)
	addr, err := svc.Endpoint(t.Context())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)

	two := exposingImage(t, cli, "8080", "9090")
	_, err = s.Deploy(t.Context(), service.Spec{Slug: "two", Namespace: ns, Image: two, Command: "sleep 3600", Ephemeral: true})
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "port", fe.Field)
	assert.Contains(t, fe.Problem, "8080/tcp, 9090/tcp")
	// Naming the port settles it.
	svc, err = s.Deploy(t.Context(), service.Spec{Slug: "two", Namespace: ns, Image: two, Port: 9090, Command: "sleep 3600", Ephemeral: true})
	require.NoError(t, err)
	assert.Equal(t, 9090, svc.Info().Port)

	// The test image exposes nothing: no port, no endpoint.
	svc, err = s.Deploy(t.Context(), service.Spec{Slug: "none", Namespace: ns, Image: testenv.Image, Command: "sleep 3600", Ephemeral: true})
	require.NoError(t, err)
	_, err = svc.Endpoint(t.Context())
	require.ErrorIs(t, err, service.ErrNoPort)
}

func TestServicePullPolicy(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	r, _ := newRunner(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}})
	s, err := r.Services(docker.ServicesConfig{})
	require.NoError(t, err)
	ns := servicetest.Namespace(t)
	_, err = s.Deploy(t.Context(), service.Spec{Slug: "missing", Namespace: ns, Image: "lading-test/absent:never", Ephemeral: true})
	require.ErrorIs(t, err, runner.ErrImageNotFound)
	assert.Contains(t, err.Error(), "pullPolicy is NEVER")
	_, err = s.Get(t.Context(), ns, "missing")
	require.ErrorIs(t, err, service.ErrNotFound)
}

// TestServiceStartHelper: servicetest.Start deploys for the test, and the
// service is gone once the test's cleanups ran.
func TestServiceStartHelper(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	var id string
	t.Run("inner", func(t *testing.T) {
		svc := servicetest.Start(t, s, service.Spec{Slug: "web", Namespace: ns, Image: testenv.Image, Port: 8080,
			Command: servicetest.HTTPServer("x"), Health: &service.HealthCheck{HTTP: &service.HTTPCheck{}}})
		assert.True(t, svc.Info().Ephemeral)
		id = svc.Info().ID
	})
	_, err := s.Get(t.Context(), ns, "web")
	require.ErrorIs(t, err, service.ErrNotFound, "deleted by the inner test's cleanup (%s)", id)
}

// TestServiceSurvivesProgramRestart: a program (this test binary run again,
// as a child process) deploys a service for good and an ephemeral one,
// then exits. A new program lists and gets both back with their status;
// a prune removes the ephemeral one (its program has ended) and keeps the
// other, which is then deleted.
func TestServiceSurvivesProgramRestart(t *testing.T) {
	skipServicesOnPodman(t)
	if ns := os.Getenv("LADING_TEST_SERVICE_CHILD_NS"); ns != "" {
		// The child: deploy, print nothing, exit without deleting.
		r, err := docker.New(docker.Config{})
		require.NoError(t, err)
		s, err := r.Services(docker.ServicesConfig{})
		require.NoError(t, err)
		for _, spec := range []service.Spec{
			{Slug: "forgood", Namespace: ns, Image: testenv.Image, Port: 8080, Command: servicetest.HTTPServer("still-here"),
				Health: &service.HealthCheck{HTTP: &service.HTTPCheck{}, Interval: 100 * time.Millisecond}},
			{Slug: "mortal", Namespace: ns, Image: testenv.Image, Command: "sleep 3600", Ephemeral: true},
		} {
			_, err := s.Deploy(t.Context(), spec)
			require.NoError(t, err)
		}
		return
	}
	t.Parallel()
	s, cli := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := namespaceDeletedAtEnd(t, s)
	child := exec.Command(os.Args[0], "-test.run=^TestServiceSurvivesProgramRestart$", "-test.count=1")
	child.Env = append(os.Environ(), "LADING_TEST_SERVICE_CHILD_NS="+ns)
	out, err := child.CombinedOutput()
	require.NoError(t, err, "child: %s", out)

	list, err := s.List(t.Context(), ns)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "forgood", list[0].Info().Slug)
	assert.Equal(t, "mortal", list[1].Info().Slug)
	svc, err := s.Get(t.Context(), ns, "forgood")
	require.NoError(t, err)
	st, err := servicetest.Wait(t, svc)
	require.NoError(t, err)
	assert.Equal(t, service.Deployed, st.Status)
	addr, err := svc.Endpoint(t.Context())
	require.NoError(t, err)
	body, err := get(addr)
	require.NoError(t, err)
	assert.Equal(t, "still-here\n", body)

	// (A prune of a test running beside this one may remove it first.)
	res, err := s.Prune(t.Context(), docker.ServicePruneOptions{})
	require.NoError(t, err)
	assert.NotContains(t, res.Services, ns+"/forgood", "deployed for good")
	_, err = s.Get(t.Context(), ns, "mortal")
	require.ErrorIs(t, err, service.ErrNotFound, "its program has ended")
	list, err = s.List(t.Context(), ns)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NoError(t, svc.Delete(t.Context()))
	assert.Empty(t, networksOf(t, cli, ns))
}
