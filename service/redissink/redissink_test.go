package redissink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/redissink"
)

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// subscribe subscribes to channels and returns the message channel once
// the subscriptions are confirmed.
func subscribe(t *testing.T, port int, password string, channels ...string) <-chan *redis.Message {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr(port), Password: password})
	t.Cleanup(func() { _ = c.Close() })
	sub := c.Subscribe(t.Context(), channels...)
	t.Cleanup(func() { _ = sub.Close() })
	for range channels {
		msg, err := sub.Receive(t.Context())
		require.NoError(t, err)
		require.IsType(t, &redis.Subscription{}, msg)
	}
	return sub.Channel(redis.WithChannelSize(100_000))
}

func receive(t *testing.T, msgs <-chan *redis.Message, n int) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for i := 0; i < n; i++ {
		select {
		case m := <-msgs:
			got[m.Channel] = append(got[m.Channel], m.Payload)
		case <-time.After(30 * time.Second):
			t.Fatalf("after %d of %d messages, none for 30 s: %v", i, n, got)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("a message more than expected: %s %q", m.Channel, m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	return got
}

func TestSinkInOrderOnce(t *testing.T) {
	port := testenv.FreePort(t)
	testenv.RedisServer(t, port)
	msgs := subscribe(t, port, "", "c-stdout", "c-stderr", "c-stats")
	base := "redis://" + addr(port) + "/"
	sink, err := redissink.New(redissink.Config{Stdout: base + "c-stdout", Stderr: base + "c-stderr", Stats: base + "c-stats"})
	require.NoError(t, err)
	sinks := sink.Sinks()
	var want []string
	for i := range 2000 {
		line := fmt.Sprintf("line %d", i)
		want = append(want, line)
		_, err := sinks.Stdout.Write([]byte(line + "\n"))
		require.NoError(t, err)
	}
	_, _ = sinks.Stderr.Write([]byte("oops\n"))
	sinks.Stats(service.Stats{Timestamp: 1586221435, MemoryUsage: 561152, MemoryLimit: 315621376, MemoryCache: 36864, CPUUsage: 12129887, PidsCurrent: 1})
	got := receive(t, msgs, 2002)
	assert.Equal(t, want, got["c-stdout"], "each line once, in order")
	assert.Equal(t, []string{"oops"}, got["c-stderr"])
	require.Len(t, got["c-stats"], 1)
	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(got["c-stats"][0]), &fields))
	assert.Equal(t, map[string]any{"timestamp": 1586221435.0, "memory_usage": 561152.0, "memory_limit": 315621376.0,
		"memory_cache": 36864.0, "cpu_usage": 12129887.0, "pids_current": 1.0}, fields, "exactly Zero-OS's fields")
	require.NoError(t, sink.Close(t.Context()))
	o, e, s := sink.Dropped()
	assert.Zero(t, o+e+s)
}

// TestSinkDownKeepsBuffered: while Redis is down (refused, then refusing
// the sink's connection for want of a password) the lines wait in the
// queue, in order; once Redis takes them, they all arrive.
func TestSinkDownKeepsBuffered(t *testing.T) {
	port := testenv.FreePort(t)
	sink, err := redissink.New(redissink.Config{Stdout: "redis://" + addr(port) + "/out"})
	require.NoError(t, err)
	defer sink.Close(context.Background())
	w := sink.Sinks().Stdout
	start := time.Now()
	for i := range 100 {
		_, _ = fmt.Fprintf(w, "early %d\n", i)
	}
	assert.Less(t, time.Since(start), 5*time.Second, "writes never wait for Redis") // a bound on hanging, not a speed
	time.Sleep(300 * time.Millisecond)                                              // a few refused attempts

	testenv.RedisServer(t, port, "--requirepass", "letmein-pass")
	msgs := subscribe(t, port, "letmein-pass", "out")
	admin := redis.NewClient(&redis.Options{Addr: addr(port), Password: "letmein-pass"})
	defer admin.Close()
	require.NoError(t, admin.ConfigSet(t.Context(), "requirepass", "").Err())
	got := receive(t, msgs, 100)
	for i, line := range got["out"] {
		require.Equal(t, fmt.Sprintf("early %d", i), line)
	}
	o, _, _ := sink.Dropped()
	assert.Zero(t, o)
}

// TestSinkFullDropsNewest: a full queue drops (and counts) the newest
// messages; Close under a done ctx drops what is left, counted.
func TestSinkFullDropsNewest(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens
	sink, err := redissink.New(redissink.Config{Stdout: "redis://" + addr(port) + "/out", Buffer: 10})
	require.NoError(t, err)
	w := sink.Sinks().Stdout
	for i := range 25 {
		_, _ = fmt.Fprintf(w, "line %d\n", i)
	}
	o, _, _ := sink.Dropped()
	// The publisher holds one message out of the queue while it retries.
	assert.Contains(t, []int64{14, 15}, o)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.NoError(t, sink.Close(ctx))
	o, _, _ = sink.Dropped()
	assert.Equal(t, int64(25), o, "everything unpublished is counted")
	_, _ = fmt.Fprintln(w, "after close")
	o, _, _ = sink.Dropped()
	assert.Equal(t, int64(26), o)
}

func TestSinkConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   redissink.Config
		field string
	}{
		{redissink.Config{Stdout: "http://x/y"}, "stdout"},
		{redissink.Config{Stderr: "redis://127.0.0.1:6379"}, "stderr"},
		{redissink.Config{Stats: "redis://:s3cret-passw0rd@127.0.0.1:6379"}, "stats"},
		{redissink.Config{Buffer: -1}, "buffer"},
	} {
		_, err := redissink.New(tc.cfg)
		require.ErrorIs(t, err, redissink.ErrInvalidConfig)
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, tc.field, fe.Field)
		assert.NotContains(t, err.Error(), "s3cret-passw0rd")
	}
}
