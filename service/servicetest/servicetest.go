// Package servicetest is a conformance suite for implementations of
// [service.Manager], as runnertest is for runners: an engine's test calls
// [Run] with a way to make its Manager, and every case runs against the
// real engine.
//
// The image must provide busybox's sh, httpd, wget and sleep (the offline
// test image lading-test/busybox:latest does). Every case deploys into a
// namespace of its own ("st-<case>-<random>"), ephemeral services only, and
// deletes what it deployed.
package servicetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
)

// Config describes the implementation under test.
type Config struct {
	// Image is the image the services run.
	Image string
	// New returns a Manager whose namespaces have the given env defaults.
	// It is called at least once per case, and a case may call it twice to
	// check that a new Manager finds what an earlier one deployed.
	New func(t *testing.T, namespaces map[string]service.Namespace) service.Manager
	// Skip maps case names to the reason they are skipped.
	Skip map[string]string
}

// Case is one conformance case.
type Case struct {
	Name string
	Test func(t *testing.T, s *Suite)
}

// Suite is what a case gets.
type Suite struct{ cfg Config }

// waitBound bounds every wait of the suite: far above what a busybox
// service needs, it only keeps a broken implementation from hanging.
const waitBound = 60 * time.Second

// Run runs every case of [Cases] against cfg, each a parallel subtest.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	require.NotEmpty(t, cfg.Image, "servicetest.Config.Image")
	require.NotNil(t, cfg.New, "servicetest.Config.New")
	known := map[string]bool{}
	for _, c := range Cases() {
		known[c.Name] = true
	}
	for name := range cfg.Skip {
		require.True(t, known[name], "servicetest.Config.Skip names no case: %s", name)
	}
	s := &Suite{cfg: cfg}
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			if why, ok := cfg.Skip[c.Name]; ok {
				t.Skip(why)
			}
			t.Parallel()
			c.Test(t, s)
		})
	}
}

// Cases returns the conformance cases.
func Cases() []Case {
	return []Case{
		{"DeployWaitEndpoint", testDeployWaitEndpoint},
		{"BadSlug", testBadSlug},
		{"TakenSlug", testTakenSlug},
		{"LimitsAboveMax", testLimitsAboveMax},
		{"ExitIsFailed", testExitIsFailed},
		{"CrashAfterDeployed", testCrashAfterDeployed},
		{"HealthHTTPFailing", testHealthHTTPFailing},
		{"HealthTCP", testHealthTCP},
		{"HealthCommand", testHealthCommand},
		{"SecretsMasked", testSecretsMasked},
		{"NamespaceEnv", testNamespaceEnv},
		{"NewManagerFindsServices", testNewManagerFindsServices},
		{"HostnameFromAnotherService", testHostname},
		{"LogsFollow", testLogsFollow},
		{"Stats", testStats},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"StreamSinks", testStreamSinks},
		{"HealthLog", testHealthLog},
		{"Exec", testExec},
		{"DeletingWhileStopping", testDeleting},
	}
}

// Namespace returns a fresh namespace name for t.
func Namespace(t *testing.T) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(t.Name())
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var clean []rune
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			clean = append(clean, r)
		}
	}
	if len(clean) > 20 {
		clean = clean[:20]
	}
	return "st-" + string(clean) + "-" + hex.EncodeToString(b[:])
}

// Manager returns a Manager for t, and registers the deletion of every
// service of namespace when t ends.
func (s *Suite) Manager(t *testing.T, namespace string, namespaces map[string]service.Namespace) service.Manager {
	t.Helper()
	m := s.cfg.New(t, namespaces)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitBound)
		defer cancel()
		list, err := m.List(ctx, namespace)
		if err != nil {
			t.Errorf("cleanup: list %s: %v", namespace, err)
			return
		}
		for _, svc := range list {
			if err := svc.Delete(ctx); err != nil {
				t.Errorf("cleanup: delete %s: %v", svc.Info().Slug, err)
			}
		}
	})
	return m
}

// HTTPServer is the command of a busybox service serving body at / on
// port 8080.
func HTTPServer(body string) string {
	return fmt.Sprintf(`sh -c 'mkdir -p /tmp/www && echo %s > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'`, body)
}

// Deploy deploys spec (in namespace, ephemeral, on the suite's image when
// it names none) and fails t on an error.
func (s *Suite) Deploy(t *testing.T, m service.Manager, namespace string, spec service.Spec) service.Service {
	t.Helper()
	spec.Namespace, spec.Ephemeral = namespace, true
	if spec.Image == "" {
		spec.Image = s.cfg.Image
	}
	svc, err := m.Deploy(t.Context(), spec)
	require.NoError(t, err, "deploy %s", spec.Slug)
	return svc
}

// Start deploys spec as an ephemeral service for the test t: it waits for
// it to be DEPLOYED (failing t otherwise, with the reason) and deletes it
// when t ends, as testcontainers-go's containers do. Should the test
// binary die before its cleanups, a prune removes the service (see
// [service.Spec.Ephemeral]).
func Start(t testing.TB, m service.Manager, spec service.Spec) service.Service {
	t.Helper()
	spec.Ephemeral = true
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	svc, err := m.Deploy(ctx, spec)
	require.NoError(t, err, "deploy %s", spec.Slug)
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), waitBound)
		defer dcancel()
		if err := svc.Delete(dctx); err != nil {
			t.Errorf("delete service %s: %v", spec.Slug, err)
		}
	})
	_, err = service.Wait(ctx, svc)
	require.NoError(t, err, "wait for %s", spec.Slug)
	return svc
}

// Wait waits for svc within the suite's bound.
func Wait(t *testing.T, svc service.Service) (service.State, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	return service.Wait(ctx, svc)
}

// WaitFailed reads svc's status until it is FAILED (a service without a
// health check that exits at once may be seen DEPLOYED first) and returns
// that state.
func WaitFailed(t *testing.T, svc service.Service) service.State {
	t.Helper()
	var st service.State
	var err error
	require.Eventually(t, func() bool {
		st, err = svc.Status(t.Context())
		return err == nil && st.Status == service.Failed
	}, waitBound, 50*time.Millisecond, "last state %+v, error %v", st, err)
	return st
}

func httpGet(t *testing.T, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "GET http://%s/", addr)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return string(body)
}

func httpService(slug, body string) service.Spec {
	return service.Spec{
		Slug:    slug,
		Port:    8080,
		Command: HTTPServer(body),
		Health:  &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/"}, Interval: 100 * time.Millisecond},
		Memory:  64 << 20,
		CPU:     500,
	}
}

func testDeployWaitEndpoint(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, httpService("web", "hello-from-web"))
	info := svc.Info()
	assert.Equal(t, "web", info.Slug)
	assert.Equal(t, ns, info.Namespace)
	assert.Equal(t, "web", info.Name, "the name defaults to the slug")
	assert.True(t, strings.HasPrefix(info.Hostname, "web-") && len(info.Hostname) > len("web-"), "hostname %q is <slug>-<unique id>", info.Hostname)
	st, err := Wait(t, svc)
	require.NoError(t, err)
	assert.Equal(t, service.Deployed, st.Status)
	require.NotNil(t, st.Health)
	assert.True(t, st.Health.Healthy)
	addr, err := svc.Endpoint(t.Context())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), "endpoint %s on the loopback", addr)
	assert.Equal(t, "hello-from-web\n", httpGet(t, addr))
}

func testBadSlug(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	for _, slug := range []string{"", "Web", "web_1", "-web", "web-", "1web", strings.Repeat("a", 41)} {
		_, err := m.Deploy(t.Context(), service.Spec{Slug: slug, Namespace: ns, Image: s.cfg.Image, Ephemeral: true})
		require.ErrorIs(t, err, service.ErrInvalidSpec, "slug %q", slug)
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "slug", fe.Field)
		assert.Equal(t, slug, fe.Value)
	}
	_, err := m.Deploy(t.Context(), service.Spec{Slug: "ok", Namespace: "Bad NS", Image: s.cfg.Image})
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "namespace", fe.Field)
}

func testTakenSlug(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	spec := service.Spec{Slug: "db", Command: "sleep 3600"}
	s.Deploy(t, m, ns, spec)
	spec.Namespace, spec.Image, spec.Ephemeral = ns, s.cfg.Image, true
	_, err := m.Deploy(t.Context(), spec)
	require.ErrorIs(t, err, service.ErrSlugTaken)
	assert.Contains(t, err.Error(), "db")
	// The same slug in another namespace is free.
	other := Namespace(t)
	m2 := s.Manager(t, other, nil)
	s.Deploy(t, m2, other, service.Spec{Slug: "db", Command: "sleep 3600"})
}

func testLimitsAboveMax(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	_, err := m.Deploy(t.Context(), service.Spec{Slug: "big", Namespace: ns, Image: s.cfg.Image, Memory: 9 << 30, Ephemeral: true})
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "memory", fe.Field)
	assert.Equal(t, "9GiB", fe.Value)
	assert.Contains(t, fe.Problem, "8GiB")
	_, err = m.Deploy(t.Context(), service.Spec{Slug: "big", Namespace: ns, Image: s.cfg.Image, CPU: 3000, Ephemeral: true})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "cpu", fe.Field)
	assert.Contains(t, fe.Problem, "2")
}

func testExitIsFailed(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	// The check's first probe comes long after the exit, so the service is
	// never DEPLOYED on its way to FAILED.
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "crash", Command: `sh -c 'echo boom-line-1; echo boom-line-2 >&2; exit 3'`,
		Health: &service.HealthCheck{Command: []string{"true"}, Interval: 5 * time.Second}})
	st, err := Wait(t, svc)
	var fe *service.FailedError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, service.ErrFailed)
	assert.Equal(t, service.Failed, st.Status)
	assert.True(t, st.Exited)
	assert.Equal(t, 3, st.ExitCode)
	assert.Contains(t, st.Reason, "exited with code 3")
	assert.Contains(t, st.Reason, "boom-line-1")
	assert.Contains(t, st.Reason, "boom-line-2")
}

func testCrashAfterDeployed(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	// No health check: DEPLOYED once running; it exits 3 s later.
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "late", Command: `sh -c 'sleep 3; echo bye; exit 7'`})
	st, err := Wait(t, svc)
	require.NoError(t, err)
	require.Equal(t, service.Deployed, st.Status)
	// Nothing asked it to stop: the status read afterwards turns FAILED.
	require.Eventually(t, func() bool {
		st, err = svc.Status(t.Context())
		return err == nil && st.Status == service.Failed
	}, waitBound, 100*time.Millisecond, "last state %+v", st)
	assert.Contains(t, st.Reason, "exited with code 7")
	assert.Contains(t, st.Reason, "bye")
}

func testHealthHTTPFailing(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	spec := httpService("nopage", "x")
	// The start period lets httpd listen before the probes count, however
	// loaded the machine: the failing probe must be the 404, not a refused
	// connection.
	spec.Health = &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/missing"}, Interval: 100 * time.Millisecond, Retries: 2, StartPeriod: 3 * time.Second}
	svc := s.Deploy(t, m, ns, spec)
	st, err := Wait(t, svc)
	require.ErrorIs(t, err, service.ErrFailed)
	assert.Contains(t, st.Reason, "health check failing")
	assert.Contains(t, st.Reason, "404")
	require.NotNil(t, st.Health)
	assert.False(t, st.Health.Healthy)

	// Expecting that status passes.
	spec = httpService("wants404", "x")
	spec.Health = &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/missing", Status: 404}, Interval: 100 * time.Millisecond}
	st, err = Wait(t, s.Deploy(t, m, ns, spec))
	require.NoError(t, err)
	assert.Equal(t, service.Deployed, st.Status)
}

func testHealthTCP(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	spec := httpService("tcp", "x")
	spec.Health = &service.HealthCheck{TCP: true, Interval: 100 * time.Millisecond}
	st, err := Wait(t, s.Deploy(t, m, ns, spec))
	require.NoError(t, err)
	assert.Equal(t, service.Deployed, st.Status)

	// Nothing listens on the port: FAILED after the retries.
	spec = service.Spec{Slug: "deaf", Port: 8080, Command: "sleep 3600",
		Health: &service.HealthCheck{TCP: true, Interval: 100 * time.Millisecond, Retries: 2}}
	st, err = Wait(t, s.Deploy(t, m, ns, spec))
	require.ErrorIs(t, err, service.ErrFailed)
	assert.Contains(t, st.Reason, "health check failing")
}

func testHealthCommand(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	// Healthy from the third probe on: PENDING first, then DEPLOYED.
	spec := service.Spec{Slug: "cmd", Command: "sleep 3600", Health: &service.HealthCheck{
		Command:  []string{"sh", "-c", "echo x >> /tmp/n; [ $(wc -l < /tmp/n) -ge 3 ]"},
		Interval: 100 * time.Millisecond, Retries: 10}}
	svc := s.Deploy(t, m, ns, spec)
	st, err := svc.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, service.Pending, st.Status, "just deployed: %+v", st)
	st, err = Wait(t, svc)
	require.NoError(t, err)
	assert.Equal(t, service.Deployed, st.Status)

	spec = service.Spec{Slug: "cmdbad", Command: "sleep 3600", Health: &service.HealthCheck{
		Command: []string{"sh", "-c", "echo not-ready-yet; exit 1"}, Interval: 100 * time.Millisecond, Retries: 2}}
	st, err = Wait(t, s.Deploy(t, m, ns, spec))
	require.ErrorIs(t, err, service.ErrFailed)
	assert.Contains(t, st.Reason, "health check failing")
	assert.Contains(t, st.Reason, "not-ready-yet")
}

const secretValue = "s3cret-service-t0ken"

func testSecretsMasked(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "secret", SecretEnv: map[string]string{"TOKEN": secretValue},
		Command: `sh -c 'echo token=$TOKEN; echo err=$TOKEN >&2; exit 4'`})
	st := WaitFailed(t, svc)
	assert.NotContains(t, (&service.FailedError{Slug: "secret", State: st}).Error(), secretValue)
	assert.NotContains(t, st.Reason, secretValue)
	assert.Contains(t, st.Reason, "token=****")
	var out, errw bytes.Buffer
	require.NoError(t, svc.Logs(t.Context(), service.LogOptions{Stdout: &out, Stderr: &errw}))
	assert.Equal(t, "token=****\n", out.String())
	assert.Equal(t, "err=****\n", errw.String())
	// A new manager masks them too: the masking is not held in memory.
	again, err := s.cfg.New(t, nil).Get(t.Context(), ns, "secret")
	require.NoError(t, err)
	out.Reset()
	require.NoError(t, again.Logs(t.Context(), service.LogOptions{Stdout: &out}))
	assert.Equal(t, "token=****\n", out.String())
}

func testNamespaceEnv(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, map[string]service.Namespace{ns: {Env: map[string]string{"A": "from-ns", "B": "from-ns"}}})
	env, err := service.ParseEnv("B=from-service\n")
	require.NoError(t, err)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "env", Env: env, Command: `sh -c 'echo A=$A B=$B; exit 0'`})
	WaitFailed(t, svc) // it exits
	var out bytes.Buffer
	require.NoError(t, svc.Logs(t.Context(), service.LogOptions{Stdout: &out}))
	assert.Equal(t, "A=from-ns B=from-service\n", out.String())
}

func testNewManagerFindsServices(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	a := s.Deploy(t, m, ns, httpService("alpha", "a"))
	b := s.Deploy(t, m, ns, service.Spec{Slug: "beta", Name: "Beta service", Command: "sleep 3600"})
	_, err := Wait(t, a)
	require.NoError(t, err)
	_, err = Wait(t, b)
	require.NoError(t, err)

	fresh := s.cfg.New(t, nil) // as a restarted program would
	list, err := fresh.List(t.Context(), ns)
	require.NoError(t, err)
	var slugs []string
	for _, svc := range list {
		slugs = append(slugs, svc.Info().Slug)
		st, err := svc.Status(t.Context())
		require.NoError(t, err)
		assert.Equal(t, service.Deployed, st.Status, svc.Info().Slug)
	}
	sort.Strings(slugs)
	assert.Equal(t, []string{"alpha", "beta"}, slugs)
	got, err := fresh.Get(t.Context(), ns, "beta")
	require.NoError(t, err)
	assert.Equal(t, b.Info(), got.Info())
	assert.Equal(t, "Beta service", got.Info().Name)
	addr, err := got.Endpoint(t.Context())
	require.ErrorIs(t, err, service.ErrNoPort, "beta has no port: %s", addr)
	alpha, err := fresh.Get(t.Context(), ns, "alpha")
	require.NoError(t, err)
	addr, err = alpha.Endpoint(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "a\n", httpGet(t, addr))

	_, err = fresh.Get(t.Context(), ns, "gamma")
	require.ErrorIs(t, err, service.ErrNotFound)
}

func testHostname(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	web := s.Deploy(t, m, ns, httpService("web", "reached-by-name"))
	_, err := Wait(t, web)
	require.NoError(t, err)
	host := web.Info().Hostname
	// The client is healthy only once its wget of the web service by slug
	// and by hostname got the page: a real HTTP request between two
	// services of the namespace.
	check := fmt.Sprintf("wget -q -O - http://web:8080/ | grep -q reached-by-name && wget -q -O - http://%s:8080/ | grep -q reached-by-name", host)
	client := s.Deploy(t, m, ns, service.Spec{Slug: "client", Command: "sleep 3600",
		Health: &service.HealthCheck{Command: []string{"sh", "-c", check}, Interval: 200 * time.Millisecond, Retries: 20}})
	st, err := Wait(t, client)
	require.NoError(t, err, "state %+v", st)
	assert.Equal(t, service.Deployed, st.Status)

	// From another namespace it is not reachable. (timeout bounds the
	// wget: Debian busybox 1.35's wget -T crashes.)
	other := Namespace(t)
	m2 := s.Manager(t, other, nil)
	stranger := s.Deploy(t, m2, other, service.Spec{Slug: "stranger", Command: "sleep 3600",
		Health: &service.HealthCheck{Command: []string{"sh", "-c", fmt.Sprintf("timeout 1 wget -q -O - http://%s:8080/", host)}, Interval: 200 * time.Millisecond, Retries: 2}})
	_, err = Wait(t, stranger)
	require.ErrorIs(t, err, service.ErrFailed)
}

// lines collects written lines, safe for concurrent use.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, string(p))
	return len(p), nil
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

func testLogsFollow(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "talker",
		Command: `sh -c 'i=0; while [ $i -lt 20 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done; echo done >&2; exec sleep 3600'`})
	var out, errw lines
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Logs(ctx, service.LogOptions{Follow: true, Stdout: &out, Stderr: &errw}) }()
	require.Eventually(t, func() bool { return len(errw.all()) == 1 }, waitBound, 50*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Logs did not return 10 s after its ctx was cancelled")
	}
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("line-%d\n", i))
	}
	assert.Equal(t, want, out.all(), "each line once, in order, one Write each")
	assert.Equal(t, []string{"done\n"}, errw.all())

	// Since: nothing was logged after now; everything after a time before
	// the start.
	var since bytes.Buffer
	require.NoError(t, svc.Logs(t.Context(), service.LogOptions{Since: time.Now(), Stdout: &since}))
	assert.Empty(t, since.String(), "nothing logged since now")
	since.Reset()
	require.NoError(t, svc.Logs(t.Context(), service.LogOptions{Since: time.Now().Add(-time.Hour), Stdout: &since}))
	assert.Equal(t, strings.Join(want, ""), since.String())

	// Tail.
	var tail bytes.Buffer
	require.NoError(t, svc.Logs(t.Context(), service.LogOptions{Tail: 2, Stdout: &tail}))
	assert.Equal(t, "line-19\n", tail.String(), "the last two lines of both streams, stdout's one")
}

func testStats(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "busy", Memory: 64 << 20, Command: `sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 3600'`})
	_, err := Wait(t, svc)
	require.NoError(t, err)
	before := time.Now().Add(-5 * time.Second).Unix()
	var st service.Stats
	require.Eventually(t, func() bool {
		st, err = svc.Stats(t.Context())
		return err == nil && st.CPUUsage > 0
	}, waitBound, 200*time.Millisecond, "stats %+v, err %v", st, err)
	assert.GreaterOrEqual(t, st.Timestamp, before)
	assert.Positive(t, st.MemoryUsage)
	assert.Equal(t, uint64(64<<20), st.MemoryLimit)
	assert.GreaterOrEqual(t, st.PidsCurrent, uint64(1))
}

func testDeleteIdempotent(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "gone", Command: "sleep 3600"})
	require.NoError(t, svc.Delete(t.Context()))
	require.NoError(t, svc.Delete(t.Context()), "a second Delete")
	_, err := svc.Status(t.Context())
	require.ErrorIs(t, err, service.ErrNotFound)
	_, err = m.Get(t.Context(), ns, "gone")
	require.ErrorIs(t, err, service.ErrNotFound)
	list, err := m.List(t.Context(), ns)
	require.NoError(t, err)
	assert.Empty(t, list)
	// The slug is free again.
	s.Deploy(t, m, ns, service.Spec{Slug: "gone", Command: "sleep 3600"})

	// A cancelled caller still deletes.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	again, err := m.Get(t.Context(), ns, "gone")
	require.NoError(t, err)
	require.NoError(t, again.Delete(ctx))
	_, err = m.Get(t.Context(), ns, "gone")
	require.ErrorIs(t, err, service.ErrNotFound)
}

func testStreamSinks(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "sinks", SecretEnv: map[string]string{"TOKEN": secretValue},
		Command: `sh -c 'echo hi $TOKEN; echo oops >&2; exec sleep 3600'`})
	var out, errw lines
	var mu sync.Mutex
	var samples []service.Stats
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- service.Stream(ctx, svc, service.Sinks{Stdout: &out, Stderr: &errw, StatsPeriod: 100 * time.Millisecond,
			Stats: func(st service.Stats) { mu.Lock(); samples = append(samples, st); mu.Unlock() }})
	}()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(out.all()) == 1 && len(errw.all()) == 1 && len(samples) >= 3
	}, waitBound, 50*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not return 10 s after its ctx was cancelled")
	}
	assert.Equal(t, []string{"hi ****\n"}, out.all())
	assert.Equal(t, []string{"oops\n"}, errw.all())
	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, samples[0].PidsCurrent)
}

func testHealthLog(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "logready", SecretEnv: map[string]string{"TOKEN": secretValue},
		Command: `sh -c 'echo starting; sleep 2; echo "ready to accept connections $TOKEN" >&2; exec sleep 3600'`,
		Health:  &service.HealthCheck{Log: `ready to accept connections`, Interval: 100 * time.Millisecond, Retries: 50}})
	st, err := svc.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, service.Pending, st.Status, "before the line: %+v", st)
	st, err = Wait(t, svc)
	require.NoError(t, err)
	require.NotNil(t, st.Health)
	assert.Contains(t, st.Health.Output, "ready to accept connections ****", "the line, masked")

	svc = s.Deploy(t, m, ns, service.Spec{Slug: "lognever", Command: `sh -c 'echo not yet; exec sleep 3600'`,
		Health: &service.HealthCheck{Log: `^ready$`, Interval: 100 * time.Millisecond, Retries: 3}})
	st, err = Wait(t, svc)
	require.ErrorIs(t, err, service.ErrFailed)
	assert.Contains(t, st.Reason, "no log line matched")
}

func testExec(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "exec", Command: "sleep 3600", SecretEnv: map[string]string{"TOKEN": secretValue}})
	ex, ok := svc.(service.Execer)
	require.True(t, ok, "%T does not implement service.Execer", svc)
	_, err := Wait(t, svc)
	require.NoError(t, err)
	res, err := ex.Exec(t.Context(), []string{"sh", "-c", "echo out $TOKEN; echo err >&2; exit 5"})
	require.NoError(t, err)
	assert.Equal(t, 5, res.ExitCode)
	assert.Equal(t, "out ****\n", res.Stdout)
	assert.Equal(t, "err\n", res.Stderr)
	assert.False(t, res.Truncated)
	res, err = ex.Exec(t.Context(), []string{"true"})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
}

// testDeleting: a service that ignores SIGTERM is DELETING, for another
// handle too, while its Delete waits to kill it.
func testDeleting(t *testing.T, s *Suite) {
	ns := Namespace(t)
	m := s.Manager(t, ns, nil)
	svc := s.Deploy(t, m, ns, service.Spec{Slug: "stubborn", Command: `sh -c 'trap "" TERM; while true; do sleep 0.1; done'`})
	_, err := Wait(t, svc)
	require.NoError(t, err)
	other, err := s.cfg.New(t, nil).Get(t.Context(), ns, "stubborn")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- svc.Delete(context.Background()) }()
	var st service.State
	require.Eventually(t, func() bool {
		st, err = other.Status(t.Context())
		return err == nil && st.Status == service.Deleting
	}, waitBound, 20*time.Millisecond, "last %+v %v", st, err)
	require.NoError(t, <-done)
	_, err = other.Status(t.Context())
	require.ErrorIs(t, err, service.ErrNotFound)
}
