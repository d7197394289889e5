package docker_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// TestEngineCPUsAskedAgainAfterAFailure puts a proxy in front of the
// engine whose first answer to /info is an error: the CPU count is asked
// again on the next run, which then refuses a limit above it.
func TestEngineCPUsAskedAgainAfterAFailure(t *testing.T) {
	testenv.Engine(t)
	sock := filepath.Join(t.TempDir(), "engine.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "engine"}) },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", "/var/run/docker.sock")
		}},
	}
	var infos atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/info") && infos.Add(1) == 1 {
			http.Error(w, `{"message":"injected failure"}`, http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	r, err := docker.New(docker.Config{Host: "unix://" + sock, Container: docker.Container{CPU: cpu.Config{CPUs: 4096 * 1000}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	task := runner.Task{Image: testenv.Image, Commands: []string{"true"}}

	// The engine's count is unknown: the engine itself refuses the limit.
	_, err = r.Run(t.Context(), task)
	require.Error(t, err)
	// Asked again: lading refuses it, naming what the engine has.
	_, err = r.Run(t.Context(), task)
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "CPUs the engine has")
	assert.Equal(t, int32(2), infos.Load())
}
