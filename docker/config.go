package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

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

// Config configures a [Runner]: what a taskRunner block may say. It is a
// plain struct whose JSON form uses the property names of Kestra's Docker
// task runner, flat, so a workflow engine can unmarshal a Kestra taskRunner
// block into it (see [ParseConfig]). The zero value is valid and means
// Kestra's defaults: pull if not present, the image's entrypoint cleared,
// containers deleted, runs waited for.
//
// Its settings are grouped by concern in embedded structs, whose fields are
// promoted (cfg.PullPolicy, cfg.Memory, cfg.Delete) and whose properties
// stay at the top of the JSON form: [Pull] (the image), [Container] (the
// container's user, network, ports, limits, devices, volumes, labels,
// runtime) and [Lifecycle] (delete, wait, resume, how a container is
// stopped). What only the host program decides (the logger, the
// concurrency limit, what a block may widen) is not here: it is given to
// [New] as [Option]s.
type Config struct {
	// Host is the engine's address, e.g. "unix:///var/run/docker.sock" or
	// "tcp://127.0.0.1:2375". Empty means DOCKER_HOST; without it, the
	// docker CLI's context (DOCKER_CONTEXT, else currentContext in
	// $DOCKER_CONFIG/config.json or ~/.docker/config.json: its host and TLS
	// files, an ssh:// host through the ssh command, as for the CLI); then
	// the platform default (unix:///var/run/docker.sock). A taskRunner
	// block may set it only with [Allow.Host].
	Host string `json:"host,omitempty"`

	// TLS configures a tcp:// Host's TLS: the CA that signs the engine's
	// certificate and the client's certificate and key. Nil means
	// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the docker CLI reads them.
	// See [TLS].
	TLS *TLS `json:"tls,omitempty"`

	Pull
	Container
	Lifecycle

	// FileHandlingStrategy is VOLUME (default) or MOUNT; see
	// [FileHandlingVolume] and [FileHandlingMount].
	FileHandlingStrategy FileHandlingStrategy `json:"fileHandlingStrategy,omitempty"`

	// MaxOutputBytes and MaxOutputFiles bound what a run hands back, under
	// both strategies (a sparse file counts by its size); going over fails
	// the run's collection with [files.ErrLimit] and removes the partial
	// output (under MOUNT, what the run created: see the package doc,
	// Output files). Zero means [files.DefaultMaxBytes] (10 GiB) and
	// [files.DefaultMaxFiles] (100,000).
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
	MaxOutputFiles int   `json:"maxOutputFiles,omitempty"`

	// StatsInterval, when positive, follows the container's resource use
	// while it runs: [runner.Result] gets PeakMemory and CPUTime, and the
	// task's OnStats (if set) a sample at most this often. Each sample is
	// a one-shot poll of the engine (a few milliseconds where the engine
	// answers at once; Docker 20.10 answers at its own 1 s pace after the
	// first). Where the engine reports no max_usage (cgroup v2, Podman),
	// PeakMemory is the peak of the samples. Zero means stats are followed
	// only for tasks with OnStats, every second.
	StatsInterval Duration `json:"statsInterval,omitempty"`
}

// Bool returns a pointer to b, for [Lifecycle.Delete] and [Lifecycle.Wait].
func Bool(b bool) *bool { return &b }

// ParseConfig decodes a JSON (or Kestra YAML converted to JSON) taskRunner
// block into a Config and validates it, allowing nothing of [Allow]: it is
// ParseConfigAllowing(data, Allow{}).
func ParseConfig(data []byte) (Config, error) { return ParseConfigAllowing(data, Allow{}) }

// ParseConfigAllowing decodes a JSON (or Kestra YAML converted to JSON)
// taskRunner block into a Config and validates it, allowing what allow
// allows. Give [New] the same Allow ([WithAllow]): New checks the Config
// again, against its own.
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
	var cfg Config
	if err := cfg.unmarshal(data, allow); err != nil {
		var fe *runner.FieldError
		if errors.As(err, &fe) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("docker: parse config: %w", err)
	}
	if _, err := cfg.compile(allow, nil); err != nil {
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

// UnmarshalJSON reads a taskRunner block as [ParseConfig] does, onto c:
// properties the block leaves out keep c's values. A block that changes
// Host is refused (the host program may allow that with
// [ParseConfigAllowing] and [Allow.Host]). It does not validate: call
// [Config.Validate] (or [New]) next.
func (c *Config) UnmarshalJSON(data []byte) error { return c.unmarshal(data, Allow{}) }

// unmarshal is UnmarshalJSON with allow's Host.
func (c *Config) unmarshal(data []byte, allow Allow) error {
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
	if wire.plain.Host != c.Host && !allow.Host {
		return invalidConfig("host", wire.plain.Host, "the engine's address: a workflow author may not choose the engine that receives the task's secrets and the host's registry credentials unless the host program sets Allow.Host (ParseConfigAllowing)")
	}
	*c = Config(wire.plain)
	return nil
}

// Validate reports the first invalid field as a [*runner.FieldError] that
// matches [runner.ErrInvalidConfig], refusing every setting that needs
// [Allow] (as [ParseConfig] does): [New] checks them against its
// [WithAllow].
func (c *Config) Validate() error {
	_, err := c.compile(Allow{}, nil)
	return err
}

// compiled is a Config's parsed forms, made once by [New] and [Runner.With]
// and used by every run.
type compiled struct {
	pull      compiledPull
	container compiledContainer
}

// compile validates c, with allow for the settings that widen a
// container's reach, and returns its parsed forms. With a parent (the
// Runner that With is called on), the docker config the parent read is
// kept when c names the same one: it is read once, by New.
func (c *Config) compile(allow Allow, parent *Runner) (*compiled, error) {
	if c.Host != "" && !strings.Contains(c.Host, "://") {
		return nil, invalidConfig("host", c.Host, `must be a URL such as "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375"`)
	}
	if err := c.TLS.validate(c.Host); err != nil {
		return nil, err
	}
	var known *compiledPull
	if parent != nil && parent.cfg.DockerConfig == c.DockerConfig {
		known = &parent.compiled.pull
	}
	pull, err := c.Pull.compile(known)
	if err != nil {
		return nil, err
	}
	ctr, err := c.Container.compile(allow)
	if err != nil {
		return nil, err
	}
	if err := c.Lifecycle.Validate(); err != nil {
		return nil, err
	}
	switch c.FileHandlingStrategy {
	case "", FileHandlingVolume, FileHandlingMount:
	default:
		return nil, invalidConfig("fileHandlingStrategy", string(c.FileHandlingStrategy), "must be VOLUME or MOUNT")
	}
	if c.MaxOutputBytes < 0 || c.MaxOutputFiles < 0 {
		return nil, invalidConfig("maxOutputBytes", fmt.Sprint(c.MaxOutputBytes, "/", c.MaxOutputFiles), "limits must not be negative")
	}
	if c.StatsInterval < 0 {
		return nil, invalidConfig("statsInterval", c.StatsInterval.String(), "must not be negative")
	}
	return &compiled{pull: pull, container: ctr}, nil
}

func invalidConfig(field, value, problem string) error {
	return &runner.FieldError{Field: field, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
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
