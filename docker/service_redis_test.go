package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/redissink"
	"github.com/lading-dev/lading/service/servicetest"
)

// TestServiceRedisSinks streams a service's stdout, stderr and stats to a
// real redis-server (started here) as Zero-OS does, and reads them back
// with SUBSCRIBE: each line once, in order, masked; stats with exactly
// Zero-OS's fields.
func TestServiceRedisSinks(t *testing.T) {
	skipServicesOnPodman(t)
	t.Parallel()
	addr := testenv.RedisServer(t, 0)
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rc.Close() })
	sub := rc.Subscribe(t.Context(), "container-stdout", "container-stderr", "container-stats")
	t.Cleanup(func() { _ = sub.Close() })
	for range 3 {
		_, err := sub.Receive(t.Context())
		require.NoError(t, err)
	}
	msgs := sub.Channel(redis.WithChannelSize(10_000))

	s, _ := newServices(t, docker.ServicesConfig{StopTimeout: -1})
	ns := servicetest.Namespace(t)
	const n = 200
	svc, err := s.Deploy(t.Context(), service.Spec{Slug: "talker", Namespace: ns, Image: testenv.Image, Ephemeral: true,
		SecretEnv: map[string]string{"TOKEN": "s3cret-redis-t0ken"},
		Command:   fmt.Sprintf(`sh -c 'i=0; while [ $i -lt %d ]; do echo "out $i $TOKEN"; i=$((i+1)); done; echo "err line" >&2; exec sleep 3600'`, n)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Delete(context.Background()) })

	base := "redis://" + addr + "/"
	sink, err := redissink.New(redissink.Config{Stdout: base + "container-stdout", Stderr: base + "container-stderr", Stats: base + "container-stats",
		StatsPeriod: 200 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- service.Stream(ctx, svc, sink.Sinks()) }()

	got := map[string][]string{}
	deadline := time.After(time.Minute)
	for len(got["container-stdout"]) < n || len(got["container-stderr"]) < 1 || len(got["container-stats"]) < 3 {
		select {
		case m := <-msgs:
			got[m.Channel] = append(got[m.Channel], m.Payload)
		case <-deadline:
			t.Fatalf("not everything arrived: %d stdout, %d stderr, %d stats", len(got["container-stdout"]), len(got["container-stderr"]), len(got["container-stats"]))
		}
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, sink.Close(t.Context()))
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("out %d ****", i))
	}
	assert.Equal(t, want, got["container-stdout"][:n], "each line once, in order, masked")
	assert.Len(t, got["container-stdout"], n)
	assert.Equal(t, []string{"err line"}, got["container-stderr"])
	for _, raw := range got["container-stats"] {
		var fields map[string]json.Number
		require.NoError(t, json.Unmarshal([]byte(raw), &fields))
		var keys []string
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		assert.Equal(t, []string{"cpu_usage", "memory_cache", "memory_limit", "memory_usage", "pids_current", "timestamp"}, keys)
		ts, _ := fields["timestamp"].Int64()
		assert.InDelta(t, time.Now().Unix(), ts, 120, "timestamp in Unix seconds")
	}
	o, e, st := sink.Dropped()
	assert.Zero(t, o+e+st)
}
