package docker

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/service"
)

// nextMark is in the name of the container an Update starts, until it
// has replaced the old one.
const nextMark = "--next-"

var _ service.Updater = (*Services)(nil)

// Update replaces the service of spec's namespace and slug by one deployed
// from spec, with the same hostname (and slug) on the namespace's network.
//
// With a free host port (HostPort zero), the new container is started
// beside the old one, named "<name>--next-<id>", and once it is DEPLOYED
// the old one is deleted and the new one takes the name: on the network,
// the slug and hostname resolve to both meanwhile, then to the new one;
// on the host, the new one has a new port ([service.Service.Endpoint]
// says it), and the old one serves until it is removed. With a fixed
// HostPort or a fixed IP ([service.Spec.IP]), which only one container
// can hold, the old container is stopped (not removed) just before the
// new one starts, and started again if the new one does not become
// DEPLOYED: the port is dark from the old one's stop until the new one
// listens (TestServiceUpdateFixedPortUnderTraffic measures it).
//
// The returned handle is the new service; a failed update returns the
// error and leaves the old one as it was (restarted, for a fixed port).
func (s *Services) Update(ctx context.Context, spec service.Spec) (service.Service, error) {
	spec, err := service.Resolve(spec, s.cfg.Namespaces[defaultNS(spec.Namespace)], s.limits)
	if err != nil {
		return nil, err
	}
	got, err := s.Get(ctx, spec.Namespace, spec.Slug)
	if err != nil {
		return nil, err
	}
	old := got.(*serviceHandle)
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	name := containerName(spec.Namespace, spec.Slug)
	next, err := s.create(ctx, spec, name+nextMark+id, old.info.Hostname)
	if err != nil {
		return nil, err
	}
	// A fixed host port or IP can be held by one container only.
	fixed := spec.HostPort != 0 || spec.IP != ""
	if fixed {
		timeout := int(old.stopTimeout().Seconds())
		if _, err := s.r.cli.ContainerStop(ctx, old.info.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotModified(err) {
			return nil, errors.Join(engineError(s.r, "stop service "+spec.Slug+" for its update", err), next.Delete(ctx))
		}
	}
	restoreOld := func(cause error) error {
		errs := []error{cause, next.Delete(ctx)}
		if fixed {
			if _, err := s.r.cli.ContainerStart(context.WithoutCancel(ctx), old.info.ID, client.ContainerStartOptions{}); err != nil {
				errs = append(errs, engineError(s.r, "restart service "+spec.Slug+" after its failed update", err))
			}
		}
		return errors.Join(errs...)
	}
	if err := next.start(ctx, spec); err != nil {
		return nil, restoreOld(err)
	}
	if _, err := service.Wait(ctx, next); err != nil {
		return nil, restoreOld(fmt.Errorf("docker: update of service %s: %w", spec.Slug, err))
	}
	if !fixed {
		// Out of the network's DNS first: from here the slug and hostname
		// resolve to the new container only, while the old one stops.
		_, err := s.r.cli.NetworkDisconnect(ctx, NetworkName(spec.Namespace), client.NetworkDisconnectOptions{Container: old.info.ID})
		if err != nil && !cerrdefs.IsNotFound(err) {
			s.r.log.Debug("disconnect the old container of an update", "service", spec.Slug, "error", err)
		}
	}
	if err := old.Delete(ctx); err != nil {
		return nil, fmt.Errorf("docker: update of service %s: the new one runs (%s), the old one could not be removed: %w", spec.Slug, next.info.ID, err)
	}
	if _, err := s.r.cli.ContainerRename(ctx, next.info.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
		return nil, engineError(s.r, "rename the updated service "+spec.Slug, err)
	}
	return next, nil
}
