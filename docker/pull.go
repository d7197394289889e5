package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/runner"
)

// ensureImage makes the image present as the pull policy says.
func (r *Runner) ensureImage(ctx context.Context, run *run) error {
	image := run.task.Image
	policy := r.cfg.PullPolicy
	if policy == "" {
		policy = PullIfNotPresent
	}
	if policy != PullAlways {
		_, err := r.cli.ImageInspect(ctx, image)
		switch {
		case err == nil:
			return nil
		case !cerrdefs.IsNotFound(err):
			return engineError(r, "inspect image "+image, err)
		case policy == PullNever:
			return fmt.Errorf("docker: image %s: %w: it is not present on the engine and pullPolicy is NEVER", image, runner.ErrImageNotFound)
		}
	}
	run.event(runner.StagePulling, image)
	return r.pull(ctx, image)
}

// pull pulls image and reads the progress stream to its end: the engine
// reports most failures inside the stream, not in the response status.
func (r *Runner) pull(ctx context.Context, image string) error {
	resp, err := r.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
		resp.Close()
	}
	if err == nil {
		return nil
	}
	switch {
	case client.IsErrConnectionFailed(err):
		return engineError(r, "pull "+image, err)
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err):
		return fmt.Errorf("docker: pull %s: %w: %w", image, runner.ErrUnauthorized, err)
	case cerrdefs.IsNotFound(err) || looksNotFound(err.Error()):
		return fmt.Errorf("docker: pull %s: %w: %w", image, runner.ErrImageNotFound, err)
	}
	return fmt.Errorf("docker: pull %s: %w", image, err)
}

// looksNotFound recognises the not-found messages engines put inside the
// pull stream without an error code.
func looksNotFound(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"manifest unknown", "not found", "repository does not exist", "no such image"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
