package dockertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

// PingTimeout bounds the check that an engine answers.
const PingTimeout = 10 * time.Second

// New returns a runner for cfg and opts (see [docker.New]), closed when t
// and its subtests have finished.
// It skips t when no engine answers at cfg.Host (empty: DOCKER_HOST, then
// the default socket), unless the CI environment variable is set, when it
// fails t. An invalid cfg fails t.
func New(t testing.TB, cfg docker.Config, opts ...docker.Option) *docker.Runner {
	t.Helper()
	copts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		copts = append(copts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(copts...)
	if err != nil {
		unavailable(t, "docker client: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), PingTimeout)
	defer cancel()
	_, err = cli.Ping(ctx, client.PingOptions{})
	host := cli.DaemonHost()
	_ = cli.Close()
	if err != nil {
		unavailable(t, "no container engine at "+host+": "+err.Error())
	}
	r, err := docker.New(cfg, opts...)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("dockertest: CI is set, so tests that need an engine must run: %s", why)
	}
	t.Skipf("dockertest: skipped: %s (start an engine, or set DOCKER_HOST)", why)
}

// Log returns a callback for [runner.Task.OnLine] that writes each line to
// t's log as "stdout: text" or "stderr: text". Use it only for runs that end
// before t does.
func Log(t testing.TB) func(runner.Line) {
	return func(l runner.Line) { t.Logf("%s: %s", l.Stream, l.Text) }
}
