package docker

import (
	"time"

	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/core"
)

// reachHint says how to make an unreachable engine reachable.
const reachHint = "start the engine, or point Config.Host or DOCKER_HOST at its socket (for example unix:///var/run/docker.sock, or unix://$XDG_RUNTIME_DIR/podman/podman.sock for Podman)"

// engineError wraps an error of the engine's API with what lading was doing,
// and with [runner.ErrEngineUnreachable] and a hint when the engine could not
// be reached at all.
func engineError(r *Runner, doing string, err error) error {
	e := &core.EngineError{Engine: "docker", Doing: doing, Reach: reachHint, Err: err, Seen: time.Now()}
	if client.IsErrConnectionFailed(err) {
		e.Host = r.cli.DaemonHost()
	}
	if e.Hint = tlsHint(err); e.Hint != "" {
		e.Host = r.cli.DaemonHost()
	}
	return e
}
