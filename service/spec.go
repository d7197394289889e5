package service

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/shlex"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// DefaultNamespace is the namespace of a [Spec] that names none.
const DefaultNamespace = "default"

// Health check defaults, for the fields of [HealthCheck] left zero.
const (
	DefaultHealthInterval = time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthRetries  = 3
)

// Restart policies, for [Spec.Restart].
const (
	RestartNo        = "no"         // never restarted (the default)
	RestartOnFailure = "on-failure" // restarted after a non-zero exit, at most MaxRestarts times
	RestartAlways    = "always"     // restarted whatever the exit, until deleted
)

// Spec describes a service: a long-running container with a slug, reached
// by its hostname on its namespace's network and, when it has a port, on
// the host's loopback. It is a plain value; JSON names are those a user
// writes.
type Spec struct {
	// Name is a display name; it defaults to Slug.
	Name string `json:"name,omitempty"`
	// Slug identifies the service within its namespace: 1 to 40 lowercase
	// letters, digits and hyphens, starting with a letter and not ending
	// with a hyphen. Deploying a slug already taken in the namespace fails
	// with [ErrSlugTaken].
	Slug string `json:"slug"`
	// Namespace groups services: they share env defaults (see [Namespace])
	// and a network on which each reaches the others by slug and by
	// hostname. Same rules as Slug; empty means [DefaultNamespace].
	Namespace string `json:"namespace,omitempty"`
	// Image is the image reference (pulled as the engine's pull policy
	// says). Exactly one of Image and Build is set.
	Image string `json:"image,omitempty"`
	// Build, in place of Image, builds the service's image from a
	// Containerfile with the engine's builder ([build.Builder]) before
	// each deploy: an unchanged context is a cache hit that makes no
	// build. Its Context is a directory of the host, read by lading: a
	// host program that takes specs from users checks it.
	Build *build.Spec `json:"build,omitempty"`
	// Port is the port the service listens on, 1-65535. Zero means the
	// image's EXPOSE when it declares exactly one, else no port.
	Port int `json:"port,omitempty"`
	// HostPort fixes the port on the host's loopback that Port is published
	// at; zero means a free one, chosen by the engine.
	HostPort int `json:"hostPort,omitempty"`
	// Env is the service's environment; it overrides the namespace's.
	Env map[string]string `json:"env,omitempty"`
	// SecretEnv is environment whose values are masked (as ****) in
	// everything lading hands back: logs, states, errors.
	SecretEnv map[string]string `json:"secretEnv,omitempty"`
	// Entrypoint replaces the image's entrypoint; nil keeps it.
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Command replaces the image's CMD. It is one string, split into
	// arguments as a POSIX shell would split it (quotes and backslashes;
	// no variable expansion), by [SplitCommand]. Empty keeps the CMD.
	Command string `json:"command,omitempty"`
	// CPU limits the service, in cores ("1.5") or millicores ("500m").
	// Zero means [Limits.DefaultCPU].
	CPU cpu.CPUs `json:"cpu,omitempty"`
	// Memory limits the service ("512Mi", "2Gi"). Zero means
	// [Limits.DefaultMemory].
	Memory memory.Size `json:"memory,omitempty"`
	// CPUShares is the service's relative CPU weight against other
	// containers (Docker's cpu shares: 2 to 262144, 1024 being the
	// default); zero keeps the engine's.
	CPUShares int64 `json:"cpuShares,omitempty"`
	// DiskSize limits the size of the container's root file system, where
	// the engine's storage driver supports it (Docker's overlay2 only on
	// xfs with pquota); elsewhere Deploy refuses it with an error naming
	// diskSize. Zero means no limit.
	DiskSize memory.Size `json:"diskSize,omitempty"`
	// Volumes are named volumes of the namespace, created when missing and
	// mounted at their paths. They outlive the service: Delete keeps them,
	// and only a volume deletion removes them.
	Volumes []Volume `json:"volumes,omitempty"`
	// HostVolumes bind-mount directories or files of the host. An engine
	// refuses them unless the host program allows host paths (on Docker,
	// docker.Allow.Volumes, the opt-in tasks' volumes need): a spec may
	// come from a user who must not read the host's files.
	HostVolumes []HostVolume `json:"hostVolumes,omitempty"`
	// IP, when set, is the service's fixed IPv4 or IPv6 address on its
	// namespace's network, which must then have a subnet ([Namespace.Subnet])
	// that holds it. Empty means an address the engine picks.
	IP string `json:"ip,omitempty"`
	// Health, when set, is checked before the service counts as DEPLOYED,
	// and for as long as it runs.
	Health *HealthCheck `json:"health,omitempty"`
	// Restart is the restart policy: [RestartNo] (empty), [RestartOnFailure]
	// or [RestartAlways].
	Restart string `json:"restart,omitempty"`
	// MaxRestarts bounds the restarts of [RestartOnFailure]; zero means no
	// bound.
	MaxRestarts int `json:"maxRestarts,omitempty"`
	// Ephemeral ties the service to the process that deploys it: once that
	// process has ended, a prune removes the service. A service that is not
	// ephemeral is deployed for good: it survives its deployer, and no
	// prune ever removes it. Tests deploy ephemeral services.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// Volume mounts a named volume of the service's namespace.
type Volume struct {
	// Name is the volume's name in the namespace (the rules of a slug).
	Name string `json:"name"`
	// Path is where it is mounted: absolute, clean, not "/".
	Path string `json:"path"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// HostVolume bind-mounts a path of the host.
type HostVolume struct {
	// HostPath is the host's path: absolute and clean.
	HostPath string `json:"hostPath"`
	// Path is where it is mounted: absolute, clean, not "/".
	Path string `json:"path"`
	// ReadOnly mounts it read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// HealthCheck says how a service proves it is ready. Exactly one of HTTP,
// TCP, Command and Log is set.
type HealthCheck struct {
	// HTTP checks with a GET of the service's port.
	HTTP *HTTPCheck `json:"http,omitempty"`
	// TCP checks that a connection to the service's port is accepted.
	TCP bool `json:"tcp,omitempty"`
	// Command runs inside the container (exec form: no shell unless it
	// names one); exit code 0 means healthy.
	Command []string `json:"command,omitempty"`
	// Log is a regular expression (Go's RE2 syntax) that a line the service
	// logs (stdout or stderr, secrets masked) must match, since its last
	// start; once one has, the check passes for as long as it runs.
	Log string `json:"log,omitempty"`
	// Interval between probes; zero means [DefaultHealthInterval].
	Interval time.Duration `json:"interval,omitempty"`
	// Timeout of one probe; zero means [DefaultHealthTimeout].
	Timeout time.Duration `json:"timeout,omitempty"`
	// Retries is the number of consecutive failed probes after which the
	// service is FAILED; zero means [DefaultHealthRetries].
	Retries int `json:"retries,omitempty"`
	// StartPeriod is the time after the start during which failed probes
	// do not count.
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
}

// HTTPCheck is an HTTP GET of the service's port.
type HTTPCheck struct {
	// Path of the request; empty means "/".
	Path string `json:"path,omitempty"`
	// Status expected; zero means any 2xx or 3xx.
	Status int `json:"status,omitempty"`
}

// Namespace holds what the services of a namespace share.
type Namespace struct {
	// Env defaults, overridden by a service's own Env and SecretEnv.
	Env map[string]string `json:"env,omitempty"`
	// SecretEnv defaults, masked as [Spec.SecretEnv] is.
	SecretEnv map[string]string `json:"secretEnv,omitempty"`
	// Subnet is the CIDR of the namespace's network ("10.42.0.0/24"),
	// which a service's fixed [Spec.IP] needs; empty lets the engine
	// choose one. It applies when the network is created, by the first
	// deploy of the namespace.
	Subnet string `json:"subnet,omitempty"`
}

// Validate checks ns: its Subnet, when set, is a CIDR (a
// [*runner.FieldError] for "subnet" matching [ErrInvalidSpec]).
func (ns Namespace) Validate() error {
	if ns.Subnet == "" {
		return nil
	}
	p, err := netip.ParsePrefix(ns.Subnet)
	if err != nil || p.Masked() != p {
		return invalid("subnet", ns.Subnet, "must be a network in CIDR notation, such as 10.42.0.0/24")
	}
	return nil
}

// Limits are the defaults and maxima a host program sets for its services'
// CPU and memory. A zero maximum means no maximum.
type Limits struct {
	DefaultCPU    cpu.CPUs
	MaxCPU        cpu.CPUs
	DefaultMemory memory.Size
	MaxMemory     memory.Size
}

// DefaultLimits are Dataflow's: CPU 1 core by default, at most 2; memory
// 2Gi by default, at most 8Gi.
var DefaultLimits = Limits{
	DefaultCPU:    1000,
	MaxCPU:        2000,
	DefaultMemory: 2 << 30,
	MaxMemory:     8 << 30,
}

// slugPattern is a DNS label of at most 40 characters starting with a letter.
var slugPattern = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidSlug returns nil when s is a valid slug or namespace, else a
// [*runner.FieldError] for field.
func ValidSlug(field, s string) error {
	if slugPattern.MatchString(s) {
		return nil
	}
	return invalid(field, s, "must be 1 to 40 lowercase letters, digits and hyphens, start with a letter and not end with a hyphen")
}

func invalid(field, value, problem string) error {
	return &runner.FieldError{Field: field, Value: value, Problem: problem, Err: ErrInvalidSpec}
}

// Resolve returns spec with the namespace's env merged under its own, the
// limits' defaults filled in and its defaults set (Name, Namespace, the
// health check's durations), after checking it: the error is a
// [*runner.FieldError] matching [ErrInvalidSpec] that names the field and
// the value (never a secret's). Engines call it before deploying, so they
// agree on what a spec means.
func Resolve(spec Spec, ns Namespace, limits Limits) (Spec, error) {
	if spec.Namespace == "" {
		spec.Namespace = DefaultNamespace
	}
	if spec.Name == "" {
		spec.Name = spec.Slug
	}
	if err := ValidSlug("slug", spec.Slug); err != nil {
		return spec, err
	}
	if err := ValidSlug("namespace", spec.Namespace); err != nil {
		return spec, err
	}
	switch {
	case spec.Build != nil && spec.Image != "":
		return spec, invalid("image", spec.Image, "must be empty when build is set (the build makes the image)")
	case spec.Build != nil:
		if err := spec.Build.Validate(); err != nil {
			var fe *runner.FieldError
			if errors.As(err, &fe) {
				return spec, invalid("build."+fe.Field, fe.Value, fe.Problem)
			}
			return spec, invalid("build", "", err.Error())
		}
	case strings.TrimSpace(spec.Image) == "":
		return spec, invalid("image", spec.Image, "must not be empty (or set build)")
	}
	if spec.Port < 0 || spec.Port > 65535 {
		return spec, invalid("port", strconv.Itoa(spec.Port), "must be between 1 and 65535")
	}
	if spec.HostPort < 0 || spec.HostPort > 65535 {
		return spec, invalid("hostPort", strconv.Itoa(spec.HostPort), "must be between 1 and 65535")
	}
	env := maps.Clone(ns.Env)
	if env == nil {
		env = map[string]string{}
	}
	secret := maps.Clone(ns.SecretEnv)
	if secret == nil {
		secret = map[string]string{}
	}
	for k, v := range spec.Env {
		env[k] = v
		delete(secret, k)
	}
	for k, v := range spec.SecretEnv {
		secret[k] = v
		delete(env, k)
	}
	for _, k := range sortedKeys(env) {
		if err := validKey("env", k); err != nil {
			return spec, err
		}
	}
	for _, k := range sortedKeys(secret) {
		if err := validKey("secretEnv", k); err != nil {
			return spec, err
		}
		if strings.ContainsRune(secret[k], 0) {
			return spec, invalid("secretEnv."+k, "", "must not contain a NUL byte")
		}
	}
	spec.Env, spec.SecretEnv = env, secret
	if _, err := SplitCommand(spec.Command); err != nil {
		return spec, err
	}
	if spec.CPU < 0 {
		return spec, invalid("cpu", spec.CPU.String(), "must not be negative")
	}
	if spec.CPU == 0 {
		spec.CPU = limits.DefaultCPU
	}
	if limits.MaxCPU > 0 && spec.CPU > limits.MaxCPU {
		return spec, invalid("cpu", spec.CPU.String(), "must be at most "+limits.MaxCPU.String())
	}
	if spec.Memory < 0 {
		return spec, invalid("memory", spec.Memory.String(), "must not be negative")
	}
	if spec.Memory == 0 {
		spec.Memory = limits.DefaultMemory
	}
	if limits.MaxMemory > 0 && spec.Memory > limits.MaxMemory {
		return spec, invalid("memory", spec.Memory.String(), "must be at most "+limits.MaxMemory.String())
	}
	if spec.Memory > 0 && spec.Memory < 6<<20 {
		return spec, invalid("memory", spec.Memory.String(), "must be at least 6Mi")
	}
	if spec.CPUShares != 0 && (spec.CPUShares < 2 || spec.CPUShares > 262144) {
		return spec, invalid("cpuShares", strconv.FormatInt(spec.CPUShares, 10), "must be between 2 and 262144")
	}
	if spec.DiskSize < 0 {
		return spec, invalid("diskSize", spec.DiskSize.String(), "must not be negative")
	}
	paths := map[string]bool{}
	for i, v := range spec.Volumes {
		field := fmt.Sprintf("volumes[%d]", i)
		if err := ValidSlug(field+".name", v.Name); err != nil {
			return spec, err
		}
		if !path.IsAbs(v.Path) || path.Clean(v.Path) != v.Path || v.Path == "/" {
			return spec, invalid(field+".path", v.Path, "must be an absolute, clean path other than /")
		}
		if paths[v.Path] {
			return spec, invalid(field+".path", v.Path, "is the path of another volume")
		}
		paths[v.Path] = true
	}
	for i, v := range spec.HostVolumes {
		field := fmt.Sprintf("hostVolumes[%d]", i)
		if !filepath.IsAbs(v.HostPath) || filepath.Clean(v.HostPath) != v.HostPath {
			return spec, invalid(field+".hostPath", v.HostPath, "must be an absolute, clean path")
		}
		if !path.IsAbs(v.Path) || path.Clean(v.Path) != v.Path || v.Path == "/" {
			return spec, invalid(field+".path", v.Path, "must be an absolute, clean path other than /")
		}
		if paths[v.Path] {
			return spec, invalid(field+".path", v.Path, "is the path of another volume")
		}
		paths[v.Path] = true
	}
	if spec.IP != "" {
		ip, err := netip.ParseAddr(spec.IP)
		if err != nil || ip.Zone() != "" {
			return spec, invalid("ip", spec.IP, "must be an IPv4 or IPv6 address")
		}
		if ns.Subnet == "" {
			return spec, invalid("ip", spec.IP, "needs a subnet for the namespace "+spec.Namespace+" (its Namespace.Subnet), which holds it")
		}
		if err := ns.Validate(); err != nil {
			return spec, err
		}
		if p := netip.MustParsePrefix(ns.Subnet); !p.Contains(ip) {
			return spec, invalid("ip", spec.IP, "is not in the namespace's subnet "+ns.Subnet)
		}
	}
	switch spec.Restart {
	case "", RestartNo, RestartAlways:
		if spec.MaxRestarts != 0 {
			return spec, invalid("maxRestarts", strconv.Itoa(spec.MaxRestarts), "applies only to restart "+RestartOnFailure)
		}
	case RestartOnFailure:
		if spec.MaxRestarts < 0 {
			return spec, invalid("maxRestarts", strconv.Itoa(spec.MaxRestarts), "must not be negative")
		}
	default:
		return spec, invalid("restart", spec.Restart, "must be one of no, on-failure, always")
	}
	if spec.Health != nil {
		h, err := resolveHealth(*spec.Health)
		if err != nil {
			return spec, err
		}
		spec.Health = &h
	}
	return spec, nil
}

func resolveHealth(h HealthCheck) (HealthCheck, error) {
	kinds := 0
	if h.HTTP != nil {
		kinds++
		if h.HTTP.Path == "" {
			h.HTTP = &HTTPCheck{Path: "/", Status: h.HTTP.Status}
		}
		if !strings.HasPrefix(h.HTTP.Path, "/") {
			return h, invalid("health.http.path", h.HTTP.Path, "must start with /")
		}
		if h.HTTP.Status != 0 && (h.HTTP.Status < 100 || h.HTTP.Status > 599) {
			return h, invalid("health.http.status", strconv.Itoa(h.HTTP.Status), "must be an HTTP status, 100-599")
		}
	}
	if h.TCP {
		kinds++
	}
	if len(h.Command) > 0 {
		kinds++
	}
	if h.Log != "" {
		kinds++
		if _, err := regexp.Compile(h.Log); err != nil {
			return h, invalid("health.log", clip(h.Log), "is not a regular expression: "+err.Error())
		}
	}
	if kinds != 1 {
		return h, invalid("health", strconv.Itoa(kinds)+" kinds", "must set exactly one of http, tcp, command, log")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"interval", &h.Interval, DefaultHealthInterval}, {"timeout", &h.Timeout, DefaultHealthTimeout}, {"startPeriod", &h.StartPeriod, 0}} {
		if *d.v < 0 {
			return h, invalid("health."+d.name, d.v.String(), "must not be negative")
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	// Docker's health checks count in milliseconds, at least 1 ms.
	if h.Interval < time.Millisecond {
		return h, invalid("health.interval", h.Interval.String(), "must be at least 1ms")
	}
	if h.Timeout < time.Millisecond {
		return h, invalid("health.timeout", h.Timeout.String(), "must be at least 1ms")
	}
	if h.Retries < 0 {
		return h, invalid("health.retries", strconv.Itoa(h.Retries), "must not be negative")
	}
	if h.Retries == 0 {
		h.Retries = DefaultHealthRetries
	}
	return h, nil
}

// envKey is what a POSIX shell accepts as a variable name.
var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validKey(field, k string) error {
	if envKey.MatchString(k) {
		return nil
	}
	return invalid(field, k, "is not a variable name (letters, digits and _, not starting with a digit)")
}

// ParseEnv reads environment variables written as Dataflow takes them:
// KEY=VALUE, one per line. Blank lines and lines starting with # are
// skipped; spaces around the key are trimmed, the value is kept as written
// (quotes included), and a later line wins. A bad line is an error naming
// its number: a [*runner.FieldError] for "env[line N]" matching
// [ErrInvalidSpec].
func ParseEnv(text string) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		field := fmt.Sprintf("env[line %d]", n)
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, invalid(field, clip(trimmed), "must be KEY=VALUE")
		}
		k = strings.TrimSpace(k)
		if !envKey.MatchString(k) {
			return nil, invalid(field, clip(k), "the key is not a variable name (letters, digits and _, not starting with a digit)")
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, invalid("env", "", err.Error())
	}
	return env, nil
}

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// SplitCommand splits a command line into arguments as a POSIX shell would
// (single and double quotes, backslash escapes), without expanding
// variables or globs, with github.com/google/shlex. An empty or blank line
// gives nil. An unterminated quote is a [*runner.FieldError] for "command".
func SplitCommand(line string) ([]string, error) {
	if strings.TrimSpace(line) == "" {
		return nil, nil
	}
	args, err := shlex.Split(line)
	if err != nil {
		return nil, invalid("command", clip(line), err.Error())
	}
	return args, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
