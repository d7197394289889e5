package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// helperTimeout bounds one credential helper call.
const helperTimeout = 30 * time.Second

// helperWaitDelay bounds the wait for a helper's output to close once the
// helper has exited or been killed: a process it left behind holding its
// stdout does not hold the caller too.
const helperWaitDelay = 2 * time.Second

// maxHelperOutput caps what lading reads of a helper's stdout and stderr:
// a reply is a few hundred bytes; a helper that floods is stopped.
const maxHelperOutput = 64 << 10

// Resolver finds the credentials for an image. The zero value looks only at
// DOCKER_AUTH_CONFIG and the user's docker config, through os.Getenv. A
// Resolver is safe for concurrent use.
type Resolver struct {
	// Explicit credentials win over every config.
	Explicit *Credentials
	// Config is the runner's docker config, checked before the
	// environment's.
	Config *Config
	// Getenv reads environment variables; nil means os.Getenv.
	Getenv func(string) string
	// HelperDir, when set, is where docker-credential-<name> programs are
	// looked for instead of PATH.
	HelperDir string
}

func (r Resolver) getenv(k string) string {
	if r.Getenv != nil {
		return r.Getenv(k)
	}
	return os.Getenv(k)
}

// Resolve returns the credentials to pull image with, or the zero Auth when
// there are none. Errors never hold a secret.
func (r Resolver) Resolve(ctx context.Context, image string) (Auth, error) {
	reg, err := RegistryOf(image)
	if err != nil {
		return Auth{}, err
	}
	if e := r.Explicit; e != nil && (e.Registry == "" || NormalizeRegistry(e.Registry) == reg) {
		if err := e.Validate(); err != nil {
			return Auth{}, err
		}
		a := Auth{registry: reg, username: e.Username, password: e.Password, identityToken: e.IdentityToken, registryToken: e.RegistryToken, source: "credentials"}
		if e.Auth != "" {
			a.username, a.password, _ = decodeAuth(e.Auth)
		}
		if !a.IsZero() {
			return a, nil
		}
	}
	configs, err := r.configs()
	if err != nil {
		return Auth{}, err
	}
	for _, c := range configs {
		a, found, err := r.fromConfig(ctx, c.config, c.source, reg)
		if err != nil || found {
			return a, err
		}
	}
	return Auth{registry: reg}, nil
}

type sourcedConfig struct {
	config *Config
	source string
}

// configs returns the configs to look in, in order.
func (r Resolver) configs() ([]sourcedConfig, error) {
	var out []sourcedConfig
	if r.Config != nil {
		out = append(out, sourcedConfig{r.Config, "the runner's docker config"})
	}
	if inline := r.getenv("DOCKER_AUTH_CONFIG"); inline != "" {
		c, err := ParseConfig([]byte(inline), "DOCKER_AUTH_CONFIG")
		if err != nil {
			return nil, err
		}
		out = append(out, sourcedConfig{c, "DOCKER_AUTH_CONFIG"})
	}
	dir := r.getenv("DOCKER_CONFIG")
	if dir == "" {
		if home := r.getenv("HOME"); home != "" {
			dir = filepath.Join(home, ".docker")
		}
	}
	if dir != "" {
		path := filepath.Join(dir, "config.json")
		data, err := readConfigFile(path)
		switch {
		case err == nil:
			c, err := ParseConfig(data, path)
			if err != nil {
				return nil, err
			}
			out = append(out, sourcedConfig{c, path})
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	return out, nil
}

// LoadConfig reads a docker config given as inline JSON (starting with "{")
// or as a path to a config.json. A path must name a regular file (a symbolic
// link to one is followed) of at most [MaxConfigSize] bytes: a named pipe,
// a device or a directory is refused without being read, so that no path
// blocks the caller or feeds it without end. Errors are [*ConfigError]s.
func LoadConfig(inlineOrPath string) (*Config, error) {
	s := strings.TrimSpace(inlineOrPath)
	if strings.HasPrefix(s, "{") {
		return ParseConfig([]byte(s), "the inline docker config")
	}
	data, err := readConfigFile(s)
	if err != nil {
		return nil, err
	}
	return ParseConfig(data, s)
}

// readConfigFile reads a regular file of at most MaxConfigSize bytes. It
// looks at the file before opening it, so that a device is never opened,
// opens it without blocking (a named pipe swapped in since does not hang
// the open), checks that what it opened is the regular file it looked at,
// and reads no more than the cap.
func readConfigFile(path string) ([]byte, error) {
	bad := func(problem string, err error) error { return &ConfigError{Source: path, Problem: problem, Err: err} }
	info, err := os.Stat(path)
	if err != nil {
		return nil, bad("cannot be read: "+pathErrorText(err), err)
	}
	if !info.Mode().IsRegular() {
		return nil, bad(notRegular(info.Mode()), nil)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, bad("cannot be read: "+pathErrorText(err), err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, bad("cannot be read: "+pathErrorText(err), err)
	}
	if !opened.Mode().IsRegular() {
		return nil, bad(notRegular(opened.Mode()), nil)
	}
	if !os.SameFile(info, opened) {
		return nil, bad("changed while it was being opened", nil)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, bad("cannot be read: "+pathErrorText(err), err)
	}
	if len(data) > MaxConfigSize {
		return nil, bad("is larger than 1 MiB, the most lading reads of a docker config", nil)
	}
	return data, nil
}

// notRegular says what a file that is not a regular file is.
func notRegular(mode fs.FileMode) string {
	kind := "something else"
	switch {
	case mode.IsDir():
		kind = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode&fs.ModeDevice != 0:
		kind = "a device"
	}
	return "is " + kind + ", not a regular file"
}

// pathErrorText is err's message without the path, which the error names
// already.
func pathErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// fromConfig looks a registry up in one config: helper first, then auths.
func (r Resolver) fromConfig(ctx context.Context, c *Config, source, reg string) (Auth, bool, error) {
	if h := c.helper(reg); h != "" {
		a, found, err := r.runHelper(ctx, h, reg)
		if err != nil || found {
			return a, found, err
		}
	}
	e, ok := c.entry(reg)
	if !ok {
		return Auth{}, false, nil
	}
	a := Auth{registry: reg, username: e.Username, password: e.Password, identityToken: e.IdentityToken, registryToken: e.RegistryToken, source: source}
	if e.Auth != "" {
		a.username, a.password, _ = decodeAuth(e.Auth) // validated by ParseConfig
	}
	return a, !a.IsZero(), nil
}

// helperReply is what a credential helper prints for "get".
type helperReply struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// runHelper runs docker-credential-<name> get with the registry's server
// address on stdin. A helper that has no credentials for it is not an
// error. Its output is never quoted in errors: it may hold the secret.
func (r Resolver) runHelper(ctx context.Context, name, reg string) (Auth, bool, error) {
	if !validHelper(name) {
		return Auth{}, false, fmt.Errorf("credentials: %q is not a credential helper name", name)
	}
	program := "docker-credential-" + name
	path := program
	if r.HelperDir != "" {
		path = filepath.Join(r.HelperDir, program)
	}
	resolved, err := exec.LookPath(path)
	if err != nil {
		return Auth{}, false, fmt.Errorf("credentials: credential helper %s for %s: not found (install it, or fix credHelpers/credsStore)", program, reg)
	}
	server := reg
	if reg == DockerHub {
		server = dockerHubServer
	}
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, resolved, "get")
	cmd.Stdin = strings.NewReader(server)
	cmd.WaitDelay = helperWaitDelay
	var stdout, stderr cappedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if errors.Is(runErr, exec.ErrWaitDelay) {
		runErr = nil // it exited 0 and left a process holding its output: its reply is complete
	}
	if stdout.over || stderr.over {
		return Auth{}, false, fmt.Errorf("credentials: credential helper %s for %s printed more than %d KiB; stopped (a reply is a few hundred bytes)", program, reg, maxHelperOutput>>10)
	}
	if runErr != nil {
		if strings.Contains(stdout.String(), "credentials not found") {
			return Auth{}, false, nil
		}
		if ctx.Err() != nil {
			return Auth{}, false, fmt.Errorf("credentials: credential helper %s for %s: %w", program, reg, ctx.Err())
		}
		return Auth{}, false, fmt.Errorf("credentials: credential helper %s for %s failed (%v); its output is not shown because it may hold secrets", program, reg, exitStatus(runErr))
	}
	var reply helperReply
	if err := json.Unmarshal(stdout.Bytes(), &reply); err != nil {
		return Auth{}, false, fmt.Errorf("credentials: credential helper %s for %s printed something that is not its JSON reply", program, reg)
	}
	a := Auth{registry: reg, username: reply.Username, password: reply.Secret, source: "credential helper " + name}
	if reply.Username == "<token>" {
		a.username, a.password, a.identityToken = "", "", reply.Secret
	}
	return a, !a.IsZero(), nil
}

// exitStatus describes how a helper ended without quoting its output.
func exitStatus(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ProcessState.String()
	}
	return "could not run"
}

// cappedBuffer keeps up to maxHelperOutput bytes and fails the write that
// goes past them, which stops the copy from the helper's pipe (the helper
// then gets EPIPE or SIGPIPE). The buffer is a field, not embedded: an
// embedded bytes.Buffer's ReadFrom would let io.Copy go around Write.
type cappedBuffer struct {
	buf  bytes.Buffer
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > maxHelperOutput {
		b.over = true
		return 0, errors.New("credential helper output over its cap")
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) String() string { return b.buf.String() }

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }
