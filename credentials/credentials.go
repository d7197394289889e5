package credentials

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"

	"github.com/lading-dev/lading/runner"
)

// DockerHub is the key all of Docker Hub's names normalise to.
const DockerHub = "docker.io"

// dockerHubServer is the server address the docker CLI uses for Docker Hub in
// config files and helper calls.
const dockerHubServer = "https://index.docker.io/v1/"

// RegistryOf returns the registry an image reference pulls from, normalised
// ([NormalizeRegistry]).
func RegistryOf(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", &runner.FieldError{Field: "image", Value: image, Problem: "is not a valid image reference: " + err.Error(), Err: runner.ErrInvalidTask}
	}
	return NormalizeRegistry(reference.Domain(named)), nil
}

// NormalizeRegistry turns a registry as written in a config or a credentials
// block ("https://index.docker.io/v1/", "HOST:5000/", "registry-1.docker.io")
// into a key: the lower-case host and port, with Docker Hub's aliases as
// "docker.io".
func NormalizeRegistry(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			s = u.Host
		}
	}
	s, _, _ = strings.Cut(s, "/")
	s = strings.ToLower(s)
	switch s {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return DockerHub
	}
	return s
}

// Credentials are explicit registry credentials, with the property names of
// Kestra's credentials block. Only one way to authenticate is needed:
// username and password, auth (base64 of "user:password"), an identity
// token, or a registry token.
type Credentials struct {
	// Registry is the registry they are for; empty means the registry of
	// whatever image is pulled.
	Registry      string `json:"registry,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identityToken,omitempty"`
	RegistryToken string `json:"registryToken,omitempty"`
}

// String prints the registry and user name, never a secret.
func (c Credentials) String() string {
	return fmt.Sprintf("credentials{registry: %q, username: %q, secrets: redacted}", c.Registry, c.Username)
}

// GoString is String, so %#v does not print secrets either.
func (c Credentials) GoString() string { return c.String() }

// Format makes every verb (%v, %+v, %#v, %s) print String.
func (c Credentials) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue keeps secrets out of slog output.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("registry", c.Registry), slog.String("username", c.Username))
}

// Validate reports a malformed block as a [*runner.FieldError] whose Value
// holds no secret (it is empty for the fields that carry one).
func (c Credentials) Validate() error {
	bad := func(field, value, problem string) error {
		return &runner.FieldError{Field: "credentials." + field, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
	}
	if c.Auth != "" {
		if _, _, err := decodeAuth(c.Auth); err != nil {
			return bad("auth", "", err.Error()) // the value is never quoted
		}
	}
	if c.Password != "" && c.Username == "" {
		return bad("username", "", "is required with a password")
	}
	if c.Registry != "" && NormalizeRegistry(c.Registry) == "" {
		return bad("registry", c.Registry, "is not a registry host")
	}
	return nil
}

// decodeAuth decodes a config's auth field: standard base64 of "user:pass".
func decodeAuth(auth string) (string, string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
	if err != nil {
		return "", "", fmt.Errorf("is not base64 of user:password")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", fmt.Errorf("does not hold user:password")
	}
	return user, pass, nil
}

// Auth is the credentials chosen for one registry. The zero value means
// none. It prints without secrets.
type Auth struct {
	registry      string
	username      string
	password      string
	identityToken string
	registryToken string
	source        string
}

// IsZero reports whether no credentials were found.
func (a Auth) IsZero() bool {
	return a.username == "" && a.password == "" && a.identityToken == "" && a.registryToken == ""
}

// Registry is the registry the credentials are for.
func (a Auth) Registry() string { return a.registry }

// Username is the user name, if any.
func (a Auth) Username() string { return a.username }

// Source says where the credentials came from, e.g. "credHelpers (ecr-login)".
func (a Auth) Source() string { return a.source }

// String prints the registry, user and source, never a secret.
func (a Auth) String() string {
	if a.IsZero() {
		return fmt.Sprintf("auth{registry: %q, none}", a.registry)
	}
	return fmt.Sprintf("auth{registry: %q, username: %q, from: %s, secrets: redacted}", a.registry, a.username, a.source)
}

// GoString is String.
func (a Auth) GoString() string { return a.String() }

// Format makes every verb print String.
func (a Auth) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(a.String())) }

// LogValue keeps secrets out of slog output.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("registry", a.registry), slog.String("username", a.username), slog.String("from", a.source))
}

// Header returns the X-Registry-Auth value for the engine: base64url of the
// JSON auth config. It is "" for the zero Auth.
func (a Auth) Header() (string, error) {
	if a.IsZero() {
		return "", nil
	}
	server := a.registry
	if server == DockerHub {
		server = dockerHubServer
	}
	return authconfig.Encode(registry.AuthConfig{
		Username:      a.username,
		Password:      a.password,
		ServerAddress: server,
		IdentityToken: a.identityToken,
		RegistryToken: a.registryToken,
	})
}

// Config is a docker config file (config.json): the parts about registries.
type Config struct {
	Auths       map[string]AuthEntry `json:"auths,omitempty"`
	CredHelpers map[string]string    `json:"credHelpers,omitempty"`
	CredsStore  string               `json:"credsStore,omitempty"`
}

// AuthEntry is one registry's entry in a config's auths.
type AuthEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// String prints no secret.
func (e AuthEntry) String() string {
	return fmt.Sprintf("authEntry{username: %q, secrets: redacted}", e.Username)
}

// Format makes every verb print String.
func (e AuthEntry) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(e.String())) }

// ConfigError reports a docker config that cannot be used: unreadable, not
// a regular file, larger than [MaxConfigSize], or not a docker config.json.
// It quotes nothing of the content, which holds secrets.
type ConfigError struct {
	// Source is where the config came from: its path,
	// "DOCKER_AUTH_CONFIG" or "the inline docker config".
	Source string
	// Problem says what is wrong, e.g. "is not a regular file (it is a
	// named pipe)".
	Problem string
	// Err is the underlying error, if any (from opening or reading a
	// file).
	Err error
}

func (e *ConfigError) Error() string { return "credentials: " + e.Source + ": " + e.Problem }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// MaxConfigSize is the size of the largest docker config lading reads (1
// MiB), whether a file or DOCKER_AUTH_CONFIG; real ones hold a few KiB.
const MaxConfigSize = 1 << 20

// ParseConfig reads a docker config.json. The error, a [*ConfigError], names
// where it came from (source) but quotes nothing of the content, which holds
// secrets.
func ParseConfig(data []byte, source string) (*Config, error) {
	bad := func(problem string) error { return &ConfigError{Source: source, Problem: problem} }
	if len(data) > MaxConfigSize {
		return nil, bad(fmt.Sprintf("is larger than 1 MiB (%d bytes), the most lading reads of a docker config", len(data)))
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		// json's messages can quote the content: say where, not what.
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, bad(fmt.Sprintf("is not valid JSON (at byte %d)", syn.Offset))
		}
		return nil, bad("does not have the shape of a docker config.json")
	}
	for name, helper := range c.CredHelpers {
		if !validHelper(helper) {
			return nil, bad(fmt.Sprintf("credHelpers[%q] = %q is not a helper name", name, helper))
		}
	}
	if c.CredsStore != "" && !validHelper(c.CredsStore) {
		return nil, bad(fmt.Sprintf("credsStore %q is not a helper name", c.CredsStore))
	}
	for name, e := range c.Auths {
		if e.Auth != "" {
			if _, _, err := decodeAuth(e.Auth); err != nil {
				return nil, bad(fmt.Sprintf("auths[%q].auth %v", name, err))
			}
		}
	}
	return &c, nil
}

// validHelper accepts helper names that cannot name a path.
func validHelper(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return !strings.HasPrefix(name, ".")
}

// entry returns the config's auths entry for a registry, matching keys by
// their normalised form.
func (c *Config) entry(reg string) (AuthEntry, bool) {
	for key, e := range c.Auths {
		if NormalizeRegistry(key) == reg {
			return e, true
		}
	}
	return AuthEntry{}, false
}

// helper returns the config's credential helper for a registry, if any.
func (c *Config) helper(reg string) string {
	for key, h := range c.CredHelpers {
		if NormalizeRegistry(key) == reg {
			return h
		}
	}
	return c.CredsStore
}
