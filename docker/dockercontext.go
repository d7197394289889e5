package docker

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	cerrdefs "github.com/containerd/errdefs"
	cliconfig "github.com/docker/cli/cli/config"
	clicontext "github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
	"github.com/moby/moby/client"
)

// envContext names the docker CLI context to use, as the docker CLI reads
// it.
const envContext = "DOCKER_CONTEXT"

// defaultContext is the docker CLI's name for "no context": DOCKER_HOST, or
// the local socket.
const defaultContext = "default"

// cliContext is the docker CLI context that selects the engine when
// nothing closer does: its name, the setting that named it (DOCKER_CONTEXT
// or currentContext), the file that setting is in (none for the
// environment) and the CLI's configuration directory.
type cliContext struct {
	name, field, file, dir string
}

// currentContext returns the context the docker CLI would use, or ok false
// when the CLI would use DOCKER_HOST or the local socket: DOCKER_HOST set,
// no DOCKER_CONTEXT and no currentContext in $DOCKER_CONFIG/config.json (or
// ~/.docker/config.json), or either naming "default". The order is the
// CLI's (without its --host and --context flags, which a library has not).
func currentContext(getenv func(string) string) (c cliContext, ok bool, err error) {
	if getenv(client.EnvOverrideHost) != "" {
		return cliContext{}, false, nil
	}
	c.dir = getenv(cliconfig.EnvOverrideConfigDir)
	if c.dir == "" {
		home := getenv("HOME")
		if home == "" {
			return cliContext{}, false, nil
		}
		c.dir = filepath.Join(home, ".docker")
	}
	c.name, c.field = getenv(envContext), envContext
	if c.name == "" {
		f, err := cliconfig.Load(c.dir)
		if err != nil {
			return cliContext{}, false, invalidConfig("currentContext", "", fmt.Sprintf("reading the docker CLI's current context: %v", err))
		}
		c.name, c.field, c.file = f.CurrentContext, "currentContext", f.Filename
	}
	if c.name == "" || c.name == defaultContext {
		return cliContext{}, false, nil
	}
	return c, true, nil
}

// contextOptions are the client options of context c's docker endpoint
// (its host and TLS material), as the docker CLI builds them; an ssh://
// host runs the ssh command, as the CLI does.
func contextOptions(c cliContext) ([]client.Opt, error) {
	s := store.New(filepath.Join(c.dir, "contexts"), store.NewConfig(
		func() any { return &map[string]any{} },
		store.EndpointTypeGetter(clicontext.DockerEndpoint, func() any { return &clicontext.EndpointMeta{} }),
	))
	fail := func(err error) ([]client.Opt, error) {
		problem := fmt.Sprintf("the docker CLI context it names: %v", cmp.Or(contextHint(err), err))
		if c.file != "" {
			problem = fmt.Sprintf("(in %s) %s", c.file, problem)
		}
		return nil, invalidConfig(c.field, c.name, problem)
	}
	meta, err := s.GetMetadata(c.name)
	if err != nil {
		return fail(err)
	}
	ep, err := clicontext.EndpointFromContext(meta)
	if err != nil {
		return fail(err)
	}
	withTLS, err := clicontext.WithTLSData(s, c.name, ep)
	if err != nil {
		return fail(err)
	}
	opts, err := withTLS.ClientOpts()
	if err != nil {
		return fail(err)
	}
	return opts, nil
}

// contextHint says what to do about a context that is not there.
func contextHint(err error) error {
	if errors.Is(err, os.ErrNotExist) || cerrdefs.IsNotFound(err) {
		return errors.New("no such context (`docker context ls` lists them; unset DOCKER_CONTEXT or set Config.Host to choose the engine)")
	}
	return nil
}
