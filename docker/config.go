package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// PullPolicy says when the runner pulls the task's image.
type PullPolicy string

const (
	// PullIfNotPresent pulls the image only when the engine does not have it.
	// It is the default.
	PullIfNotPresent PullPolicy = "IF_NOT_PRESENT"
	// PullAlways pulls the image before every run.
	PullAlways PullPolicy = "ALWAYS"
	// PullNever never pulls: a missing image fails the run with
	// [runner.ErrImageNotFound].
	PullNever PullPolicy = "NEVER"
)

// Config configures a [Runner]. It is a plain struct whose JSON form uses the
// property names of Kestra's Docker task runner, so a workflow engine can
// unmarshal a Kestra taskRunner block into it (see [ParseConfig]). The zero
// value is valid and means Kestra's defaults: pull if not present, the
// image's entrypoint cleared, containers deleted, runs waited for.
type Config struct {
	// Host is the engine's address, e.g. "unix:///var/run/docker.sock" or
	// "tcp://127.0.0.1:2375". Empty means DOCKER_HOST; without it, the
	// docker CLI's context (DOCKER_CONTEXT, else currentContext in
	// $DOCKER_CONFIG/config.json or ~/.docker/config.json: its host and TLS
	// files, an ssh:// host through the ssh command, as for the CLI); then
	// the platform default (unix:///var/run/docker.sock).
	Host string `json:"host,omitempty"`

	// TLS configures a tcp:// Host's TLS: the CA that signs the engine's
	// certificate and the client's certificate and key. Nil means
	// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the docker CLI reads them.
	// See [TLS].
	TLS *TLS `json:"tls,omitempty"`

	// Runtime is the OCI runtime the engine runs the container with (the
	// engine's --runtime), e.g. "runsc" for gVisor's sandbox. Empty means
	// the engine's default. It needs Allow.Runtimes, and the first Run
	// checks it against the runtimes the engine has: an unknown one fails
	// with a [*runner.FieldError] naming them.
	Runtime string `json:"runtime,omitempty"`

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
	// property). DOCKER_AUTH_CONFIG and $DOCKER_CONFIG/config.json (or
	// ~/.docker/config.json) are read after it, with the same limits.
	DockerConfig DockerConfig `json:"config,omitempty"`

	// EntryPoint replaces the image's entrypoint. Nil means Kestra's default
	// [""]: the entrypoint is cleared and the interpreter runs directly. To
	// keep the image's own entrypoint, set it to an empty, non-nil slice.
	EntryPoint []string `json:"entryPoint,omitempty"`

	// User runs the script as this user ("name", "uid", "uid:gid").
	User string `json:"user,omitempty"`

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

	// FileHandlingStrategy is VOLUME (default) or MOUNT; see
	// [FileHandlingVolume] and [FileHandlingMount].
	FileHandlingStrategy FileHandlingStrategy `json:"fileHandlingStrategy,omitempty"`

	// Volumes bind-mounts host paths: "/host/path:/container/path[:ro]".
	// They are refused unless the host program sets Allow.Volumes (or
	// VolumesEnabled): a workflow author must not be able to mount the
	// host's files.
	Volumes []string `json:"volumes,omitempty"`

	// VolumesEnabled allows Volumes, as Allow.Volumes does (Kestra's
	// volume-enabled plugin setting). It has no JSON form.
	VolumesEnabled bool `json:"-"`

	// Allow is what the host program lets a taskRunner block ask for that
	// widens a container's reach beyond its own sandbox: host networking,
	// privileges, devices, published ports, bind mounts. It has no JSON
	// form; see [Allow].
	Allow Allow `json:"-"`

	// MaxOutputBytes and MaxOutputFiles bound what a run hands back, under
	// both strategies (a sparse file counts by its size); going over fails
	// the run's collection with [files.ErrLimit] and removes the partial
	// output (under MOUNT, what the run created: see the package doc,
	// Output files). Zero means [files.DefaultMaxBytes] (10 GiB) and
	// [files.DefaultMaxFiles] (100,000).
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
	MaxOutputFiles int   `json:"maxOutputFiles,omitempty"`

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

	// Labels are added to every container and volume the runner creates,
	// e.g. to find a workflow's resources; keys under "dev.lading." are
	// lading's own and refused.
	Labels map[string]string `json:"labels,omitempty"`

	// MaxConcurrency, when positive, limits how many tasks run at once on
	// this Runner and the Runners made from it with [Runner.With]; further
	// calls to Run wait for a free slot, honouring their context while they
	// wait. The task's Timeout starts once the slot is taken.
	MaxConcurrency int `json:"maxConcurrency,omitempty"`

	// StatsInterval, when positive, follows the container's resource use
	// while it runs: [runner.Result] gets PeakMemory and CPUTime, and the
	// task's OnStats (if set) a sample at most this often. Each sample is
	// a one-shot poll of the engine (a few milliseconds where the engine
	// answers at once; Docker 20.10 answers at its own 1 s pace after the
	// first). Where the engine reports no max_usage (cgroup v2, Podman),
	// PeakMemory is the peak of the samples. Zero means stats are followed
	// only for tasks with OnStats, every second.
	StatsInterval Duration `json:"statsInterval,omitempty"`

	// Logger receives lifecycle events at debug level. Nil is silent.
	Logger *slog.Logger `json:"-"`
}

// Allow lists the settings that widen a container's reach beyond its own
// sandbox. A taskRunner block comes from a workflow author, who is not the
// host program: [Config.Validate] (so [ParseConfig] and [New] too) refuses
// each of these settings unless the host program allows it here, with a
// [*runner.FieldError] naming the property, its value and the field of Allow
// that allows it. Allow has no JSON form, so no block can allow itself
// anything. The zero value allows none of them; a host program that sets one
// of these properties itself allows it as well. The package documentation
// lists what is allowed without it.
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
	// Volumes allows volumes, bind mounts of host paths; it is the same as
	// [Config.VolumesEnabled].
	Volumes bool
	// Runtimes lists the OCI runtimes [Config.Runtime] may name ("*": any
	// the engine has). The runtime is the container's sandbox: one a block
	// names may be weaker than the engine's default. A host program that
	// runs untrusted scripts under gVisor only sets Config.Runtime to
	// "runsc" itself, after reading the block, and Runtimes to ["runsc"].
	Runtimes []string
	// Host allows a block to set host, the engine lading talks to: that
	// engine receives the task's secrets and the registry credentials
	// lading finds on the host, and runs the script wherever it is. Only a
	// block is checked ([Config.UnmarshalJSON], so [ParseConfig] and
	// [ParseConfigMap]); a Host the host program sets in Go needs nothing.
	Host bool
}

// policy refuses what c asks for beyond its sandbox that c.Allow does not
// allow.
func (c *Config) policy() error {
	refuse := func(field, value, what, setting string) error {
		return invalidConfig(field, value, what+": a workflow author may not ask for it unless the host program sets Config.Allow."+setting)
	}
	switch mode := c.NetworkMode; {
	case mode == "", mode == "bridge", mode == "default", mode == "none":
	case mode == "host":
		if !c.Allow.HostNetwork {
			return refuse("networkMode", mode, "shares the host's network stack (the script reaches services bound to the host's 127.0.0.1)", "HostNetwork")
		}
	case strings.HasPrefix(mode, "container:"):
		if !c.Allow.ContainerNetwork {
			return refuse("networkMode", mode, "joins another container's network namespace (the script reaches what it serves on its loopback)", "ContainerNetwork")
		}
	default:
		// "*" allows names only: a mode such as Podman's "ns:/proc/1/ns/net"
		// (the host's namespace) or "slirp4netns:..." must be listed as it is.
		anyName := slices.Contains(c.Allow.Networks, "*") && networkName.MatchString(mode)
		if !slices.Contains(c.Allow.Networks, mode) && !anyName {
			return refuse("networkMode", mode, "joins a named network (the script reaches the containers on it)", "Networks (a list of network names, or \"*\")")
		}
	}
	if c.Runtime != "" && !slices.Contains(c.Allow.Runtimes, c.Runtime) && !slices.Contains(c.Allow.Runtimes, "*") {
		return refuse("runtime", c.Runtime, "chooses the container's OCI runtime, its sandbox", "Runtimes (a list of runtime names, or \"*\")")
	}
	if c.Privileged && !c.Allow.Privileged {
		return refuse("privileged", "true", "gives the container every capability and the host's devices", "Privileged")
	}
	if len(c.DeviceRequests) > 0 && !c.Allow.DeviceRequests {
		var drivers []string
		for _, d := range c.DeviceRequests {
			if d.Driver != "" {
				drivers = append(drivers, d.Driver)
			}
		}
		return refuse("deviceRequests", strings.Join(drivers, ","), "gives the container the host's devices", "DeviceRequests")
	}
	if len(c.PortBindings) > 0 && !c.Allow.PortBindings {
		return refuse("portBindings", strings.Join(c.PortBindings, ","), "publishes the container's ports on the host", "PortBindings")
	}
	if len(c.Volumes) > 0 && !c.Allow.Volumes && !c.VolumesEnabled {
		return refuse("volumes", strings.Join(c.Volumes, ","), "mounts host paths into the container (volume mounts are disabled)", "Volumes (or VolumesEnabled)")
	}
	return nil
}

// networkName is the form of a network's name (or id) on the engine.
var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// DeviceRequest asks a device driver for devices, as docker run --gpus does.
type DeviceRequest struct {
	Driver       string            `json:"driver,omitempty"`
	Count        int               `json:"count,omitempty"` // -1 means all
	DeviceIDs    []string          `json:"deviceIds,omitempty"`
	Capabilities [][]string        `json:"capabilities,omitempty"` // an OR list of AND lists, e.g. [["gpu"]]
	Options      map[string]string `json:"options,omitempty"`
}

// Bool returns a pointer to b, for [Config.Delete] and [Config.Wait].
func Bool(b bool) *bool { return &b }

// deletes and waits report the effective values of Delete and Wait.
func (c *Config) deletes() bool { return c.Delete == nil || *c.Delete }
func (c *Config) waits() bool   { return c.Wait == nil || *c.Wait }

// ParseConfig decodes a JSON (or Kestra YAML converted to JSON) taskRunner
// block into a Config and validates it, allowing nothing of [Allow]: it is
// ParseConfigAllowing(data, Allow{}).
func ParseConfig(data []byte) (Config, error) { return ParseConfigAllowing(data, Allow{}) }

// ParseConfigAllowing decodes a JSON (or Kestra YAML converted to JSON)
// taskRunner block into a Config whose Allow is allow, and validates it.
//
// Property names are Kestra's, matched exactly (case included) at every
// level; an unknown property is an error that names it and suggests the
// nearest known name ("pullPolicyy: unknown property; did you mean
// pullPolicy?"), so a typo is not silently ignored. Kestra's "type" and
// "version" properties are accepted and ignored. Every error about a
// property is a [*runner.FieldError] naming its path ("memory.memory",
// "deviceRequests[0].count") and its value as written; values inside
// credentials and config are never quoted.
func ParseConfigAllowing(data []byte, allow Allow) (Config, error) {
	cfg := Config{Allow: allow}
	if err := cfg.UnmarshalJSON(data); err != nil {
		var fe *runner.FieldError
		if errors.As(err, &fe) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("docker: parse config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ParseConfigMap reads a taskRunner block that a YAML (or JSON) library
// decoded into a map, as a workflow engine that reads YAML flows holds it,
// and validates it, allowing nothing of [Allow]: it is
// ParseConfigMapAllowing(block, Allow{}). With go.yaml.in/yaml/v3:
//
//	var task struct {
//		TaskRunner map[string]any `yaml:"taskRunner"`
//	}
//	if err := yaml.Unmarshal(data, &task); err != nil { ... }
//	cfg, err := docker.ParseConfigMap(task.TaskRunner)
func ParseConfigMap(block map[string]any) (Config, error) {
	return ParseConfigMapAllowing(block, Allow{})
}

// ParseConfigMapAllowing reads a taskRunner block decoded into a map as
// [ParseConfigAllowing] reads its JSON: the same exact names, the same
// suggestions for unknown ones, the same errors, the same values read from
// strings. A nil map is an empty block.
//
// The values may be what YAML and JSON libraries decode documents into
// (go.yaml.in/yaml/v3, gopkg.in/yaml.v2 and encoding/json give nil, bool,
// string, int, float64, json.Number, []any, map[string]any and map[any]any)
// and, for blocks built in Go, any bool, string, integer or float type,
// slices, arrays and maps of them, pointers to them, and time.Duration and
// [Duration] (as their Go form, "5s"). A map key that is a number or a
// boolean is its text, as Jackson reads YAML keys. A YAML number is a
// number: quote it in the YAML to keep its spelling ("007"). Any other Go
// value, a float that is NaN or infinite, and nesting deeper than 32
// levels, are a [*runner.FieldError] naming the property.
func ParseConfigMapAllowing(block map[string]any, allow Allow) (Config, error) {
	data, err := blockJSON(block)
	if err != nil {
		return Config{}, err
	}
	return ParseConfigAllowing(data, allow)
}

// UnmarshalJSON reads a taskRunner block as [ParseConfigAllowing] does, onto
// c: properties the block leaves out keep c's values, and the fields without
// a JSON form (Allow, VolumesEnabled, Logger) are kept. It does not
// validate: call [Config.Validate] (or [New]) next.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config // without this method
	wire := struct {
		plain
		Type    string `json:"type"`
		Version string `json:"version"`
	}{plain: plain(*c)}
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		var syn *json.SyntaxError
		if err := json.Unmarshal(data, new(any)); errors.As(err, &syn) {
			return fmt.Errorf("%w: not valid JSON (at byte %d)", runner.ErrInvalidConfig, syn.Offset)
		}
		return fmt.Errorf("%w: not valid JSON", runner.ErrInvalidConfig)
	}
	if string(data) == "null" {
		return nil
	}
	if err := decodeObject(data, reflect.ValueOf(&wire).Elem(), "", false); err != nil {
		return err
	}
	if wire.plain.Host != c.Host && !c.Allow.Host {
		return invalidConfig("host", wire.plain.Host, "the engine's address: a workflow author may not choose the engine that receives the task's secrets and the host's registry credentials unless the host program sets Config.Allow.Host")
	}
	*c = Config(wire.plain)
	return nil
}

// Validate reports the first invalid field as a [*runner.FieldError] that
// matches [runner.ErrInvalidConfig], including the settings [Allow] does not
// allow.
func (c *Config) Validate() error {
	switch c.PullPolicy {
	case "", PullIfNotPresent, PullAlways, PullNever:
	default:
		return invalidConfig("pullPolicy", string(c.PullPolicy), "must be one of IF_NOT_PRESENT, ALWAYS, NEVER")
	}
	if c.Host != "" && !strings.Contains(c.Host, "://") {
		return invalidConfig("host", c.Host, `must be a URL such as "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375"`)
	}
	if c.Runtime != "" && !networkName.MatchString(c.Runtime) {
		return invalidConfig("runtime", c.Runtime, "must be the name of a runtime the engine has, such as runc or runsc")
	}
	if err := c.TLS.validate(c.Host); err != nil {
		return err
	}
	for _, h := range c.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || (ip != "host-gateway" && net.ParseIP(ip) == nil) {
			return invalidConfig("extraHosts", h, `must be "hostname:ip" (or "hostname:host-gateway")`)
		}
	}
	if _, err := portBindings(c.PortBindings); err != nil {
		return err
	}
	if c.Credentials != nil {
		if err := c.Credentials.Validate(); err != nil {
			return err
		}
	}
	if c.DockerConfig != "" {
		if _, err := credentials.LoadConfig(string(c.DockerConfig)); err != nil {
			problem := "cannot be used"
			if ce := (*credentials.ConfigError)(nil); errors.As(err, &ce) {
				problem = ce.Problem
			}
			return &runner.FieldError{Field: "config", Value: c.DockerConfig.path(), Problem: problem, Err: runner.ErrInvalidConfig}
		}
	}
	if err := c.CPU.Validate(0); err != nil {
		return err
	}
	if err := c.Memory.Validate(); err != nil {
		return err
	}
	if c.PidsLimit < 0 {
		return invalidConfig("pidsLimit", fmt.Sprint(c.PidsLimit), "must not be negative (0 means no limit)")
	}
	if _, err := shmSize(c.ShmSize); err != nil {
		return err
	}
	for i, d := range c.DeviceRequests {
		if d.Count < -1 {
			return invalidConfig(fmt.Sprintf("deviceRequests[%d].count", i), fmt.Sprint(d.Count), "must be -1 (all) or a non-negative number")
		}
		if d.Count != 0 && len(d.DeviceIDs) > 0 {
			return invalidConfig(fmt.Sprintf("deviceRequests[%d].deviceIds", i), strings.Join(d.DeviceIDs, ","), "cannot be combined with count")
		}
	}
	if c.KillGracePeriod < 0 {
		return invalidConfig("killGracePeriod", c.KillGracePeriod.String(), "must not be negative")
	}
	switch c.FileHandlingStrategy {
	case "", FileHandlingVolume, FileHandlingMount:
	default:
		return invalidConfig("fileHandlingStrategy", string(c.FileHandlingStrategy), "must be VOLUME or MOUNT")
	}
	for _, v := range c.Volumes {
		if _, err := parseVolume(v); err != nil {
			return err
		}
	}
	if c.MaxOutputBytes < 0 || c.MaxOutputFiles < 0 {
		return invalidConfig("maxOutputBytes", fmt.Sprint(c.MaxOutputBytes, "/", c.MaxOutputFiles), "limits must not be negative")
	}
	for k := range c.Labels {
		if k == "" || strings.HasPrefix(k, "dev.lading.") {
			return invalidConfig("labels", k, `must be non-empty and not under "dev.lading.", which lading sets itself`)
		}
	}
	if c.StatsInterval < 0 {
		return invalidConfig("statsInterval", c.StatsInterval.String(), "must not be negative")
	}
	if c.PullTimeout < 0 {
		return invalidConfig("pullTimeout", c.PullTimeout.String(), "must not be negative")
	}
	if c.PullStallTimeout < 0 {
		return invalidConfig("pullStallTimeout", c.PullStallTimeout.String(), "must not be negative")
	}
	if _, err := parsePlatform(c.Platform); err != nil {
		return err
	}
	if c.MaxConcurrency < 0 {
		return invalidConfig("maxConcurrency", fmt.Sprint(c.MaxConcurrency), "must not be negative (0 means no limit)")
	}
	if c.StopSignal != "" && !validSignal(c.StopSignal) {
		return invalidConfig("stopSignal", c.StopSignal, `must be a signal name such as "SIGTERM" or a number`)
	}
	return c.policy()
}

func invalidConfig(field, value, problem string) error {
	return &runner.FieldError{Field: field, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
}

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

// portBindings parses Kestra's "ip:hostPort:containerPort/proto" strings.
func portBindings(specs []string) (nat.PortMap, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := nat.PortMap{}
	for _, spec := range specs {
		mappings, err := nat.ParsePortSpec(spec)
		if err != nil {
			return nil, invalidConfig("portBindings", spec, `must be "[ip:]hostPort:containerPort[/tcp|udp|sctp]"`)
		}
		for _, m := range mappings {
			out[m.Port] = append(out[m.Port], m.Binding)
		}
	}
	return out, nil
}

// DockerConfig is a docker config.json given inline or as a path. In JSON it
// is either an object (the config itself) or a string (inline JSON or a
// path).
type DockerConfig string

// UnmarshalJSON accepts an object or a string.
func (d *DockerConfig) UnmarshalJSON(b []byte) error {
	if problem := d.decodeJSON(b); problem != "" {
		return fmt.Errorf("%w: config: %s", runner.ErrInvalidConfig, problem)
	}
	return nil
}

// decodeJSON reads an object or a string and says what is wrong, if
// anything.
func (d *DockerConfig) decodeJSON(b []byte) string {
	t := bytes.TrimSpace(b)
	switch {
	case string(t) == "null":
		return ""
	case len(t) > 0 && t[0] == '{':
		*d = DockerConfig(t)
		return ""
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return "must be a docker config object, inline JSON or a path"
	}
	*d = DockerConfig(s)
	return ""
}

// String hides an inline config, which holds secrets.
func (d DockerConfig) String() string {
	if d != "" && d.path() == "" {
		return "<inline docker config>"
	}
	return string(d)
}

// path is the config's path, "" for an inline config.
func (d DockerConfig) path() string {
	if strings.HasPrefix(strings.TrimSpace(string(d)), "{") {
		return ""
	}
	return string(d)
}
