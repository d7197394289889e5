package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
)

func fieldError(t *testing.T, err error) *runner.FieldError {
	t.Helper()
	require.ErrorIs(t, err, service.ErrInvalidSpec)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	return fe
}

func TestParseEnv(t *testing.T) {
	env, err := service.ParseEnv("REDIS_PORT=6379\r\n\n# a comment\n  APP_ENV=production\nEMPTY=\nURL=a=b=c\nAPP_ENV=staging\nQUOTED=\"x y\"\n")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"REDIS_PORT": "6379", "APP_ENV": "staging", "EMPTY": "", "URL": "a=b=c", "QUOTED": `"x y"`}, env)

	for _, tc := range []struct {
		name, text, field, value string
	}{
		{"no equals", "A=1\nJUSTAWORD\n", "env[line 2]", "JUSTAWORD"},
		{"bad key", "A=1\n\n1BAD=x\n", "env[line 3]", "1BAD"},
		{"empty key", "=x", "env[line 1]", ""},
		{"space in key", "MY KEY=x", "env[line 1]", "MY KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := service.ParseEnv(tc.text)
			fe := fieldError(t, err)
			assert.Equal(t, tc.field, fe.Field)
			assert.Equal(t, tc.value, fe.Value)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add("A=1\nB=2\n")
	f.Add("# x\n\nBAD\n")
	f.Add("K=\x00\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		env, err := service.ParseEnv(text)
		if err != nil {
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			require.ErrorIs(t, err, service.ErrInvalidSpec)
			return
		}
		for k := range env {
			require.NotEmpty(t, k)
			require.NotContains(t, k, "=")
			require.NotContains(t, k, "\n")
		}
	})
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"redis-server --port 6380", []string{"redis-server", "--port", "6380"}},
		{`sh -c 'echo "a b"; exit 3'`, []string{"sh", "-c", `echo "a b"; exit 3`}},
		{`echo "x  y" z\ w`, []string{"echo", "x  y", "z w"}},
		{`echo $HOME`, []string{"echo", "$HOME"}},
	} {
		got, err := service.SplitCommand(tc.line)
		require.NoError(t, err, tc.line)
		assert.Equal(t, tc.want, got, tc.line)
	}
	_, err := service.SplitCommand(`echo 'unterminated`)
	fe := fieldError(t, err)
	assert.Equal(t, "command", fe.Field)
}

func TestResolve(t *testing.T) {
	base := service.Spec{Slug: "web", Image: "busybox"}
	got, err := service.Resolve(base, service.Namespace{}, service.DefaultLimits)
	require.NoError(t, err)
	assert.Equal(t, service.DefaultNamespace, got.Namespace)
	assert.Equal(t, "web", got.Name)
	assert.Equal(t, "1", got.CPU.String())
	assert.Equal(t, "2GiB", got.Memory.String())

	// Namespace env under the service's own; a key moves between plain and secret.
	spec := base
	spec.Env = map[string]string{"B": "svc", "S": "now-plain"}
	spec.SecretEnv = map[string]string{"T": "svc-secret-value"}
	got, err = service.Resolve(spec, service.Namespace{Env: map[string]string{"A": "ns", "B": "ns", "T": "ns-plain"}, SecretEnv: map[string]string{"S": "ns-secret"}}, service.DefaultLimits)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"A": "ns", "B": "svc", "S": "now-plain"}, got.Env)
	assert.Equal(t, map[string]string{"T": "svc-secret-value"}, got.SecretEnv)

	h := base
	h.Health = &service.HealthCheck{HTTP: &service.HTTPCheck{}}
	got, err = service.Resolve(h, service.Namespace{}, service.DefaultLimits)
	require.NoError(t, err)
	assert.Equal(t, "/", got.Health.HTTP.Path)
	assert.Equal(t, service.DefaultHealthInterval, got.Health.Interval)
	assert.Equal(t, service.DefaultHealthTimeout, got.Health.Timeout)
	assert.Equal(t, service.DefaultHealthRetries, got.Health.Retries)

	for _, tc := range []struct {
		name   string
		edit   func(*service.Spec)
		field  string
		value  string
		limits *service.Limits
	}{
		{"bad slug", func(s *service.Spec) { s.Slug = "Web" }, "slug", "Web", nil},
		{"long slug", func(s *service.Spec) { s.Slug = strings.Repeat("a", 41) }, "slug", strings.Repeat("a", 41), nil},
		{"bad namespace", func(s *service.Spec) { s.Namespace = "a_b" }, "namespace", "a_b", nil},
		{"no image", func(s *service.Spec) { s.Image = " " }, "image", " ", nil},
		{"port high", func(s *service.Spec) { s.Port = 65536 }, "port", "65536", nil},
		{"port negative", func(s *service.Spec) { s.Port = -1 }, "port", "-1", nil},
		{"cpu over max", func(s *service.Spec) { s.CPU = 2500 }, "cpu", "2.5", nil},
		{"memory over max", func(s *service.Spec) { s.Memory = 9 << 30 }, "memory", "9GiB", nil},
		{"memory tiny", func(s *service.Spec) { s.Memory = 1 << 20 }, "memory", "1MiB", nil},
		{"cpu over own max", func(s *service.Spec) { s.CPU = 600 }, "cpu", "0.6", &service.Limits{MaxCPU: 500}},
		{"bad env key", func(s *service.Spec) { s.Env = map[string]string{"A-B": "x"} }, "env", "A-B", nil},
		{"secret NUL", func(s *service.Spec) { s.SecretEnv = map[string]string{"T": "a\x00b"} }, "secretEnv.T", "", nil},
		{"bad command", func(s *service.Spec) { s.Command = `"open` }, "command", `"open`, nil},
		{"bad restart", func(s *service.Spec) { s.Restart = "sometimes" }, "restart", "sometimes", nil},
		{"max restarts without on-failure", func(s *service.Spec) { s.MaxRestarts = 2 }, "maxRestarts", "2", nil},
		{"two checks", func(s *service.Spec) {
			s.Health = &service.HealthCheck{TCP: true, Command: []string{"true"}}
		}, "health", "2 kinds", nil},
		{"no check", func(s *service.Spec) { s.Health = &service.HealthCheck{} }, "health", "0 kinds", nil},
		{"bad path", func(s *service.Spec) { s.Health = &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "x"}} }, "health.http.path", "x", nil},
		{"bad status", func(s *service.Spec) { s.Health = &service.HealthCheck{HTTP: &service.HTTPCheck{Status: 42}} }, "health.http.status", "42", nil},
		{"cpu shares", func(s *service.Spec) { s.CPUShares = 1 }, "cpuShares", "1", nil},
		{"disk negative", func(s *service.Spec) { s.DiskSize = -1 }, "diskSize", "-1", nil},
		{"volume name", func(s *service.Spec) { s.Volumes = []service.Volume{{Name: "Data", Path: "/d"}} }, "volumes[0].name", "Data", nil},
		{"volume path", func(s *service.Spec) { s.Volumes = []service.Volume{{Name: "d", Path: "d/x"}} }, "volumes[0].path", "d/x", nil},
		{"volume root", func(s *service.Spec) { s.Volumes = []service.Volume{{Name: "d", Path: "/"}} }, "volumes[0].path", "/", nil},
		{"volume unclean", func(s *service.Spec) { s.Volumes = []service.Volume{{Name: "d", Path: "/a/../b"}} }, "volumes[0].path", "/a/../b", nil},
		{"volume twice", func(s *service.Spec) {
			s.Volumes = []service.Volume{{Name: "a", Path: "/d"}, {Name: "b", Path: "/d"}}
		}, "volumes[1].path", "/d", nil},
		{"bad log pattern", func(s *service.Spec) { s.Health = &service.HealthCheck{Log: "(["} }, "health.log", "([", nil},
		{"negative interval", func(s *service.Spec) { s.Health = &service.HealthCheck{TCP: true, Interval: -time.Second} }, "health.interval", "-1s", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := base
			tc.edit(&spec)
			limits := service.DefaultLimits
			if tc.limits != nil {
				limits = *tc.limits
			}
			_, err := service.Resolve(spec, service.Namespace{}, limits)
			fe := fieldError(t, err)
			assert.Equal(t, tc.field, fe.Field)
			assert.Equal(t, tc.value, fe.Value)
		})
	}
	// A secret's value never appears in the error.
	spec = base
	spec.SecretEnv = map[string]string{"T": "sup3r-secret\x00"}
	_, err = service.Resolve(spec, service.Namespace{}, service.DefaultLimits)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "sup3r-secret")
}

func TestResolveImageBuildVolumesIP(t *testing.T) {
	base := service.Spec{Slug: "web", Image: "busybox:1.36"}
	withNS := service.Namespace{Subnet: "10.42.0.0/24"}
	for _, tc := range []struct {
		name         string
		edit         func(*service.Spec)
		ns           service.Namespace
		field, value string
	}{
		{"neither image nor build", func(s *service.Spec) { s.Image = "" }, service.Namespace{}, "image", ""},
		{"image and build", func(s *service.Spec) { s.Build = &build.Spec{Context: "/src"} }, service.Namespace{}, "image", "busybox:1.36"},
		{"bad build", func(s *service.Spec) { s.Image, s.Build = "", &build.Spec{} }, service.Namespace{}, "build.context", ""},
		{"relative host path", func(s *service.Spec) { s.HostVolumes = []service.HostVolume{{HostPath: "data", Path: "/data"}} }, service.Namespace{}, "hostVolumes[0].hostPath", "data"},
		{"host volume at /", func(s *service.Spec) { s.HostVolumes = []service.HostVolume{{HostPath: "/srv", Path: "/"}} }, service.Namespace{}, "hostVolumes[0].path", "/"},
		{"host volume over a named one", func(s *service.Spec) {
			s.Volumes = []service.Volume{{Name: "data", Path: "/data"}}
			s.HostVolumes = []service.HostVolume{{HostPath: "/srv", Path: "/data"}}
		}, service.Namespace{}, "hostVolumes[0].path", "/data"},
		{"not an IP", func(s *service.Spec) { s.IP = "10.42.0.300" }, withNS, "ip", "10.42.0.300"},
		{"IP without a subnet", func(s *service.Spec) { s.IP = "10.42.0.10" }, service.Namespace{}, "ip", "10.42.0.10"},
		{"IP outside the subnet", func(s *service.Spec) { s.IP = "10.43.0.10" }, withNS, "ip", "10.43.0.10"},
		{"bad subnet", func(s *service.Spec) { s.IP = "10.42.0.10" }, service.Namespace{Subnet: "10.42.0.1/24"}, "subnet", "10.42.0.1/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := base
			tc.edit(&spec)
			_, err := service.Resolve(spec, tc.ns, service.DefaultLimits)
			fe := fieldError(t, err)
			assert.Equal(t, tc.field, fe.Field)
			assert.Equal(t, tc.value, fe.Value)
		})
	}

	spec := base
	spec.IP = "10.42.0.10"
	spec.HostVolumes = []service.HostVolume{{HostPath: "/srv/data", Path: "/data", ReadOnly: true}}
	_, err := service.Resolve(spec, withNS, service.DefaultLimits)
	require.NoError(t, err)
	spec = base
	spec.Image, spec.Build = "", &build.Spec{Context: "/src"}
	_, err = service.Resolve(spec, service.Namespace{}, service.DefaultLimits)
	require.NoError(t, err)
	require.NoError(t, service.Namespace{Subnet: "fd00:42::/64"}.Validate())
}
