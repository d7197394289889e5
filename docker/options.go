package docker

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/lading-dev/lading/runner"
)

// An Option is a setting of the host program given to [New]: what no
// taskRunner block may set, so it has no JSON form and no place in
// [Config]. A Runner from [Runner.With] keeps its parent's options.
type Option func(*options)

// options are a Runner's host-program settings.
type options struct {
	logger         *slog.Logger
	maxConcurrency int
	limiter        *runner.Limiter
	allow          Allow
	pool           *Pool    // WithPool's settings
	pools          *poolSet // the pools, made by New, shared with the Runners from With
}

// WithLogger sends lifecycle events to l at debug level, and warnings
// (memory settings, engine warnings) at warn level. Without it the Runner
// is silent.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxConcurrency limits how many tasks run at once on the Runner and
// the Runners made from it with [Runner.With] to n, when n is positive;
// further calls to Run wait for a free slot, honouring their context while
// they wait. The task's Timeout starts once the slot is taken. Zero means
// no limit; [New] refuses a negative n.
//
// It is the host's limit, not a block's: a taskRunner block cannot set it,
// since a workflow engine gives every block a Runner from With under the
// one limit of its root.
func WithMaxConcurrency(n int) Option { return func(o *options) { o.maxConcurrency = n } }

// WithLimiter puts the Runner, and the Runners made from it with
// [Runner.With], under l, a limit it shares with every other runner given
// l, whatever its engine: a workflow engine's flow-wide limit, or one per
// machine over runners of several engines or connections. It takes the
// place of [WithMaxConcurrency]; the wait for a slot is as described
// there.
func WithLimiter(l *runner.Limiter) Option { return func(o *options) { o.limiter = l } }

// WithAllow lets a taskRunner block's [Config] ask for the settings that
// widen a container's reach, as a allows; without it New refuses them
// all.
// Give [ParseConfigAllowing] the same Allow.
func WithAllow(a Allow) Option { return func(o *options) { o.allow = a } }

// Allow lists the settings that widen a container's reach beyond its own
// sandbox. A taskRunner block comes from a workflow author, who is not the
// host program: [New] refuses each of these settings unless the host
// program allows it here ([WithAllow]), with a [*runner.FieldError] naming
// the property, its value and the field of Allow that allows it, and so do
// [ParseConfigAllowing] (given the Allow), [ParseConfig] and
// [Config.Validate] (which allow nothing). Allow has no JSON form, so no
// block can allow itself anything. The zero value allows none of them; a
// host program that sets one of these properties itself allows it with
// WithAllow as well. [Container.Validate] checks a Container against an
// Allow. The package documentation lists what is allowed without it.
type Allow struct {
	// HostNetwork allows networkMode "host": the script shares the host's
	// network stack, so it reaches every service bound to the host's
	// 127.0.0.1 and can listen on the host's ports.
	HostNetwork bool
	// ContainerNetwork allows networkMode "container:<name|id>": the
	// script joins that container's network namespace and reaches what it
	// serves on its loopback.
	ContainerNetwork bool
	// Networks lists the named networks networkMode may name (a
	// user-defined network reaches the containers on it, which the default
	// bridge cannot); "*" allows any name. Another engine's modes that are
	// not names (Podman's "ns:<path>", "slirp4netns:...") are allowed only
	// when listed as written. "bridge", "default" and "none" need nothing.
	Networks []string
	// Privileged allows privileged: true, which gives the container every
	// capability and the host's devices: it is root on the host.
	Privileged bool
	// DeviceRequests allows deviceRequests (GPUs and other devices of the
	// host).
	DeviceRequests bool
	// PortBindings allows portBindings, which publish the container's ports
	// on the host's interfaces (reachable from the network) and take host
	// ports.
	PortBindings bool
	// Volumes allows volumes, bind mounts of host paths (Kestra's
	// volume-enabled plugin setting).
	Volumes bool
	// Runtimes lists the OCI runtimes [Container.Runtime] may name ("*": any
	// the engine has). The runtime is the container's sandbox: one a block
	// names may be weaker than the engine's default. A host program that
	// runs untrusted scripts under gVisor only sets Config.Runtime to
	// "runsc" itself, after reading the block, and Runtimes to ["runsc"].
	Runtimes []string
	// Host allows a block to set host, the engine lading talks to: that
	// engine receives the task's secrets and the registry credentials
	// lading finds on the host, and runs the script wherever it is. Only a
	// block is checked, as it is read: [ParseConfigAllowing] and
	// [ParseConfigMapAllowing] read it with this setting, [ParseConfig],
	// [ParseConfigMap] and [Config.UnmarshalJSON] refuse a block's host. A
	// Host the host program sets in Go needs nothing, and New ignores it.
	Host bool
}

// check refuses what c asks for beyond its sandbox that a does not allow.
func (a Allow) check(c *Container) error {
	refuse := func(field, value, what, setting string) error {
		return invalidConfig(field, value, what+": a workflow author may not ask for it unless the host program sets Allow."+setting+" (docker.WithAllow)")
	}
	switch mode := c.NetworkMode; {
	case mode == "", mode == "bridge", mode == "default", mode == "none":
	case mode == "host":
		if !a.HostNetwork {
			return refuse("networkMode", mode, "shares the host's network stack (the script reaches services bound to the host's 127.0.0.1)", "HostNetwork")
		}
	case strings.HasPrefix(mode, "container:"):
		if !a.ContainerNetwork {
			return refuse("networkMode", mode, "joins another container's network namespace (the script reaches what it serves on its loopback)", "ContainerNetwork")
		}
	default:
		// "*" allows names only: a mode such as Podman's "ns:/proc/1/ns/net"
		// (the host's namespace) or "slirp4netns:..." must be listed as it is.
		anyName := slices.Contains(a.Networks, "*") && networkName.MatchString(mode)
		if !slices.Contains(a.Networks, mode) && !anyName {
			return refuse("networkMode", mode, "joins a named network (the script reaches the containers on it)", "Networks (a list of network names, or \"*\")")
		}
	}
	if c.Runtime != "" && !slices.Contains(a.Runtimes, c.Runtime) && !slices.Contains(a.Runtimes, "*") {
		return refuse("runtime", c.Runtime, "chooses the container's OCI runtime, its sandbox", "Runtimes (a list of runtime names, or \"*\")")
	}
	if c.Privileged && !a.Privileged {
		return refuse("privileged", "true", "gives the container every capability and the host's devices", "Privileged")
	}
	if len(c.DeviceRequests) > 0 && !a.DeviceRequests {
		var drivers []string
		for _, d := range c.DeviceRequests {
			if d.Driver != "" {
				drivers = append(drivers, d.Driver)
			}
		}
		return refuse("deviceRequests", strings.Join(drivers, ","), "gives the container the host's devices", "DeviceRequests")
	}
	if len(c.PortBindings) > 0 && !a.PortBindings {
		return refuse("portBindings", strings.Join(c.PortBindings, ","), "publishes the container's ports on the host", "PortBindings")
	}
	if len(c.Volumes) > 0 && !a.Volumes {
		return refuse("volumes", strings.Join(c.Volumes, ","), "mounts host paths into the container (volume mounts are disabled)", "Volumes")
	}
	return nil
}
