package docker_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/servicetest"
)

func webSpec(ns, body string, hostPort int) service.Spec {
	return service.Spec{Slug: "web", Namespace: ns, Image: testenv.Image, Port: 8080, HostPort: hostPort, Ephemeral: true,
		Command: servicetest.HTTPServer(body), Health: &service.HealthCheck{HTTP: &service.HTTPCheck{}, Interval: 50 * time.Millisecond}}
}

func get(addr string) (string, error) {
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestServiceUpdate(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := namespaceDeletedAtEnd(t, s)
	v1, err := s.Deploy(t.Context(), webSpec(ns, "v1", 0))
	require.NoError(t, err)
	_, err = servicetest.Wait(t, v1)
	require.NoError(t, err)
	// A client on the namespace's network, healthy while "web" answers.
	client, err := s.Deploy(t.Context(), service.Spec{Slug: "client", Namespace: ns, Image: testenv.Image, Command: "sleep 3600", Ephemeral: true,
		Health: &service.HealthCheck{Command: []string{"wget", "-q", "-O", "/dev/null", "http://" + v1.Info().Hostname + ":8080/"}, Interval: 100 * time.Millisecond}})
	require.NoError(t, err)
	_, err = servicetest.Wait(t, client)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	v2, err := s.Update(ctx, webSpec(ns, "v2", 0))
	require.NoError(t, err)
	assert.Equal(t, v1.Info().Hostname, v2.Info().Hostname, "the hostname is kept")
	assert.NotEqual(t, v1.Info().ID, v2.Info().ID)
	addr, err := v2.Endpoint(t.Context())
	require.NoError(t, err)
	body, err := get(addr)
	require.NoError(t, err)
	assert.Equal(t, "v2\n", body)
	_, err = v1.Status(t.Context())
	require.ErrorIs(t, err, service.ErrNotFound, "the old container is gone")
	list, err := s.List(t.Context(), ns)
	require.NoError(t, err)
	require.Len(t, list, 2)
	got, err := s.Get(t.Context(), ns, "web")
	require.NoError(t, err)
	assert.Equal(t, v2.Info().ID, got.Info().ID, "the new one has the name")
	st, err := client.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, service.Deployed, st.Status, "the client still reaches web by its hostname")

	// An update that never gets healthy leaves the service as it was.
	bad := webSpec(ns, "v3", 0)
	bad.Health = &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/missing"}, Interval: 50 * time.Millisecond, Retries: 2}
	_, err = s.Update(ctx, bad)
	require.ErrorIs(t, err, service.ErrFailed)
	list, err = s.List(t.Context(), ns)
	require.NoError(t, err)
	require.Len(t, list, 2, "the failed new container was removed")
	got, err = s.Get(t.Context(), ns, "web")
	require.NoError(t, err)
	assert.Equal(t, v2.Info().ID, got.Info().ID)
	body, err = get(addr)
	require.NoError(t, err)
	assert.Equal(t, "v2\n", body)

	_, err = s.Update(ctx, service.Spec{Slug: "nosuch", Namespace: ns, Image: testenv.Image})
	require.ErrorIs(t, err, service.ErrNotFound)
}

// TestServiceUpdateFixedPortUnderTraffic updates a service on a fixed host
// port while a client requests it every 5 ms, and reports how long the
// port was dark (a figure, not a bound).
func TestServiceUpdateFixedPortUnderTraffic(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := namespaceDeletedAtEnd(t, s)
	probe, err := s.Deploy(t.Context(), service.Spec{Slug: "probe", Namespace: ns, Image: testenv.Image, Port: 8080, Command: "sleep 3600", Ephemeral: true})
	require.NoError(t, err)
	addr, err := probe.Endpoint(t.Context())
	require.NoError(t, err)
	require.NoError(t, probe.Delete(t.Context()))
	_, portText, _ := cutLast(addr, ":")
	port, _ := strconv.Atoi(portText)

	v1, err := s.Deploy(t.Context(), webSpec(ns, "v1", port))
	require.NoError(t, err)
	_, err = servicetest.Wait(t, v1)
	require.NoError(t, err)

	var mu sync.Mutex
	var seen []string
	var dark, longest time.Duration
	var darkSince time.Time
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			body, err := get(addr)
			mu.Lock()
			now := time.Now()
			if err != nil {
				if darkSince.IsZero() {
					darkSince = now
				}
			} else {
				if !darkSince.IsZero() {
					d := now.Sub(darkSince)
					dark += d
					longest = max(longest, d)
					darkSince = time.Time{}
				}
				if len(seen) == 0 || seen[len(seen)-1] != body {
					seen = append(seen, body)
				}
			}
			mu.Unlock()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = s.Update(ctx, webSpec(ns, "v2", port))
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"v1\n", "v2\n"}, seen, "v1 until the update, v2 after")
	t.Logf("fixed host port dark for %s in all, longest gap %s", dark, longest)
}

// TestServiceUpdateUnderTrafficOnNetwork updates a service (free host
// port) while a client service of the namespace requests it by slug every
// 20 ms, and reports how long its name went dark (a figure, not a bound):
// from the client's last answer before a run of failures to its first
// answer after, timed by the client's /proc/uptime (10 ms steps).
func TestServiceUpdateUnderTrafficOnNetwork(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := namespaceDeletedAtEnd(t, s)
	v1, err := s.Deploy(t.Context(), webSpec(ns, "v1", 0))
	require.NoError(t, err)
	_, err = servicetest.Wait(t, v1)
	require.NoError(t, err)
	client, err := s.Deploy(t.Context(), service.Spec{Slug: "client", Namespace: ns, Image: testenv.Image, Ephemeral: true,
		Command: `sh -c 'while true; do b=$(timeout 1 wget -q -O - http://web:8080/ 2>/dev/null || echo FAIL); read up rest < /proc/uptime; echo "$up $b"; usleep 20000; done'`})
	require.NoError(t, err)
	logLines := func() []string {
		var out strings.Builder
		require.NoError(t, client.Logs(t.Context(), service.LogOptions{Stdout: &out}))
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	count := func(body string) int {
		n := 0
		for _, l := range logLines() {
			if strings.HasSuffix(l, " "+body) {
				n++
			}
		}
		return n
	}
	tail := func() []string { l := logLines(); return l[max(0, len(l)-5):] }
	require.Eventually(t, func() bool { return count("v1") >= 5 }, time.Minute, 50*time.Millisecond, "client: %q", tail())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = s.Update(ctx, webSpec(ns, "v2", 0))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return count("v2") >= 25 }, time.Minute, 50*time.Millisecond, "client: %q", tail())

	var fails int
	var dark, longest float64
	lastOK := -1.0
	inGap := false
	var first, last string
	for _, l := range logLines() {
		up, body, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		at, err := strconv.ParseFloat(up, 64)
		require.NoError(t, err, l)
		if body == "FAIL" {
			fails++
			inGap = true
			continue
		}
		if first == "" {
			first = body
		}
		last = body
		if inGap && lastOK >= 0 {
			d := at - lastOK
			dark += d
			longest = max(longest, d)
		}
		inGap = false
		lastOK = at
	}
	assert.Equal(t, "v1", first)
	assert.Equal(t, "v2", last)
	t.Logf("hostname on the network: %d failed requests, dark for %.2fs in all, longest gap %.2fs", fails, dark, longest)
}
