package docker

import (
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestParseConfigKestraBlock(t *testing.T) {
	cfg, err := ParseConfigAllowing([]byte(`{
		"type": "io.kestra.plugin.scripts.runner.docker.Docker",
		"host": "unix:///var/run/docker.sock",
		"pullPolicy": "ALWAYS",
		"entryPoint": ["/bin/tini", "--"],
		"user": "1000:1000",
		"networkMode": "none",
		"extraHosts": ["db:10.0.0.5", "gw:host-gateway"],
		"portBindings": ["127.0.0.1:8080:80/udp", "9090:90"],
		"privileged": true,
		"shmSize": "128m",
		"deviceRequests": [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]], "options": {"a": "b"}}],
		"delete": false,
		"wait": false,
		"killGracePeriod": "PT5S"
	}`), Allow{PortBindings: true, Privileged: true, DeviceRequests: true, Host: true})
	require.NoError(t, err)
	assert.Equal(t, PullAlways, cfg.PullPolicy)
	assert.Equal(t, []string{"/bin/tini", "--"}, cfg.EntryPoint)
	assert.Equal(t, "1000:1000", cfg.User)
	assert.Equal(t, "none", cfg.NetworkMode)
	assert.Equal(t, []string{"db:10.0.0.5", "gw:host-gateway"}, cfg.ExtraHosts)
	assert.True(t, cfg.Privileged)
	assert.Equal(t, []DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu"}}, Options: map[string]string{"a": "b"}}}, cfg.DeviceRequests)
	assert.False(t, cfg.deletes())
	assert.False(t, cfg.waits())
	assert.Equal(t, 5*time.Second, time.Duration(cfg.KillGracePeriod))

	comp, err := cfg.compile(Allow{PortBindings: true, Privileged: true, DeviceRequests: true}, nil)
	require.NoError(t, err, "compiled once, as New does")
	ports := comp.container.ports
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), ports[network.MustParsePort("80/udp")][0].HostIP)
	assert.Equal(t, "8080", ports[network.MustParsePort("80/udp")][0].HostPort)
	assert.Equal(t, "9090", ports[network.MustParsePort("90/tcp")][0].HostPort)
	assert.Contains(t, comp.container.exposed, network.MustParsePort("90/tcp"))
	assert.Equal(t, int64(128<<20), comp.container.shm)
	assert.Equal(t, []string{"/bin/tini", "--"}, comp.container.entryPoint)
}

func TestConfigDefaults(t *testing.T) {
	for name, data := range map[string]string{"empty JSON": `{}`, "only type": `{"type":"io.kestra.plugin.scripts.runner.docker.Docker"}`} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(data))
			require.NoError(t, err)
			assert.True(t, cfg.deletes(), "delete defaults to true")
			assert.True(t, cfg.waits(), "wait defaults to true")
			assert.Nil(t, cfg.EntryPoint, "nil entryPoint means the image's entrypoint is cleared")
			assert.Zero(t, cfg.KillGracePeriod)
		})
	}
	var zero Config
	require.NoError(t, zero.Validate())
	assert.True(t, zero.deletes())
	assert.True(t, zero.waits())
}

func TestConfigErrorsNameFieldAndValue(t *testing.T) {
	tests := []struct {
		name, json, field, value string
	}{
		{"pull policy", `{"pullPolicy":"SOMETIMES"}`, "pullPolicy", "SOMETIMES"},
		{"host without scheme", `{"host":"/var/run/docker.sock"}`, "host", "/var/run/docker.sock"},
		{"extra host without ip", `{"extraHosts":["db"]}`, "extraHosts", "db"},
		{"extra host bad ip", `{"extraHosts":["db:999.1.1.1"]}`, "extraHosts", "db:999.1.1.1"},
		{"port binding", `{"portBindings":["a:b:c"]}`, "portBindings", "a:b:c"},
		{"shm size garbage", `{"shmSize":"lots"}`, "shmSize", "lots"},
		{"shm size zero", `{"shmSize":"0"}`, "shmSize", "0"},
		{"device count", `{"deviceRequests":[{"count":-2}]}`, "deviceRequests[0].count", "-2"},
		{"device count and ids", `{"deviceRequests":[{"count":1,"deviceIds":["0"]}]}`, "deviceRequests[0].deviceIds", "0"},
		{"negative grace", `{"killGracePeriod":"-5s"}`, "killGracePeriod", "-5s"},
		{"reserved label", `{"labels":{"dev.lading.run":"x"}}`, "labels", "dev.lading.run"},
		{"docker config not JSON", `{"config":"{not json"}`, "config", ""},
		{"docker config missing file", `{"config":"/nonexistent/config.json"}`, "config", "/nonexistent/config.json"},
		{"credentials auth", `{"credentials":{"auth":"***"}}`, "credentials.auth", ""},
		{"file strategy", `{"fileHandlingStrategy":"COPY"}`, "fileHandlingStrategy", "COPY"},
		{"platform", `{"platform":"linux"}`, "platform", "linux"},
		{"cpu", `{"cpu":{"cpus":-1}}`, "cpu.cpus", "-1"},
		{"memory", `{"memory":{"memory":"1k"}}`, "memory.memory", "1k"},
		{"stop signal", `{"stopSignal":"SIG TERM"}`, "stopSignal", "SIG TERM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.value, fe.Value)
			assert.Contains(t, err.Error(), tt.field)
			assert.Contains(t, err.Error(), tt.value)
		})
	}
}

func TestParseConfigRejectsUnknownProperty(t *testing.T) {
	_, err := ParseConfig([]byte(`{"pulPolicy":"ALWAYS"}`))
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "pulPolicy")
}

func TestConfigJSONRoundTrip(t *testing.T) {
	in := Config{Pull: Pull{PullPolicy: PullNever}, Lifecycle: Lifecycle{Delete: Bool(false), KillGracePeriod: Duration(1500 * time.Millisecond)}}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"pullPolicy":"NEVER","delete":false,"killGracePeriod":"1.5s"}`, string(data))
	out, err := ParseConfig(data)
	require.NoError(t, err)
	assert.Equal(t, in.PullPolicy, out.PullPolicy)
	assert.Equal(t, in.KillGracePeriod, out.KillGracePeriod)
	assert.False(t, out.deletes())
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"5s", 5 * time.Second},
		{"1m30s", 90 * time.Second},
		{"PT5S", 5 * time.Second},
		{"pt5s", 5 * time.Second},
		{"PT0S", 0},
		{"PT1M30S", 90 * time.Second},
		{"PT0.5S", 500 * time.Millisecond},
		{"PT2H", 2 * time.Hour},
		{"P1DT1H", 25 * time.Hour},
		{"P2D", 48 * time.Hour},
		{"-PT1S", -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	for _, bad := range []string{"", "P", "PT", "5", "PT5", "P1S", "five seconds", "P1DT"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := ParseDuration(bad)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "PT5S", "the error shows an accepted form")
		})
	}
}

func TestParseDurationRange(t *testing.T) {
	// Both wrapped around before: 25m26s and a negative duration.
	for _, big := range []string{"P213504D", "P999999999D"} {
		_, err := ParseDuration(big)
		require.Error(t, err, big)
		assert.Contains(t, err.Error(), "out of range")
	}
}

// TestParseConfigNamesMatchExactly: property names are Kestra's, matched
// exactly at every level; a near miss gets the right name suggested.
func TestParseConfigNamesMatchExactly(t *testing.T) {
	const secret = "hunter2-in-credentials"
	tests := []struct {
		name, json, field, hint string
	}{
		{"other case", `{"pullpolicy":"ALWAYS"}`, "pullpolicy", "did you mean pullPolicy?"},
		{"typo", `{"pullPolicyy":"ALWAYS"}`, "pullPolicyy", "did you mean pullPolicy?"},
		{"missing letter", `{"pulPolicy":"ALWAYS"}`, "pulPolicy", "did you mean pullPolicy?"},
		{"nothing close", `{"colour":"blue"}`, "colour", "unknown property"},
		{"cpu", `{"cpu":{"CPUS":1}}`, "cpu.CPUS", "cpus"},
		{"memory", `{"memory":{"memorySwapp":"1g"}}`, "memory.memorySwapp", "did you mean memorySwap?"},
		{"credentials", `{"credentials":{"username":"u","Password":"` + secret + `"}}`, "credentials.Password", "did you mean password?"},
		{"device request", `{"deviceRequests":[{"driver":"nvidia"},{"Count":1}]}`, "deviceRequests[1].Count", "did you mean count?"},
		{"device request typo", `{"deviceRequests":[{"capabilites":[["gpu"]]}]}`, "deviceRequests[0].capabilites", "did you mean capabilities?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Contains(t, err.Error(), tt.hint)
			assert.NotContains(t, err.Error(), secret)
		})
	}
	cfg, err := ParseConfig([]byte(`{"type":"io.kestra.plugin.scripts.runner.docker.Docker","version":"1.0","pullPolicy":"NEVER"}`))
	require.NoError(t, err, "Kestra's type and version are accepted")
	assert.Equal(t, PullNever, cfg.PullPolicy)

	var direct Config
	err = json.Unmarshal([]byte(`{"pullpolicy":"ALWAYS"}`), &direct)
	require.ErrorIs(t, err, runner.ErrInvalidConfig, "json.Unmarshal into a Config is as strict as ParseConfig")
}

// TestConfigErrorsReadOnce: every config error says "invalid config" once,
// with the field's path and the value as written.
func TestConfigErrorsReadOnce(t *testing.T) {
	tests := []struct {
		name, json, field, value string
	}{
		{"memory size", `{"memory":{"memory":"lots"}}`, "memory.memory", "lots"},
		{"memory not an object", `{"memory":"x"}`, "memory", "x"},
		{"cpus", `{"cpu":{"cpus":"two"}}`, "cpu.cpus", "two"},
		{"cpu property", `{"cpu":{"cpuz":1}}`, "cpu.cpuz", "1"},
		{"duration boolean", `{"killGracePeriod":true}`, "killGracePeriod", "true"},
		{"duration words", `{"killGracePeriod":"5 s"}`, "killGracePeriod", "5 s"},
		{"pull timeout", `{"pullTimeout":"soon"}`, "pullTimeout", "soon"},
		{"duration out of range", `{"pullTimeout":"P213504D"}`, "pullTimeout", "P213504D"},
		{"whole number", `{"pidsLimit":"x"}`, "pidsLimit", "x"},
		{"boolean", `{"init":"yes"}`, "init", "yes"},
		{"list of strings", `{"extraHosts":"db:10.0.0.1"}`, "extraHosts", "db:10.0.0.1"},
		{"label value", `{"labels":{"a":{"b":1}}}`, "labels.a", `{"b":1}`},
		{"device count", `{"deviceRequests":[{"count":"all"}]}`, "deviceRequests[0].count", "all"},
		{"device requests not a list", `{"deviceRequests":{"count":1}}`, "deviceRequests", `{"count":1}`},
		{"config not a string", `{"config":5}`, "config", ""},
		{"credentials not an object", `{"credentials":"x"}`, "credentials", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.value, fe.Value)
			msg := err.Error()
			assert.Equal(t, 1, strings.Count(msg, "invalid config"), msg)
			assert.True(t, strings.HasPrefix(msg, "invalid config: "+tt.field+" ") || strings.HasPrefix(msg, "invalid config: "+tt.field+":"), msg)
			if tt.value != "" {
				assert.Contains(t, msg, strconv.Quote(tt.value))
			}
		})
	}
	for _, bad := range []string{`[1]`, `{"a":1`, `{} {}`, ``} {
		_, err := ParseConfig([]byte(bad))
		require.ErrorIs(t, err, runner.ErrInvalidConfig, bad)
		assert.Equal(t, 1, strings.Count(err.Error(), "invalid config"), err.Error())
	}
}

// TestParseConfigReadsOnlyRegularConfigFiles: a config path naming a FIFO
// used to block ParseConfig forever, /dev/zero to exhaust memory.
func TestParseConfigReadsOnlyRegularConfigFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for path, says := range map[string]string{fifo: "named pipe", "/dev/zero": "device", t.TempDir(): "directory"} {
		t.Run(path, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := ParseConfig([]byte(`{"config":` + strconv.Quote(path) + `}`))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("ParseConfig still reading after 30 s")
			}
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "config", fe.Field)
			assert.Equal(t, path, fe.Value)
			assert.Contains(t, err.Error(), says)
			assert.Equal(t, 1, strings.Count(err.Error(), path), err.Error())
		})
	}
}

func TestConfigUnmarshalOntoBase(t *testing.T) {
	base := Config{Pull: Pull{PullPolicy: PullNever}, Container: Container{User: "1000", Labels: map[string]string{"a": "b"}}}
	cfg := base
	require.NoError(t, json.Unmarshal([]byte(`{"user":"2000","networkMode":"host","labels":null,"entryPoint":[],"delete":null}`), &cfg))
	require.NoError(t, cfg.Container.Validate(Allow{HostNetwork: true}))
	assert.Equal(t, PullNever, cfg.PullPolicy, "left out: kept")
	assert.Equal(t, "2000", cfg.User)
	assert.Equal(t, "host", cfg.NetworkMode)
	assert.Nil(t, cfg.Labels, "null empties an object, as encoding/json does")
	assert.NotNil(t, cfg.EntryPoint, "[] keeps the image's entrypoint: an empty, non-nil slice")
	assert.Empty(t, cfg.EntryPoint)
	assert.True(t, cfg.deletes())

	var wrapped struct {
		Runner Config `json:"taskRunner"`
	}
	err := json.Unmarshal([]byte(`{"taskRunner":{"pullPolicyy":"ALWAYS"}}`), &wrapped)
	require.ErrorIs(t, err, runner.ErrInvalidConfig, "a Config inside a host program's own struct is read strictly too")
	assert.Contains(t, err.Error(), "did you mean pullPolicy?")
}

// FuzzParseConfig: a taskRunner block comes from a workflow author; any
// input gives a Config or an error matching ErrInvalidConfig, never a panic,
// and no value inside credentials or an inline config is quoted.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{`{}`, `{"pullPolicy":"ALWAYS"}`, `{"pullpolicy":1}`, `{"cpu":{"cpus":"500m"}}`, `{"memory":{"memory":"1g","memorySwap":-1}}`,
		`{"deviceRequests":[{"count":-1,"capabilities":[["gpu"]]}]}`, `{"credentials":{"username":"u","password":"hunter2-fuzz"}}`, `{"config":{"auths":{}}}`,
		`{"killGracePeriod":"PT5S","labels":{"a":"b"},"entryPoint":[]}`, `null`, `[]`, `{"delete":null,"wait":false}`, `{"type":"x","version":"1"}`, `{"config":"x"}`, `{"config":" {\"auths\":1}"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseConfig(data)
		if err == nil {
			return
		}
		if !errors.Is(err, runner.ErrInvalidConfig) {
			t.Fatalf("%q: error %v does not match ErrInvalidConfig", data, err)
		}
		var fe *runner.FieldError
		if errors.As(err, &fe) && (strings.HasPrefix(fe.Field, "credentials") && fe.Value != "" || fe.Field == "config" && strings.HasPrefix(strings.TrimSpace(fe.Value), "{")) {
			t.Fatalf("%q: a credentials or inline config value is quoted: %v", data, err)
		}
	})
}
