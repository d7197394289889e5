package build

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/distribution/reference"

	"github.com/lading-dev/lading/runner"
)

// Pull policies for the base images a build starts from.
const (
	// PullIfNotPresent (the default) uses a base image the engine has and
	// pulls one it lacks, so a build from a local base works offline.
	PullIfNotPresent = "IF_NOT_PRESENT"
	// PullAlways asks the registry for every base image on every build.
	// The base may have changed, so the cache by content is not used: each
	// build with it calls the engine (whose layer cache still applies).
	PullAlways = "ALWAYS"
)

// DefaultName is the repository a build's image is tagged in when
// [Spec.Name] is empty.
const DefaultName = "lading-build"

// ErrInvalidSpec is matched by the [*runner.FieldError] that [Spec.Validate]
// returns; such an error also matches [runner.ErrInvalidTask], since a
// build is per-call input like a task.
var ErrInvalidSpec error = invalidSpec{}

type invalidSpec struct{}

func (invalidSpec) Error() string        { return "invalid build spec" }
func (invalidSpec) Is(target error) bool { return target == runner.ErrInvalidTask }

// ErrBuildFailed is matched by the error of a build the engine ran and
// that failed: a [*StepError].
var ErrBuildFailed = errors.New("build failed")

// Spec says what to build. It is a plain value, safe to copy and reuse;
// its JSON names are those a user writes in a configuration file.
//
// Build args end up in the image: the classic builder records the args a
// RUN step used in the image's history (`docker history --no-trunc` shows
// `|1 TOKEN=value /bin/sh -c ...`), and anyone who can pull the image can
// read them. SecretArgs are masked in what lading hands back (progress
// lines, errors), not in the image. Do not pass a secret the image must not
// hold as a build arg.
type Spec struct {
	// Context is the directory sent to the engine (required). A symbolic
	// link to a directory is resolved first, as the docker CLI does.
	Context string `json:"context"`
	// Containerfile is the path of the build file, relative to Context
	// and inside it. Empty: "Containerfile", else "Dockerfile" (the first
	// present), as Podman and Clace look for them.
	Containerfile string `json:"containerfile,omitempty"`
	// Args are the build args (`--build-arg NAME=value`).
	Args map[string]string `json:"args,omitempty"`
	// SecretArgs are build args whose values are masked as "****" in
	// everything lading hands back. Their names, not their values, enter
	// the [Context.Digest]: the tag is readable by anyone who lists images, and a
	// hash of a short secret can be guessed; changing only a secret's value
	// does not rebuild (set NoCache). Each value must have at least
	// [runner.MinSecretLength] characters, as task secrets do.
	SecretArgs map[string]string `json:"secretArgs,omitempty"`
	// Target is the stage of a multi-stage build to stop at (`--target`).
	Target string `json:"target,omitempty"`
	// Labels are set on the image (`--label`). The classic builder adds
	// them as a last LABEL step.
	Labels map[string]string `json:"labels,omitempty"`
	// Platform is "os/arch[/variant]" (e.g. "linux/amd64"); empty: the
	// engine's.
	Platform string `json:"platform,omitempty"`
	// PullPolicy is [PullIfNotPresent] (empty) or [PullAlways].
	PullPolicy string `json:"pullPolicy,omitempty"`
	// NoCache forces a rebuild: the cache by content is not looked at, and
	// the engine builds every step again (`--no-cache`). The result is
	// tagged as an ordinary build is.
	NoCache bool `json:"noCache,omitempty"`
	// Name is the repository the image is tagged in, e.g. "myapp" or
	// "registry.example.com/team/app"; the tag is the digest's hex. Empty:
	// [DefaultName].
	Name string `json:"name,omitempty"`

	// OnProgress, when set, receives each line of the engine's build
	// output, with the step being run, secret args masked. It is called
	// from the goroutine of the Build call, in order; a slow callback slows
	// the build's reading.
	OnProgress func(Progress) `json:"-"`
}

// Progress is one line of a build's output.
type Progress struct {
	Step        int    // the step being run, from 1; 0 before the first
	Steps       int    // the number of steps, when the engine says it
	Instruction string // the step's instruction, e.g. "RUN make"
	Line        string // the output line, without its newline
}

// Image is what a build returns.
type Image struct {
	// Ref is the image's reference, "<name>:<hex of Digest>": pass it as
	// [runner.Task.Image].
	Ref string
	// ID is the image's id on the engine ("sha256:...").
	ID string
	// Digest is the digest of what decides the build ("sha256:..."): see
	// [Context.Digest].
	Digest string
	// Cached is true when the engine already had the image and no build
	// was run.
	Cached bool
}

// Builder builds images. The docker package's Runner is one; an engine
// that builds implements it, found by type assertion on a [runner.Runner].
type Builder interface {
	Build(ctx context.Context, spec Spec) (Image, error)
}

// StepError reports a build the engine ran and that failed: the step that
// failed and the last lines of its output. It matches [ErrBuildFailed].
// Secret args are masked in every field.
type StepError struct {
	Step        int      // the failing step, from 1; 0 when it failed before any
	Steps       int      // the number of steps, 0 when unknown
	Instruction string   // the failing step's instruction, e.g. "RUN make"
	Message     string   // the engine's error message
	Lines       []string // the last output lines of the failing step, at most [StepErrorLines]
}

// StepErrorLines is how many of a failing step's last output lines a
// [StepError] keeps.
const StepErrorLines = 20

func (e *StepError) Error() string {
	var b strings.Builder
	b.WriteString("build failed")
	if e.Step > 0 {
		fmt.Fprintf(&b, " at step %d", e.Step)
		if e.Steps > 0 {
			fmt.Fprintf(&b, "/%d", e.Steps)
		}
		fmt.Fprintf(&b, " (%s)", e.Instruction)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if len(e.Lines) > 0 {
		b.WriteString("; last output:\n")
		b.WriteString(strings.Join(e.Lines, "\n"))
	}
	return b.String()
}

// Unwrap returns ErrBuildFailed.
func (e *StepError) Unwrap() error { return ErrBuildFailed }

// Ref returns the reference an image built from spec with the given
// digest is tagged as: "<name>:<hex>".
func (s Spec) Ref(digest string) string {
	name := s.Name
	if name == "" {
		name = DefaultName
	}
	return name + ":" + strings.TrimPrefix(digest, "sha256:")
}

// Validate checks the spec without looking at the disk, and returns a
// [*runner.FieldError] matching [ErrInvalidSpec] (and
// [runner.ErrInvalidTask]) naming the field and value; a secret arg's value
// is never shown.
func (s Spec) Validate() error {
	if s.Context == "" {
		return invalid("context", "", "is required: the directory sent to the engine")
	}
	if f := s.Containerfile; f != "" {
		if filepath.IsAbs(f) || path.IsAbs(filepath.ToSlash(f)) {
			return invalid("containerfile", f, "must be relative to the context directory")
		}
		if c := path.Clean(filepath.ToSlash(f)); c == ".." || strings.HasPrefix(c, "../") {
			return invalid("containerfile", f, "must be inside the context directory")
		}
	}
	for name := range s.Args {
		if err := argName("args", name); err != nil {
			return err
		}
		if _, dup := s.SecretArgs[name]; dup {
			return invalid("args."+name, "", "is also in secretArgs: give it once")
		}
	}
	for name, v := range s.SecretArgs {
		if err := argName("secretArgs", name); err != nil {
			return err
		}
		if utf8.RuneCountInString(v) < runner.MinSecretLength {
			return invalid("secretArgs."+name, "", fmt.Sprintf("must have at least %d characters (a shorter value would mask ordinary text: put it in args)", runner.MinSecretLength))
		}
	}
	for k := range s.Labels {
		if k == "" || strings.ContainsFunc(k, unicode.IsSpace) {
			return invalid("labels", k, "a label key must be non-empty and hold no white space")
		}
	}
	if s.Target != "" && strings.ContainsFunc(s.Target, unicode.IsSpace) {
		return invalid("target", s.Target, "must be a stage name")
	}
	if p := s.Platform; p != "" {
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
			return invalid("platform", p, `must be "os/arch" or "os/arch/variant", e.g. "linux/amd64"`)
		}
	}
	switch s.PullPolicy {
	case "", PullIfNotPresent, PullAlways:
	default:
		return invalid("pullPolicy", s.PullPolicy, "must be IF_NOT_PRESENT or ALWAYS")
	}
	if s.Name != "" {
		named, err := reference.ParseNormalizedNamed(s.Name)
		if err != nil {
			return invalid("name", s.Name, "is not a valid repository name: "+err.Error())
		}
		if _, tagged := named.(reference.Tagged); tagged {
			return invalid("name", s.Name, "must have no tag: the tag is the build's digest")
		}
		if _, digested := named.(reference.Digested); digested {
			return invalid("name", s.Name, "must have no digest: the tag is the build's digest")
		}
	}
	return nil
}

// argName checks a build arg's name.
func argName(field, name string) error {
	if name == "" || strings.ContainsAny(name, "= \t\r\n\x00") {
		return invalid(field, name, "a build arg's name must be non-empty and hold no '=', white space or NUL")
	}
	return nil
}

func invalid(field, value, problem string) error {
	return &runner.FieldError{Field: field, Value: value, Problem: problem, Err: ErrInvalidSpec}
}
