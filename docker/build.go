package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/authconfig"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/internal/mask"
)

var _ build.Builder = (*Runner)(nil)

// Build builds spec's image on the engine with the classic builder
// (the engine's /build endpoint, builder version 1), or finds it built
// already, and returns its reference, to be passed as [runner.Task.Image]:
//
//	img, err := r.Build(ctx, build.Spec{Context: "./app", Args: map[string]string{"GO_VERSION": "1.26"}})
//	if err != nil { ... }
//	res, err := r.Run(ctx, runner.Task{Image: img.Ref, Commands: []string{"/app/server -check"}})
//
// # Cache by content
//
// Build first computes the build's [build.Context.Digest] (reading the
// context once) and looks for the image "<name>:<digest hex>". When the
// engine has it, Build returns it with Cached true and makes no build
// call. Otherwise it streams the context (read a second time, never held
// in memory) to /build, and tags the result once the stream it sent is
// known to have the digest it looked for (a context changed in between is
// an error, and the image is left untagged). A build that runs anyway
// ([build.Spec.NoCache], [build.PullAlways]) reads the context once,
// computing the digest on what it sends. The image is what `docker build`
// makes of the same input: lading adds no label or step to it.
//
// One changed byte in a sent file, the Containerfile, an arg, the target,
// the platform or a label gives another digest, so another build. To force
// a rebuild set [build.Spec.NoCache] (which also turns off the engine's
// layer cache) or remove the tag; [build.PullAlways] builds every time
// too. Old tags are not removed: list them by name (`docker images
// lading-build`).
//
// # Progress and errors
//
// [build.Spec.OnProgress] receives the engine's output line by line with
// the step being run ("Step 2/5 : RUN make"). A failing step returns a
// [*build.StepError] (matching [build.ErrBuildFailed]) that names the step
// and holds its last output lines. Secret args are masked as "****" in
// progress lines and in every error; they are still in the image's
// history (see [build.Spec]). An invalid spec returns a
// [*runner.FieldError] matching [build.ErrInvalidSpec] and
// [runner.ErrInvalidTask].
//
// # Cancellation
//
// Build has no time limit of its own (a RUN step may rightly be silent for
// long): bound it with ctx. When ctx is done Build closes the request, which stops the engine's
// build, and returns an error matching ctx.Err() that says the step. The
// engine removes the intermediate containers of the build (Build always
// asks for forcerm), including the one of a RUN step under way. Podman 4.3
// does not stop a build whose request was closed: the step under way runs
// to its end, then Buildah removes its working container (listed only by
// `podman ps --external`, not through the Docker API).
//
// Podman serves /build with Buildah: its steps read "STEP 2/5: RUN make"
// and its errors "building at STEP ...: exit status 3"; Build reports both
// the same way.
//
// # Base images
//
// The engine pulls a base image it lacks (or every base image with
// [build.PullAlways]). Registry credentials are resolved for each image
// the Containerfile's FROM lines name, as for a pull ([Pull.Credentials],
// [Pull.DockerConfig], the environment's docker config and helpers),
// and sent to the engine for that registry only; a FROM whose image holds
// a build arg ("FROM $BASE") gets no credentials.
//
// # BuildKit
//
// Build uses the classic builder, which every Docker Engine from 20.10 on
// still serves and which needs no session: BuildKit's /build needs a gRPC
// session over a hijacked /session connection (github.com/moby/buildkit's
// client, a large dependency) for the context, secrets and credentials.
// What BuildKit would add: `RUN --mount=type=secret` (a secret that does
// not end up in the image's history), cache mounts, parallel stages, and
// a per-Containerfile ignore file.
//
// Builds do not take a [WithMaxConcurrency] slot, and [Pull.Platform]
// does not apply to them: set [build.Spec.Platform].
func (r *Runner) Build(ctx context.Context, spec build.Spec) (_ build.Image, err error) {
	secrets := make([]string, 0, len(spec.SecretArgs))
	for _, v := range spec.SecretArgs {
		secrets = append(secrets, v)
	}
	masker := mask.New(secrets...)
	defer func() { err = core.MaskError(masker, err) }()

	bc, err := build.Open(spec)
	if err != nil {
		return build.Image{}, err
	}
	defer bc.Close()
	dir := bc.Dir()
	log := r.log.With("build", dir)
	// The digest is computed first when it may find the image; a build
	// that will run anyway computes it on what it sends, in one pass.
	var digest string
	lookup := !spec.NoCache && spec.PullPolicy != build.PullAlways
	if lookup {
		if digest, err = bc.Digest(ctx); err != nil {
			return build.Image{}, fmt.Errorf("docker: build %s: read context: %w", dir, err)
		}
		ref := spec.Ref(digest)
		inspected, err := r.cli.ImageInspect(ctx, ref)
		switch {
		case err == nil:
			log.Debug("build cached", "image", ref)
			return build.Image{Ref: ref, ID: inspected.ID, Digest: digest, Cached: true}, nil
		case !cerrdefs.IsNotFound(err):
			return build.Image{}, engineError(r, "inspect image "+ref, err)
		}
	}
	auths, err := r.buildAuths(ctx, bc)
	if err != nil {
		return build.Image{}, err
	}
	opts := client.ImageBuildOptions{
		Dockerfile:  bc.Containerfile(),
		Target:      spec.Target,
		NoCache:     spec.NoCache,
		PullParent:  spec.PullPolicy == build.PullAlways,
		Remove:      true,
		ForceRemove: true,
		Version:     buildtypes.BuilderV1,
		AuthConfigs: auths,
		Labels:      spec.Labels,
		BuildArgs:   map[string]*string{},
	}
	for k, v := range spec.Args {
		opts.BuildArgs[k] = &v
	}
	for k, v := range spec.SecretArgs {
		opts.BuildArgs[k] = &v
	}
	if spec.Platform != "" {
		p, err := parsePlatform(spec.Platform)
		if err != nil {
			return build.Image{}, err
		}
		opts.Platforms = []ocispec.Platform{*p}
	}

	// The context is streamed: a goroutine writes the tar into a pipe the
	// request body reads.
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type sent struct {
		digest string
		err    error
	}
	sender := make(chan sent, 1)
	go func() {
		d, err := bc.WriteTar(bctx, pw)
		pw.CloseWithError(err)
		sender <- sent{d, err}
	}()
	waitSender := func(cause error) sent {
		pr.CloseWithError(cause) // unblocks a writer the engine stopped reading
		cancel()
		return <-sender
	}
	log.Debug("build", "containerfile", opts.Dockerfile, "context", bc.Dir())
	resp, err := r.cli.ImageBuild(bctx, pr, opts)
	if err != nil {
		s := waitSender(err)
		switch {
		case ctx.Err() != nil:
			return build.Image{}, fmt.Errorf("docker: build %s: %w", dir, cancelled(ctx))
		case s.err != nil && !errors.Is(s.err, err) && !errors.Is(s.err, io.ErrClosedPipe) && !errors.Is(s.err, context.Canceled):
			// The context could not be read: the request failed for it.
			return build.Image{}, fmt.Errorf("docker: build %s: send context: %w", dir, s.err)
		}
		return build.Image{}, engineError(r, "build "+dir, err)
	}
	out := &buildOutput{mask: masker, onProgress: spec.OnProgress}
	id, readErr := out.read(bctx, resp.Body)
	resp.Body.Close()
	s := waitSender(io.ErrClosedPipe)
	switch {
	case ctx.Err() != nil:
		return build.Image{}, fmt.Errorf("docker: build %s cancelled%s: %w", dir, out.at(), cancelled(ctx))
	case s.err != nil && !errors.Is(s.err, io.ErrClosedPipe):
		return build.Image{}, fmt.Errorf("docker: build %s: send context: %w", dir, s.err)
	case readErr != nil:
		var stepErr *build.StepError
		if errors.As(readErr, &stepErr) {
			return build.Image{}, fmt.Errorf("docker: build %s: %w", dir, readErr)
		}
		return build.Image{}, engineError(r, "build "+dir, readErr)
	case id == "":
		return build.Image{}, fmt.Errorf("docker: build %s: the engine reported no image id", dir)
	case lookup && s.digest != digest:
		return build.Image{}, fmt.Errorf("docker: build %s: the context changed while it was being read (digest %s, then %s): image %s left untagged", dir, digest, s.digest, id)
	}
	ref := spec.Ref(s.digest)
	if _, err := r.cli.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
		return build.Image{}, engineError(r, "tag image "+id+" as "+ref, err)
	}
	log.Debug("built", "image", ref, "id", id)
	return build.Image{Ref: ref, ID: id, Digest: s.digest}, nil
}

// cancelled returns ctx's error, with its cause when it has another.
func cancelled(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return fmt.Errorf("%w: %w", ctx.Err(), cause)
	}
	return ctx.Err()
}

// buildAuths resolves the credentials of the registries the base images
// come from, keyed by server address as X-Registry-Config wants.
func (r *Runner) buildAuths(ctx context.Context, bc *build.Context) (map[string]registry.AuthConfig, error) {
	data, err := bc.ReadContainerfile()
	if err != nil {
		return nil, fmt.Errorf("docker: build: %w", err)
	}
	auths := map[string]registry.AuthConfig{}
	for _, image := range build.BaseImages(data) {
		if _, err := credentials.RegistryOf(image); err != nil {
			continue // the engine reports it, with the line
		}
		auth, err := r.resolver.Resolve(ctx, image)
		if err != nil {
			return nil, fmt.Errorf("docker: build: credentials for base image %s: %w", image, err)
		}
		if auth.IsZero() {
			continue
		}
		header, err := auth.Header()
		if err != nil {
			return nil, fmt.Errorf("docker: build: encode credentials for %s: %w", auth.Registry(), err)
		}
		ac, err := authconfig.Decode(header)
		if err != nil || ac == nil {
			return nil, fmt.Errorf("docker: build: encode credentials for %s", auth.Registry())
		}
		r.log.Debug("build credentials", "image", image, "auth", auth)
		auths[ac.ServerAddress] = *ac
	}
	return auths, nil
}

// stepLine is the line announcing a step: the classic builder's
// "Step 2/5 : RUN make", Buildah's (Podman) "STEP 2/5: RUN make".
var stepLine = regexp.MustCompile(`^(?:Step (\d+)/(\d+) : |STEP (\d+)/(\d+): )(.*)$`)

// buildOutput reads the engine's build stream.
type buildOutput struct {
	mask       *mask.Masker
	onProgress func(build.Progress)

	partial     strings.Builder // a stream line not ended yet
	step, steps int
	instruction string
	lines       []string // the current step's last lines, masked
}

// read reads the stream to its end and returns the built image's id.
func (o *buildOutput) read(ctx context.Context, body io.Reader) (string, error) {
	dec := json.NewDecoder(body)
	var id string
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("read build output: %w", err)
		}
		if msg.Stream != "" {
			o.stream(msg.Stream)
		}
		if msg.Status != "" {
			line := msg.Status
			if msg.ID != "" {
				line = msg.ID + ": " + line
			}
			if msg.Progress == nil || msg.Progress.Total == 0 {
				o.line(line)
			}
		}
		if msg.Error != nil {
			o.flush()
			return "", &build.StepError{Step: o.step, Steps: o.steps, Instruction: o.instruction, Message: o.mask.String(msg.Error.Message), Lines: slices.Clone(o.lines)}
		}
		if msg.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*msg.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	o.flush()
	return id, nil
}

// maxBuildLine caps a line of build output: a longer one is delivered in
// pieces of this size (a secret cut by the boundary is not masked).
const maxBuildLine = 64 << 10

// stream splits a stream chunk into lines.
func (o *buildOutput) stream(s string) {
	for s != "" {
		segment, rest, ended := strings.Cut(s, "\n")
		for o.partial.Len()+len(segment) > maxBuildLine {
			n := maxBuildLine - o.partial.Len()
			o.partial.WriteString(segment[:n])
			segment = segment[n:]
			o.flush()
		}
		o.partial.WriteString(segment)
		if ended {
			o.flush()
		}
		s = rest
	}
}

// flush delivers the partial line, if any.
func (o *buildOutput) flush() {
	if o.partial.Len() == 0 {
		return
	}
	line := strings.TrimSuffix(o.partial.String(), "\r")
	o.partial.Reset()
	o.line(line)
}

// line delivers one line.
func (o *buildOutput) line(line string) {
	line = o.mask.String(line)
	if m := stepLine.FindStringSubmatch(line); m != nil {
		o.step, _ = strconv.Atoi(m[1] + m[3])
		o.steps, _ = strconv.Atoi(m[2] + m[4])
		o.instruction = m[5]
		o.lines = o.lines[:0]
	} else {
		if len(o.lines) == build.StepErrorLines {
			o.lines = append(o.lines[:0], o.lines[1:]...)
		}
		o.lines = append(o.lines, line)
	}
	if o.onProgress != nil {
		o.onProgress(build.Progress{Step: o.step, Steps: o.steps, Instruction: o.instruction, Line: line})
	}
}

// at says where a build was, for errors: " at step 2/5 (RUN make)".
func (o *buildOutput) at() string {
	if o.step == 0 {
		return ""
	}
	return fmt.Sprintf(" at step %d/%d (%s)", o.step, o.steps, o.instruction)
}
