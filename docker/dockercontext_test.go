package docker_test

import (
	"os"
	"path/filepath"
	"testing"

	clicontext "github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

// cliContexts is a docker CLI configuration directory with contexts in
// it, written by the CLI's own context store (what `docker context create`
// does).
type cliContexts struct {
	t   *testing.T
	dir string
	s   *store.ContextStore
}

func newCLIContexts(t *testing.T) *cliContexts {
	t.Helper()
	dir := t.TempDir()
	s := store.New(filepath.Join(dir, "contexts"), store.NewConfig(
		func() any { return &map[string]any{} },
		store.EndpointTypeGetter(clicontext.DockerEndpoint, func() any { return &clicontext.EndpointMeta{} }),
	))
	// The tests choose the engine through the context alone.
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONTEXT", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_CONFIG", dir)
	return &cliContexts{t: t, dir: dir, s: s}
}

// add creates context name for host with the TLS files given (paths; any
// may be empty).
func (c *cliContexts) add(name, host, ca, cert, key string) {
	c.t.Helper()
	require.NoError(c.t, c.s.CreateOrUpdate(store.Metadata{
		Name:      name,
		Metadata:  map[string]any{},
		Endpoints: map[string]any{clicontext.DockerEndpoint: clicontext.EndpointMeta{Host: host}},
	}))
	files := map[string][]byte{}
	for file, path := range map[string]string{"ca.pem": ca, "cert.pem": cert, "key.pem": key} {
		if path != "" {
			data, err := os.ReadFile(path)
			require.NoError(c.t, err)
			files[file] = data
		}
	}
	if len(files) > 0 {
		require.NoError(c.t, c.s.ResetEndpointTLSMaterial(name, clicontext.DockerEndpoint, &store.EndpointTLSData{Files: files}))
	}
}

// use writes currentContext into the directory's config.json.
func (c *cliContexts) use(name string) {
	c.t.Helper()
	require.NoError(c.t, os.WriteFile(filepath.Join(c.dir, "config.json"), []byte(`{"currentContext": "`+name+`"}`), 0o600))
}

// Each case reaches the engine only if the context's TLS material is read
// and used: the proxy refuses a client without the CA's certificate, and
// the engine's own socket is not what the context names.
func TestDockerContextSelectsTheEngine(t *testing.T) {
	s := newTLSSetup(t)
	local := "unix://" + engineSocket(t) // read before the cases clear DOCKER_HOST
	t.Run("currentContext in config.json, with its TLS material", func(t *testing.T) {
		c := newCLIContexts(t)
		c.add("remote", s.host, s.ca, s.cert, s.key)
		c.use("remote")
		_, err := runOverTLS(t, docker.Config{})
		require.NoError(t, err)
	})
	t.Run("DOCKER_CONTEXT wins over currentContext", func(t *testing.T) {
		c := newCLIContexts(t)
		c.add("remote", s.host, s.ca, s.cert, s.key)
		c.add("broken", "unix://"+filepath.Join(c.dir, "no-engine.sock"), "", "", "")
		c.use("broken")
		t.Setenv("DOCKER_CONTEXT", "remote")
		_, err := runOverTLS(t, docker.Config{})
		require.NoError(t, err)
	})
	t.Run("a context without a client certificate is refused by the engine", func(t *testing.T) {
		c := newCLIContexts(t)
		c.add("nocert", s.host, s.ca, "", "")
		c.use("nocert")
		_, err := runOverTLS(t, docker.Config{})
		require.Error(t, err)
		assert.ErrorIs(t, err, runner.ErrEngineUnreachable)
	})
	t.Run("DOCKER_HOST wins over the context, as for the CLI", func(t *testing.T) {
		c := newCLIContexts(t)
		c.add("nocert", s.host, s.ca, "", "")
		c.use("nocert")
		t.Setenv("DOCKER_HOST", local)
		_, err := runOverTLS(t, docker.Config{})
		require.NoError(t, err)
	})
	t.Run("Config.Host wins over the context", func(t *testing.T) {
		c := newCLIContexts(t)
		c.add("nocert", s.host, s.ca, "", "")
		c.use("nocert")
		_, err := runOverTLS(t, docker.Config{Host: local})
		require.NoError(t, err)
	})
	t.Run("the default context is DOCKER_HOST or the local socket", func(t *testing.T) {
		c := newCLIContexts(t)
		c.use("default")
		t.Setenv("DOCKER_HOST", local)
		_, err := runOverTLS(t, docker.Config{})
		require.NoError(t, err)
	})
}

func TestDockerContextErrors(t *testing.T) {
	t.Run("DOCKER_CONTEXT naming no context", func(t *testing.T) {
		newCLIContexts(t)
		t.Setenv("DOCKER_CONTEXT", "nowhere")
		_, err := docker.New(docker.Config{})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
		assert.Contains(t, err.Error(), `DOCKER_CONTEXT "nowhere"`)
		assert.Contains(t, err.Error(), "docker context ls")
	})
	t.Run("currentContext naming no context", func(t *testing.T) {
		c := newCLIContexts(t)
		c.use("gone")
		_, err := docker.New(docker.Config{})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
		assert.Contains(t, err.Error(), `currentContext "gone"`)
		assert.Contains(t, err.Error(), filepath.Join(c.dir, "config.json"))
	})
	t.Run("a config.json that does not parse", func(t *testing.T) {
		c := newCLIContexts(t)
		require.NoError(t, os.WriteFile(filepath.Join(c.dir, "config.json"), []byte(`{"currentContext": `), 0o600))
		_, err := docker.New(docker.Config{})
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
		assert.Contains(t, err.Error(), "config.json")
	})
}
