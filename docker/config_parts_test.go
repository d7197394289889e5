package docker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// TestConfigPartsValidateAlone: Pull, Container and Lifecycle each validate
// on their own, with the property names of a taskRunner block, for what
// else pulls images or makes containers (services, builds, a pool).
func TestConfigPartsValidateAlone(t *testing.T) {
	tests := []struct {
		name     string
		validate func() error
		field    string
		value    string
	}{
		{"pull policy", (&Pull{PullPolicy: "SOMETIMES"}).Validate, "pullPolicy", "SOMETIMES"},
		{"pull timeout", (&Pull{PullTimeout: -1}).Validate, "pullTimeout", "-1ns"},
		{"platform", (&Pull{Platform: "linux"}).Validate, "platform", "linux"},
		{"credentials", (&Pull{Credentials: &credentials.Credentials{Auth: "***"}}).Validate, "credentials.auth", ""},
		{"docker config", (&Pull{DockerConfig: "/nonexistent/config.json"}).Validate, "config", "/nonexistent/config.json"},
		{"memory", func() error { return (&Container{Memory: memory.Config{Memory: 1024}}).Validate(Allow{}) }, "memory.memory", "1KiB"},
		{"device count", func() error {
			return (&Container{DeviceRequests: []DeviceRequest{{Count: -2}}}).Validate(Allow{DeviceRequests: true})
		}, "deviceRequests[0].count", "-2"},
		{"port binding", func() error { return (&Container{PortBindings: []string{"a:b:c"}}).Validate(Allow{PortBindings: true}) }, "portBindings", "a:b:c"},
		{"volume", func() error { return (&Container{Volumes: []string{"rel:/x"}}).Validate(Allow{Volumes: true}) }, "volumes", "rel:/x"},
		{"reach not allowed", func() error { return (&Container{NetworkMode: "host"}).Validate(Allow{}) }, "networkMode", "host"},
		{"grace", (&Lifecycle{KillGracePeriod: -1}).Validate, "killGracePeriod", "-1ns"},
		{"stop signal", (&Lifecycle{StopSignal: "SIG TERM"}).Validate, "stopSignal", "SIG TERM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.validate()
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			if tt.value != "" {
				assert.Equal(t, tt.value, fe.Value)
			}
		})
	}
	require.NoError(t, (&Pull{}).Validate())
	require.NoError(t, (&Container{}).Validate(Allow{}))
	require.NoError(t, (&Container{NetworkMode: "host"}).Validate(Allow{HostNetwork: true}))
	require.NoError(t, (&Lifecycle{}).Validate())
}

// TestConfigJSONStaysFlat: the groups are Go's only; the JSON form, in and
// out, has Kestra's flat property names.
func TestConfigJSONStaysFlat(t *testing.T) {
	cfg := Config{
		Pull:      Pull{PullPolicy: PullNever, Platform: "linux/amd64"},
		Container: Container{User: "1000", Labels: map[string]string{"a": "b"}},
		Lifecycle: Lifecycle{Delete: Bool(false), StopSignal: "SIGINT"},
	}
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.JSONEq(t, `{"pullPolicy":"NEVER","platform":"linux/amd64","user":"1000","labels":{"a":"b"},"delete":false,"stopSignal":"SIGINT"}`, string(data))
	back, err := ParseConfig(data)
	require.NoError(t, err)
	assert.Equal(t, cfg, back)

	for _, block := range []string{`{"Pull":{"pullPolicy":"NEVER"}}`, `{"container":{"user":"1"}}`, `{"lifecycle":{}}`} {
		_, err := ParseConfig([]byte(block))
		require.ErrorIs(t, err, runner.ErrInvalidConfig, block)
		assert.Contains(t, err.Error(), "unknown property", block)
	}
}

// TestHostSettingsHaveNoJSONForm: what only the host program decides is an
// unknown property in a block, and an option of New.
func TestHostSettingsHaveNoJSONForm(t *testing.T) {
	for _, prop := range []string{"maxConcurrency", "logger", "allow", "volumesEnabled"} {
		_, err := ParseConfig([]byte(`{"` + prop + `":4}`))
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe, prop)
		assert.Equal(t, prop, fe.Field)
		assert.Contains(t, fe.Problem, "unknown property")
	}
	_, err := New(Config{}, WithMaxConcurrency(-1))
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "maxConcurrency", fe.Field)

	r, err := New(Config{}, WithMaxConcurrency(3))
	require.NoError(t, err)
	defer r.Close()
	assert.Equal(t, 3, r.limiter.Limit())
	d, err := r.With(Config{})
	require.NoError(t, err)
	assert.Same(t, r.limiter, d.limiter, "With shares the limit")
}

// TestNewCompilesOnce: New reads the docker config file once; the runs,
// and the Runners from With that name the same config, use what it read,
// so a file removed after New changes nothing; a With naming another one
// reads it.
func TestNewCompilesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"auths":{"registry.example:5000":{"auth":"dTpwYXNzd29yZDE="}}}`), 0o600))
	r, err := New(Config{Pull: Pull{DockerConfig: DockerConfig(path)}, Container: Container{ShmSize: "1g", PidsLimit: 7}})
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, os.Remove(path))
	require.NotNil(t, r.resolver.Config)
	auth, err := r.resolver.Resolve(t.Context(), "registry.example:5000/app:1")
	require.NoError(t, err)
	assert.Equal(t, "u", auth.Username())
	assert.Equal(t, int64(1<<30), r.compiled.container.shm)
	require.NotNil(t, r.compiled.container.resources.PidsLimit)
	assert.Equal(t, int64(7), *r.compiled.container.resources.PidsLimit)

	d, err := r.With(r.cfg)
	require.NoError(t, err, "the same config: not read again")
	assert.Same(t, r.resolver.Config, d.resolver.Config)
	other := r.cfg
	other.DockerConfig = DockerConfig(path + ".other")
	_, err = r.With(other)
	require.ErrorIs(t, err, runner.ErrInvalidConfig, "another config is read: it does not exist")
}

// TestWithLogger: the logger given to New gets the Runner's warnings, and a
// Runner from With keeps it.
func TestWithLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	r, err := New(Config{}, WithLogger(l))
	require.NoError(t, err)
	defer r.Close()
	_, err = r.With(Config{Container: Container{Memory: memory.Config{Memory: 64 << 20, MemoryReservation: 64 << 20}}})
	require.NoError(t, err)
	assert.True(t, strings.Contains(buf.String(), "memoryReservation"), buf.String())
}
