package docker_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// TestPolicyWideningNeedsTheHostProgram: every property that widens a
// container's reach beyond its sandbox is refused in a taskRunner block
// unless the host program allows it, with an error naming the property, its
// value and the setting that allows it.
func TestPolicyWideningNeedsTheHostProgram(t *testing.T) {
	tests := []struct {
		name, json, field, value, setting string
		allow                             docker.Allow
	}{
		{"host network", `{"networkMode":"host"}`, "networkMode", "host", "Allow.HostNetwork", docker.Allow{HostNetwork: true}},
		{"another container's network", `{"networkMode":"container:db"}`, "networkMode", "container:db", "Allow.ContainerNetwork", docker.Allow{ContainerNetwork: true}},
		{"a named network", `{"networkMode":"backend"}`, "networkMode", "backend", "Allow.Networks", docker.Allow{Networks: []string{"backend"}}},
		{"any named network", `{"networkMode":"backend"}`, "networkMode", "backend", "Allow.Networks", docker.Allow{Networks: []string{"*"}}},
		{"privileged", `{"privileged":true}`, "privileged", "true", "Allow.Privileged", docker.Allow{Privileged: true}},
		{"device requests", `{"deviceRequests":[{"driver":"nvidia","count":-1,"capabilities":[["gpu"]]}]}`, "deviceRequests", "nvidia", "Allow.DeviceRequests", docker.Allow{DeviceRequests: true}},
		{"port bindings", `{"portBindings":["127.0.0.1:8080:80"]}`, "portBindings", "127.0.0.1:8080:80", "Allow.PortBindings", docker.Allow{PortBindings: true}},
		{"volumes", `{"volumes":["/etc:/host-etc:ro"]}`, "volumes", "/etc:/host-etc:ro", "Allow.Volumes", docker.Allow{Volumes: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := docker.ParseConfig([]byte(tt.json))
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.value, fe.Value)
			assert.Contains(t, err.Error(), "host program sets "+tt.setting)
			assert.Contains(t, err.Error(), "(docker.WithAllow)")

			var cfg docker.Config
			require.NoError(t, cfg.UnmarshalJSON([]byte(tt.json)))
			require.ErrorIs(t, cfg.Validate(), runner.ErrInvalidConfig, "json.Unmarshal then Validate refuses it too")
			_, err = docker.New(cfg)
			require.ErrorIs(t, err, runner.ErrInvalidConfig, "and so does New")
			require.ErrorIs(t, cfg.Container.Validate(docker.Allow{}), runner.ErrInvalidConfig, "and the Container on its own")

			cfg, err = docker.ParseConfigAllowing([]byte(tt.json), tt.allow)
			require.NoError(t, err, "allowed by the host program")
			require.NoError(t, cfg.Container.Validate(tt.allow))
			r, err := docker.New(cfg, docker.WithAllow(tt.allow))
			require.NoError(t, err, "and by New with the same Allow")
			_, err = r.With(cfg)
			require.NoError(t, err, "a Runner from With keeps its root's Allow")
			require.NoError(t, r.Close())

			_, err = docker.ParseConfigAllowing([]byte(`{"allow":{"hostNetwork":true}}`), docker.Allow{})
			require.ErrorIs(t, err, runner.ErrInvalidConfig, "no block allows itself anything")
		})
	}
	t.Run("named network not listed", func(t *testing.T) {
		_, err := docker.ParseConfigAllowing([]byte(`{"networkMode":"backend"}`), docker.Allow{Networks: []string{"frontend"}})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
	})
	t.Run("any name is not any mode", func(t *testing.T) {
		for _, mode := range []string{"ns:/proc/1/ns/net", "slirp4netns:allow_host_loopback=true", "host", "container:db"} {
			_, err := docker.ParseConfigAllowing([]byte(`{"networkMode":`+strconv.Quote(mode)+`}`), docker.Allow{Networks: []string{"*"}})
			require.ErrorIs(t, err, runner.ErrInvalidConfig, mode)
		}
		_, err := docker.ParseConfigAllowing([]byte(`{"networkMode":"ns:/run/netns/x"}`), docker.Allow{Networks: []string{"ns:/run/netns/x"}})
		require.NoError(t, err, "listed as written")
	})
	t.Run("WithAllow allows volumes", func(t *testing.T) {
		_, err := docker.New(docker.Config{Container: docker.Container{Volumes: []string{"/etc:/host-etc:ro"}}}, docker.WithAllow(docker.Allow{Volumes: true}))
		require.NoError(t, err)
	})
	t.Run("allowed without any setting", func(t *testing.T) {
		for _, js := range []string{`{"networkMode":"bridge"}`, `{"networkMode":"none"}`, `{"networkMode":"default"}`, `{"privileged":false}`,
			`{"extraHosts":["db:10.0.0.5","gw:host-gateway"]}`, `{"user":"0"}`, `{"deviceRequests":[]}`} {
			_, err := docker.ParseConfig([]byte(js))
			require.NoError(t, err, js)
		}
	})
}

// TestHostNetworkAllowed: with the host program's opt-in, networkMode host
// runs, and the script reaches a server bound to the host's 127.0.0.1,
// which the default bridge network does not reach: the reach the opt-in
// guards.
func TestHostNetworkAllowed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "host-only\n")
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	fetch := []string{fmt.Sprintf("nc -w 3 127.0.0.1 %d </dev/null 2>/dev/null || echo unreachable", port)}

	allow := docker.Allow{HostNetwork: true}
	cfg, err := docker.ParseConfigAllowing([]byte(`{"networkMode":"host"}`), allow)
	require.NoError(t, err)
	r, _ := newRunner(t, cfg, docker.WithAllow(allow))
	var out strings.Builder
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: fetch, Stdout: &out})
	require.NoError(t, err)
	assert.Equal(t, "host-only\n", out.String())

	bridged, _ := newRunner(t, docker.Config{})
	out.Reset()
	_, err = bridged.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: fetch, Stdout: &out})
	require.NoError(t, err)
	assert.Equal(t, "unreachable\n", out.String(), "the default network does not reach the host's loopback")
}

// A block may not choose the engine (which receives the task's secrets and
// the host's registry credentials) unless the host program allows it; a
// Host set in Go, or kept from a base Config the block leaves alone, needs
// nothing.
func TestBlockHostNeedsTheHostProgram(t *testing.T) {
	block := []byte(`{"host":"tcp://203.0.113.7:2376"}`)
	_, err := docker.ParseConfig(block)
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "host", fe.Field)
	assert.Equal(t, "tcp://203.0.113.7:2376", fe.Value)
	assert.Contains(t, err.Error(), "sets Allow.Host")

	var cfg docker.Config
	require.ErrorIs(t, json.Unmarshal(block, &cfg), runner.ErrInvalidConfig, "json.Unmarshal refuses it too")
	_, err = docker.ParseConfigMap(map[string]any{"host": "tcp://203.0.113.7:2376"})
	require.ErrorIs(t, err, runner.ErrInvalidConfig, "and so does a YAML block")

	cfg, err = docker.ParseConfigAllowing(block, docker.Allow{Host: true})
	require.NoError(t, err)
	assert.Equal(t, "tcp://203.0.113.7:2376", cfg.Host)

	base := docker.Config{Host: "unix:///var/run/docker.sock"}
	require.NoError(t, json.Unmarshal([]byte(`{"user":"1000"}`), &base), "a block that leaves host alone")
	assert.Equal(t, "unix:///var/run/docker.sock", base.Host)
	_, err = docker.New(docker.Config{Host: "tcp://203.0.113.7:2376"})
	require.NoError(t, err, "a Host set in Go needs no Allow")
}
