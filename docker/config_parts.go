package docker

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// Pull is how a [Config] gets the task's image: when to pull, within what
// bounds, for which platform, with which credentials. Its JSON properties
// are at the top of a taskRunner block (pullPolicy, credentials, ...). It
// is usable on its own by what else pulls an image: its Validate names the
// same properties.
type Pull struct {
	// PullPolicy is IF_NOT_PRESENT (default), ALWAYS or NEVER.
	PullPolicy PullPolicy `json:"pullPolicy,omitempty"`

	// PullTimeout bounds a whole pull, retries included. Zero means no
	// limit other than the task's context and timeout.
	PullTimeout Duration `json:"pullTimeout,omitempty"`

	// PullStallTimeout fails a pull when the engine reports no progress
	// for this long. Zero means [DefaultPullStallTimeout].
	PullStallTimeout Duration `json:"pullStallTimeout,omitempty"`

	// PullRetries is how many times a pull that failed for a transient
	// reason (a registry's server error, a dropped connection) is tried
	// again, with exponential backoff from 0.5 s up to 10 s. Zero means
	// [DefaultPullRetries]; a negative value means no retry. Missing
	// images, refused credentials and stalls are not retried.
	PullRetries int `json:"pullRetries,omitempty"`

	// Platform selects the image variant to pull and run, e.g.
	// "linux/amd64" or "linux/arm64/v8". Empty means the engine's own.
	Platform string `json:"platform,omitempty"`

	// Credentials are explicit registry credentials (Kestra's block); they
	// win over any docker config. See package credentials.
	Credentials *credentials.Credentials `json:"credentials,omitempty"`

	// DockerConfig is a docker config.json, inline (a JSON object in JSON,
	// or a string starting with "{") or as a path to a regular file of at
	// most 1 MiB, for credHelpers, credsStore and auths (Kestra's config
	// property). [New] reads it once, and a Runner from [Runner.With] that
	// names the same one keeps what New read. DOCKER_AUTH_CONFIG and
	// $DOCKER_CONFIG/config.json (or ~/.docker/config.json) are read at
	// each pull, after it, with the same limits.
	DockerConfig DockerConfig `json:"config,omitempty"`
}

// compiledPull is a Pull's parsed forms.
type compiledPull struct {
	platform     *ocispec.Platform   // nil: the engine's own
	dockerConfig *credentials.Config // nil: none given
}

// Validate reports the first invalid field of p as a [*runner.FieldError]
// matching [runner.ErrInvalidConfig], named as in a taskRunner block
// ("pullPolicy", "credentials.username", "config"). It reads the docker
// config p names.
func (p *Pull) Validate() error {
	_, err := p.compile(nil)
	return err
}

// compile parses p; the docker config is known's when known is given (the
// parent Runner's, for the same DockerConfig).
func (p *Pull) compile(known *compiledPull) (compiledPull, error) {
	var out compiledPull
	switch p.PullPolicy {
	case "", PullIfNotPresent, PullAlways, PullNever:
	default:
		return out, invalidConfig("pullPolicy", string(p.PullPolicy), "must be one of IF_NOT_PRESENT, ALWAYS, NEVER")
	}
	if p.PullTimeout < 0 {
		return out, invalidConfig("pullTimeout", p.PullTimeout.String(), "must not be negative")
	}
	if p.PullStallTimeout < 0 {
		return out, invalidConfig("pullStallTimeout", p.PullStallTimeout.String(), "must not be negative")
	}
	if p.Credentials != nil {
		if err := p.Credentials.Validate(); err != nil {
			return out, err
		}
	}
	switch {
	case p.DockerConfig == "":
	case known != nil:
		out.dockerConfig = known.dockerConfig
	default:
		cfg, err := credentials.LoadConfig(string(p.DockerConfig))
		if err != nil {
			problem := "cannot be used"
			if ce := (*credentials.ConfigError)(nil); errors.As(err, &ce) {
				problem = ce.Problem
			}
			return out, &runner.FieldError{Field: "config", Value: p.DockerConfig.path(), Problem: problem, Err: runner.ErrInvalidConfig}
		}
		out.dockerConfig = cfg
	}
	platform, err := parsePlatform(p.Platform)
	if err != nil {
		return out, err
	}
	out.platform = platform
	return out, nil
}

// Container is what a [Config] makes the task's container with: its user
// and entrypoint, network, published ports, privileges, limits, devices,
// volumes, labels and OCI runtime. Its JSON properties are at the top of a
// taskRunner block (user, networkMode, memory, ...). It is usable on its
// own by what else makes a container: its Validate names the same
// properties and checks the settings that widen a container's reach
// against an [Allow].
type Container struct {
	// User runs the script as this user ("name", "uid", "uid:gid").
	User string `json:"user,omitempty"`

	// WorkingDir is where the container sees the working directory. Empty
	// (the default) means at the host's absolute path, as Kestra does, so
	// that a host path rendered into the script is the same file inside.
	// A fixed path ("/work") suits paths that must not change from run to
	// run (a compiler cache keyed by absolute paths) or a host directory
	// the container cannot use at its own path; it must be absolute and
	// not a system directory of the container.
	WorkingDir string `json:"containerWorkingDir,omitempty"`

	// EntryPoint replaces the image's entrypoint. Nil means Kestra's default
	// [""]: the entrypoint is cleared and the interpreter runs directly. To
	// keep the image's own entrypoint, set it to an empty, non-nil slice.
	EntryPoint []string `json:"entryPoint,omitempty"`

	// NetworkMode is the container's network: "bridge" (engine default),
	// "none", or, when [Allow] allows it, "host", "container:<id>" or a
	// network's name.
	NetworkMode string `json:"networkMode,omitempty"`

	// ExtraHosts adds "host:ip" lines to the container's /etc/hosts.
	ExtraHosts []string `json:"extraHosts,omitempty"`

	// PortBindings publishes ports, as docker run -p does:
	// "[ip:]hostPort:containerPort[/proto]", e.g. "127.0.0.1:8080:80/tcp".
	// It needs Allow.PortBindings.
	PortBindings []string `json:"portBindings,omitempty"`

	// Privileged gives the container extended privileges. It needs
	// Allow.Privileged.
	Privileged bool `json:"privileged,omitempty"`

	// ShmSize is the size of /dev/shm, e.g. "64m" or "1g" (binary units).
	// Empty means the engine's default (64 MiB).
	ShmSize string `json:"shmSize,omitempty"`

	// CPU limits the CPUs the container may use: {"cpus": 1.5} or
	// {"cpus": "500m"}. A limit above the engine's CPU count fails the run.
	CPU cpu.Config `json:"cpu,omitzero"`

	// Memory limits memory and swap (see package memory). With memory set
	// and memorySwap unset, the container gets no swap beyond its memory.
	Memory memory.Config `json:"memory,omitzero"`

	// PidsLimit caps the processes and threads in the container; zero
	// means the engine's default (no limit).
	PidsLimit int64 `json:"pidsLimit,omitempty"`

	// Init runs an init process as PID 1 (the engine's --init) that reaps
	// zombies and forwards signals to the script.
	Init bool `json:"init,omitempty"`

	// DeviceRequests asks device drivers for devices (GPUs). It needs
	// Allow.DeviceRequests.
	DeviceRequests []DeviceRequest `json:"deviceRequests,omitempty"`

	// Volumes bind-mounts host paths: "/host/path:/container/path[:ro]".
	// They are refused unless the host program sets Allow.Volumes: a
	// workflow author must not be able to mount the host's files.
	Volumes []string `json:"volumes,omitempty"`

	// Labels are added to every container and volume the runner creates,
	// e.g. to find a workflow's resources; keys under "dev.lading." are
	// lading's own and refused.
	Labels map[string]string `json:"labels,omitempty"`

	// Runtime is the OCI runtime the engine runs the container with (the
	// engine's --runtime), e.g. "runsc" for gVisor's sandbox. Empty means
	// the engine's default. It needs Allow.Runtimes, and the first Run
	// checks it against the runtimes the engine has: an unknown one fails
	// with a [*runner.FieldError] naming them.
	Runtime string `json:"runtime,omitempty"`
}

// DeviceRequest asks a device driver for devices, as docker run --gpus does.
type DeviceRequest struct {
	Driver       string            `json:"driver,omitempty"`
	Count        int               `json:"count,omitempty"` // -1 means all
	DeviceIDs    []string          `json:"deviceIds,omitempty"`
	Capabilities [][]string        `json:"capabilities,omitempty"` // an OR list of AND lists, e.g. [["gpu"]]
	Options      map[string]string `json:"options,omitempty"`
}

// compiledContainer is a Container's parsed forms.
type compiledContainer struct {
	entryPoint []string // what the engine is given: nil keeps the image's
	shm        int64
	ports      network.PortMap
	exposed    network.PortSet
	resources  container.Resources
}

// Validate reports the first invalid field of c as a [*runner.FieldError]
// matching [runner.ErrInvalidConfig], named as in a taskRunner block
// ("memory.memory", "deviceRequests[0].count"), including the settings
// that widen the container's reach and allow does not allow.
func (c *Container) Validate(allow Allow) error {
	_, err := c.compile(allow)
	return err
}

func (c *Container) compile(allow Allow) (compiledContainer, error) {
	var out compiledContainer
	if c.WorkingDir != "" {
		if err := core.CheckContainerDir(c.WorkingDir, "containerWorkingDir"); err != nil {
			return out, err
		}
	}
	if c.Runtime != "" && !networkName.MatchString(c.Runtime) {
		return out, invalidConfig("runtime", c.Runtime, "must be the name of a runtime the engine has, such as runc or runsc")
	}
	for _, h := range c.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || (ip != "host-gateway" && net.ParseIP(ip) == nil) {
			return out, invalidConfig("extraHosts", h, `must be "hostname:ip" (or "hostname:host-gateway")`)
		}
	}
	var err error
	if out.ports, out.exposed, err = portBindings(c.PortBindings); err != nil {
		return out, err
	}
	if err := c.CPU.Validate(0); err != nil {
		return out, err
	}
	if err := c.Memory.Validate(); err != nil {
		return out, err
	}
	if c.PidsLimit < 0 {
		return out, invalidConfig("pidsLimit", fmt.Sprint(c.PidsLimit), "must not be negative (0 means no limit)")
	}
	if out.shm, err = shmSize(c.ShmSize); err != nil {
		return out, err
	}
	for i, d := range c.DeviceRequests {
		if d.Count < -1 {
			return out, invalidConfig(fmt.Sprintf("deviceRequests[%d].count", i), fmt.Sprint(d.Count), "must be -1 (all) or a non-negative number")
		}
		if d.Count != 0 && len(d.DeviceIDs) > 0 {
			return out, invalidConfig(fmt.Sprintf("deviceRequests[%d].deviceIds", i), strings.Join(d.DeviceIDs, ","), "cannot be combined with count")
		}
	}
	for _, v := range c.Volumes {
		if _, err := parseVolume(v); err != nil {
			return out, err
		}
	}
	for k := range c.Labels {
		if k == "" || strings.HasPrefix(k, "dev.lading.") {
			return out, invalidConfig("labels", k, `must be non-empty and not under "dev.lading.", which lading sets itself`)
		}
	}
	if err := allow.check(c); err != nil {
		return out, err
	}
	switch {
	case c.EntryPoint == nil:
		out.entryPoint = []string{""} // Kestra's default: clear the image's entrypoint
	case len(c.EntryPoint) > 0:
		out.entryPoint = c.EntryPoint
	}
	out.resources = c.resources()
	return out, nil
}

// resources returns the container's limits.
func (c *Container) resources() container.Resources {
	mem := c.Memory.Limits()
	res := container.Resources{
		NanoCPUs:          c.CPU.CPUs.NanoCPUs(),
		Memory:            mem.Memory,
		MemorySwap:        mem.MemorySwap,
		MemoryReservation: mem.MemoryReservation,
		MemorySwappiness:  mem.MemorySwappiness,
		OomKillDisable:    mem.OOMKillDisable,
		DeviceRequests:    deviceRequests(c.DeviceRequests),
	}
	if c.PidsLimit > 0 {
		pids := c.PidsLimit
		res.PidsLimit = &pids
	}
	return res
}

func deviceRequests(in []DeviceRequest) []container.DeviceRequest {
	if len(in) == 0 {
		return nil
	}
	out := make([]container.DeviceRequest, len(in))
	for i, d := range in {
		out[i] = container.DeviceRequest{Driver: d.Driver, Count: d.Count, DeviceIDs: d.DeviceIDs, Capabilities: d.Capabilities, Options: d.Options}
	}
	return out
}

// networkName is the form of a network's name (or id) on the engine.
var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func shmSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil || n <= 0 {
		return 0, invalidConfig("shmSize", s, `must be a positive size such as "64m" or "1g"`)
	}
	return n, nil
}

// portBindings parses Kestra's "[ip:]hostPort:containerPort[/proto]"
// strings into the engine's port bindings and the ports they expose.
func portBindings(specs []string) (network.PortMap, network.PortSet, error) {
	if len(specs) == 0 {
		return nil, nil, nil
	}
	ports, exposed := network.PortMap{}, network.PortSet{}
	for _, spec := range specs {
		mappings, err := nat.ParsePortSpec(spec)
		if err != nil {
			return nil, nil, invalidConfig("portBindings", spec, `must be "[ip:]hostPort:containerPort[/tcp|udp|sctp]"`)
		}
		for _, m := range mappings {
			p, err := network.ParsePort(string(m.Port))
			if err != nil {
				return nil, nil, invalidConfig("portBindings", spec, "port "+string(m.Port)+": "+err.Error())
			}
			if p.Num() == 0 {
				return nil, nil, invalidConfig("portBindings", spec, "the container's port must be 1 to 65535")
			}
			exposed[p] = struct{}{}
			pb := network.PortBinding{HostPort: m.Binding.HostPort}
			if m.Binding.HostIP != "" {
				if pb.HostIP, err = netip.ParseAddr(m.Binding.HostIP); err != nil {
					return nil, nil, invalidConfig("portBindings", spec, m.Binding.HostIP+" is not an IP address")
				}
			}
			ports[p] = append(ports[p], pb)
		}
	}
	return ports, exposed, nil
}

// Lifecycle is what becomes of a [Config]'s container: whether it is
// deleted, whether Run waits for it, whether a restarted host program
// resumes it, and how it is stopped. Its JSON properties are at the top of
// a taskRunner block (delete, wait, resume, killGracePeriod, stopSignal).
// It is usable on its own by what else runs containers: its Validate names
// the same properties.
type Lifecycle struct {
	// Delete removes the container and its volumes when the run ends,
	// whatever the outcome. Nil means true. With false, the container and
	// its volumes stay, labelled: remove them with `docker rm -v` (the
	// output directory is an anonymous volume) and `docker volume rm`, or
	// with [Runner.Prune].
	Delete *bool `json:"delete,omitempty"`

	// Wait waits for the container to exit. Nil means true. With false, Run
	// returns as soon as the container has started: the Result holds the
	// container id in its [Details] and the working directory, nothing
	// else; logs, outputs and files are not collected, and the container
	// and its output volume are not deleted ([Runner.Prune] sweeps them
	// once the container has exited).
	Wait *bool `json:"wait,omitempty"`

	// Resume re-attaches a task to its container when one exists from an
	// earlier Run with the same [runner.Task.ID] whose process is gone (a
	// crashed or restarted host program), instead of starting the task
	// again, as Kestra's resume does. The re-attached run reads the
	// container's whole log once, from its start, so outputs printed before
	// the restart are not lost, and no line is delivered twice within the
	// run. Tasks without an ID never resume. Requires Task.ID to be unique
	// among live runs.
	Resume bool `json:"resume,omitempty"`

	// KillGracePeriod is how long a container that is being stopped
	// (cancelled context or task timeout) gets between StopSignal and
	// SIGKILL. Zero, Kestra's default, kills at once. In JSON it accepts Go
	// durations ("5s") and ISO-8601 ("PT5S").
	KillGracePeriod Duration `json:"killGracePeriod,omitempty"`

	// StopSignal is the signal sent first when a container is stopped with a
	// grace period. Empty means SIGTERM.
	StopSignal string `json:"stopSignal,omitempty"`
}

// Validate reports the first invalid field of l as a [*runner.FieldError]
// matching [runner.ErrInvalidConfig], named as in a taskRunner block.
func (l *Lifecycle) Validate() error {
	if l.KillGracePeriod < 0 {
		return invalidConfig("killGracePeriod", l.KillGracePeriod.String(), "must not be negative")
	}
	if l.StopSignal != "" && !validSignal(l.StopSignal) {
		return invalidConfig("stopSignal", l.StopSignal, `must be a signal name such as "SIGTERM" or a number`)
	}
	return nil
}

// deletes and waits report the effective values of Delete and Wait.
func (l *Lifecycle) deletes() bool { return l.Delete == nil || *l.Delete }
func (l *Lifecycle) waits() bool   { return l.Wait == nil || *l.Wait }

func validSignal(s string) bool {
	s = strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '+' && r != '-' {
			return false
		}
	}
	return true
}
