package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
)

// The demo runs against the real engine, in the offline test image, with
// Debian's redis-server (started here) for the sinks.

// startRedis starts a redis-server on a free port for the test and returns
// its address.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (apt-get install redis-server)")
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, srv.Start())
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	require.Eventually(t, func() bool { return rc.Ping(t.Context()).Err() == nil }, 10*time.Second, 20*time.Millisecond)
	return addr
}

func TestDemo(t *testing.T) {
	cli := testenv.Engine(t)
	testenv.SkipOnPodman(t, "services are verified on Docker only (see docker's skipServicesOnPodman)")
	ns := fmt.Sprintf("demo-test-%d", os.Getpid())
	rep, err := Run(t.Context(), Options{Image: testenv.Image, Namespace: ns, Redis: startRedis(t), StatsPeriod: 200 * time.Millisecond, Out: logWriter{t}})
	require.NoError(t, err)

	// The host reached web, and web reached kv by its slug: each hit is one
	// INCR in kv.
	assert.Equal(t, "hello from "+rep.WebHost+"\n", rep.Page)
	assert.Equal(t, []string{"hits: 1\n", "hits: 2\n"}, rep.Hits)
	assert.Equal(t, "hi from the host", rep.Greeting, "SET then GET with go-redis through kv's published port")
	// The task reached both by slug on the namespace's network.
	assert.Equal(t, "hits: 3\n$16\nhi from the host\n+OK\n", rep.TaskOutput)
	assert.Equal(t, "3", rep.HitsAfter)

	// The sinks: kv's first logged command came first; stats are
	// Zero-OS's fields.
	assert.Equal(t, "kv: PING ", rep.FirstLines[ns+".kv.stderr"], "the health check's PING is kv's first command")
	var stats map[string]json.Number
	require.NoError(t, json.Unmarshal([]byte(rep.LastStats), &stats))
	var keys []string
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"cpu_usage", "memory_cache", "memory_limit", "memory_usage", "pids_current", "timestamp"}, keys)
	assert.Equal(t, json.Number(strconv.Itoa(64<<20)), stats["memory_limit"])
	assert.Zero(t, rep.Dropped)

	// Nothing left: no service, no network, no volume of the namespace.
	assert.Zero(t, rep.Left)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mine := make(client.Filters).Add("label", docker.LabelServiceNamespace+"="+ns)
	containers, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: mine})
	require.NoError(t, err)
	assert.Empty(t, containers.Items)
	networks, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: mine})
	require.NoError(t, err)
	assert.Empty(t, networks.Items)
	volumes, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: mine})
	require.NoError(t, err)
	assert.Empty(t, volumes.Items)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
