package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// "tcp://127.0.0.1:2375". Empty means DOCKER_HOST, then the platform
	// default (unix:///var/run/docker.sock).
	Host string `json:"host,omitempty"`

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
	// or a string starting with "{") or as a path, for credHelpers,
	// credsStore and auths (Kestra's config property). DOCKER_AUTH_CONFIG
	// and $DOCKER_CONFIG/config.json (or ~/.docker/config.json) are read
	// after it.
	DockerConfig DockerConfig `json:"config,omitempty"`

	// EntryPoint replaces the image's entrypoint. Nil means Kestra's default
	// [""]: the entrypoint is cleared and the interpreter runs directly. To
	// keep the image's own entrypoint, set it to an empty, non-nil slice.
	EntryPoint []string `json:"entryPoint,omitempty"`

	// User runs the script as this user ("name", "uid", "uid:gid").
	User string `json:"user,omitempty"`

	// NetworkMode is the container's network: "bridge" (engine default),
	// "host", "none", "container:<id>" or a network's name.
	NetworkMode string `json:"networkMode,omitempty"`

	// ExtraHosts adds "host:ip" lines to the container's /etc/hosts.
	ExtraHosts []string `json:"extraHosts,omitempty"`

	// PortBindings publishes ports, as docker run -p does:
	// "[ip:]hostPort:containerPort[/proto]", e.g. "127.0.0.1:8080:80/tcp".
	PortBindings []string `json:"portBindings,omitempty"`

	// Privileged gives the container extended privileges.
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

	// DeviceRequests asks device drivers for devices (GPUs).
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
	// They are refused unless the host program sets VolumesEnabled: a
	// workflow author must not be able to mount the host's files.
	Volumes []string `json:"volumes,omitempty"`

	// VolumesEnabled allows Volumes. It is the host program's decision, so
	// it has no JSON form (Kestra's volume-enabled plugin setting).
	VolumesEnabled bool `json:"-"`

	// MaxOutputBytes and MaxOutputFiles bound what is copied back from the
	// container; going over fails the run's collection with
	// [files.ErrLimit] and removes the partial output. Zero means
	// [files.DefaultMaxBytes] (10 GiB) and [files.DefaultMaxFiles]
	// (100,000).
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
	// this Runner; further calls to Run wait for a free slot, honouring
	// their context while they wait. The task's Timeout starts once the slot
	// is taken.
	MaxConcurrency int `json:"maxConcurrency,omitempty"`

	// StatsInterval, when positive, follows the container's resource use
	// while it runs: [runner.Result] gets PeakMemory and CPUTime, and the
	// task's OnStats (if set) a sample at most this often. The engine
	// samples about once a second, so shorter intervals act as 1 s. Zero
	// means stats are followed only for tasks with OnStats, every second.
	StatsInterval Duration `json:"statsInterval,omitempty"`

	// Logger receives lifecycle events at debug level. Nil is silent.
	Logger *slog.Logger `json:"-"`
}

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
// block into a Config and validates it. Unknown properties are an error that
// names them, so a typo is not silently ignored; Kestra's "type" and
// "version" properties are accepted and ignored.
func ParseConfig(data []byte) (Config, error) {
	var wire struct {
		Config
		Type    string `json:"type"`
		Version string `json:"version"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wire); err != nil {
		return Config{}, fmt.Errorf("docker: parse config: %w: %w", runner.ErrInvalidConfig, err)
	}
	if err := wire.Config.Validate(); err != nil {
		return Config{}, err
	}
	return wire.Config, nil
}

// Validate reports the first invalid field as a [*runner.FieldError] that
// matches [runner.ErrInvalidConfig].
func (c *Config) Validate() error {
	switch c.PullPolicy {
	case "", PullIfNotPresent, PullAlways, PullNever:
	default:
		return invalidConfig("pullPolicy", string(c.PullPolicy), "must be one of IF_NOT_PRESENT, ALWAYS, NEVER")
	}
	if c.Host != "" && !strings.Contains(c.Host, "://") {
		return invalidConfig("host", c.Host, `must be a URL such as "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375"`)
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
			return &runner.FieldError{Field: "config", Value: "<redacted>", Problem: err.Error(), Err: runner.ErrInvalidConfig}
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
	if len(c.Volumes) > 0 && !c.VolumesEnabled {
		return invalidConfig("volumes", strings.Join(c.Volumes, ","), "volume mounts are disabled: the host program must set VolumesEnabled to allow them")
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
	return nil
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
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		*d = DockerConfig(t)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("config: must be a docker config object, inline JSON or a path")
	}
	*d = DockerConfig(s)
	return nil
}

// String hides an inline config, which holds secrets.
func (d DockerConfig) String() string {
	if strings.HasPrefix(strings.TrimSpace(string(d)), "{") {
		return "<inline docker config>"
	}
	return string(d)
}
