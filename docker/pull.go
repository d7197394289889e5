package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/runner"
)

// Pull defaults; see the matching [Config] fields.
const (
	DefaultPullRetries      = 3
	DefaultPullStallTimeout = 2 * time.Minute
	pullBackoffBase         = 500 * time.Millisecond
	pullBackoffMax          = 10 * time.Second
)

// ErrPullStalled is matched by Run's error when the engine reported no
// progress of a pull for [Pull.PullStallTimeout] (a stall is not
// retried). The error also says the timeout.
var ErrPullStalled = errors.New("pull stalled")

// ensureImage makes the image present as the pull policy says.
func (r *Runner) ensureImage(ctx context.Context, run *run) error {
	image := run.task.Image
	policy := r.cfg.PullPolicy
	if policy == "" {
		policy = PullIfNotPresent
	}
	if policy != PullAlways {
		inspected, err := r.cli.ImageInspect(ctx, image)
		switch {
		case err == nil:
			run.noteImage(inspected)
			return nil
		case !cerrdefs.IsNotFound(err):
			return engineError(r, "inspect image "+image, err)
		case policy == PullNever:
			return fmt.Errorf("docker: image %s: %w: it is not present on the engine and pullPolicy is NEVER", image, runner.ErrImageNotFound)
		}
	}
	run.event(runner.StagePulling, image)
	if err := r.pull(ctx, run, image); err != nil {
		return err
	}
	if inspected, err := r.cli.ImageInspect(ctx, image); err == nil {
		run.noteImage(inspected)
	}
	return nil
}

// noteImage keeps what the run needs to know of its image: the user the
// script runs as when the configuration names none.
func (run *run) noteImage(inspected client.ImageInspectResult) {
	if inspected.Config != nil {
		run.imageUser, run.imageUserKnown = inspected.Config.User, true
	}
}

// pull pulls image, retrying transient failures with exponential backoff.
func (r *Runner) pull(ctx context.Context, run *run, image string) error {
	var own error // the pull's own cause, told from the run's by identity
	if r.cfg.PullTimeout > 0 {
		own = fmt.Errorf("pull %s: %w: pullTimeout %s reached", image, context.DeadlineExceeded, r.cfg.PullTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, time.Duration(r.cfg.PullTimeout), own)
		defer cancel()
	}
	retries := r.cfg.PullRetries
	if retries == 0 {
		retries = DefaultPullRetries
	}
	auth, err := r.resolver.Resolve(ctx, image)
	if err != nil {
		return fmt.Errorf("docker: pull %s: %w", image, err)
	}
	header, err := auth.Header()
	if err != nil {
		return fmt.Errorf("docker: pull %s: encode credentials for %s: %w", image, auth.Registry(), err)
	}
	run.log.Debug("pull credentials", "auth", auth)
	for attempt := 0; ; attempt++ {
		err = r.pullOnce(ctx, run, image, auth, header, own)
		if err == nil || attempt >= retries || !transient(err) || ctx.Err() != nil {
			break
		}
		wait := min(pullBackoffBase<<attempt, pullBackoffMax)
		run.log.Debug("retrying pull", "attempt", attempt+1, "in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("docker: pull %s: %w (after: %w)", image, pullCancelled(ctx, own), err)
		}
	}
	return err
}

// pullOnce runs one pull and reads its progress stream to the end: the
// engine reports most failures inside the stream, not in the status.
func (r *Runner) pullOnce(ctx context.Context, run *run, image string, auth credentials.Auth, header string, own error) error {
	stall := time.Duration(r.cfg.PullStallTimeout)
	if stall == 0 {
		stall = DefaultPullStallTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(ErrPullStalled) })
	defer watchdog.Stop()

	opts := client.ImagePullOptions{RegistryAuth: header}
	if p := r.platform; p != nil {
		opts.Platforms = []ocispec.Platform{*p}
	}
	resp, err := r.cli.ImagePull(ctx, image, opts)
	if err != nil {
		return r.pullError(ctx, image, auth, err, stall, own)
	}
	defer resp.Close()
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return r.pullError(ctx, image, auth, err, stall, own)
		}
		watchdog.Reset(stall)
		if msg.Error != nil {
			return r.pullError(ctx, image, auth, streamError(msg.Error), stall, own)
		}
		if run.task.OnPull != nil && msg.Status != "" {
			p := runner.PullProgress{Layer: msg.ID, Status: msg.Status}
			if msg.Progress != nil {
				p.Current, p.Total = msg.Progress.Current, msg.Progress.Total
			}
			run.task.OnPull(p)
		}
	}
	return nil
}

// streamError turns an error reported inside the pull stream into an error
// with the errdefs class its code says.
func streamError(e *jsonstream.Error) error {
	err := errors.New(e.Message)
	switch e.Code {
	case 401:
		return cerrdefs.ErrUnauthenticated.WithMessage(e.Message)
	case 403:
		return cerrdefs.ErrPermissionDenied.WithMessage(e.Message)
	case 404:
		return cerrdefs.ErrNotFound.WithMessage(e.Message)
	}
	return err
}

// pullCancelled returns why the pull's ctx ended: its own cause (own, the
// pullTimeout) as it is; the run's context error otherwise, which Run's
// error completes with the caller's cause. A caller's cause is not wrapped
// here: what it carries (a sibling's timeout) is not this pull's.
func pullCancelled(ctx context.Context, own error) error {
	if cause := context.Cause(ctx); own != nil && cause == own {
		return cause
	}
	return ctx.Err()
}

// pullError classifies a pull failure. own is the cause the pull's own
// timeout sets, nil without one.
func (r *Runner) pullError(ctx context.Context, image string, auth credentials.Auth, err error, stall time.Duration, own error) error {
	msg := strings.ToLower(err.Error())
	switch {
	case context.Cause(ctx) == ErrPullStalled:
		return fmt.Errorf("docker: pull %s: %w: no progress for %s (pullStallTimeout)", image, ErrPullStalled, stall)
	case ctx.Err() != nil:
		return fmt.Errorf("docker: pull %s: %w", image, pullCancelled(ctx, own))
	case client.IsErrConnectionFailed(err):
		return engineError(r, "pull "+image, err)
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) ||
		strings.Contains(msg, "unauthorized") || strings.Contains(msg, "authentication required") || strings.Contains(msg, "no basic auth credentials"):
		how := "no credentials were found for it"
		if !auth.IsZero() {
			how = "it refused the credentials from " + auth.Source()
		}
		return fmt.Errorf("docker: pull %s: %w by registry %s: %s: %w", image, runner.ErrUnauthorized, auth.Registry(), how, err)
	case cerrdefs.IsNotFound(err) || looksNotFound(msg):
		return fmt.Errorf("docker: pull %s: %w: %w", image, runner.ErrImageNotFound, err)
	}
	return fmt.Errorf("docker: pull %s: %w", image, err)
}

// transient reports whether a failed pull is worth another try: not when
// the image or the credentials are wrong, the engine is unreachable, the
// pull stalled, or the caller gave up.
func transient(err error) bool {
	return !errors.Is(err, runner.ErrImageNotFound) && !errors.Is(err, runner.ErrUnauthorized) &&
		!errors.Is(err, runner.ErrEngineUnreachable) && !errors.Is(err, ErrPullStalled) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// looksNotFound recognises the not-found messages engines put inside the
// pull stream without an error code.
func looksNotFound(msg string) bool {
	for _, s := range []string{"manifest unknown", "not found", "repository does not exist", "no such image"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// parsePlatform parses "os/arch[/variant]".
func parsePlatform(s string) (*ocispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, invalidConfig("platform", s, `must be "os/arch" or "os/arch/variant", e.g. "linux/amd64" or "linux/arm64/v8"`)
	}
	p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}
