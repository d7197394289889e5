package docker

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/service"
)

// LabelServiceVolume is the name, in its namespace, of a named volume of
// services ([service.Spec.Volumes]); the volume also carries
// [LabelServiceNamespace], [LabelManaged] and, when an ephemeral service
// created it, the owner labels (so that a prune removes it with its
// process, once no container uses it).
const LabelServiceVolume = "dev.lading.service.volume"

var _ service.Volumes = (*Services)(nil)

// volumeName is the engine's name of a namespace's volume.
func volumeName(namespace, name string) string {
	return "lading-vol-" + namespace + "-" + name
}

// volumeMounts creates the spec's named volumes that are missing and
// returns their mounts.
func (s *Services) volumeMounts(ctx context.Context, spec service.Spec) ([]mount.Mount, error) {
	var mounts []mount.Mount
	for _, v := range spec.Volumes {
		labels := map[string]string{
			LabelManaged:          "true",
			LabelCreated:          time.Now().UTC().Format(time.RFC3339),
			LabelServiceNamespace: spec.Namespace,
			LabelServiceVolume:    v.Name,
		}
		if spec.Ephemeral {
			maps.Copy(labels, s.r.owner)
		}
		name := volumeName(spec.Namespace, v.Name)
		// Creating a volume that exists returns it as it is.
		if _, err := s.r.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: labels}); err != nil {
			return nil, engineError(s.r, "create volume "+name, err)
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: name, Target: v.Path, ReadOnly: v.ReadOnly})
	}
	return mounts, nil
}

// ListVolumes returns the named volumes of namespace ("" for all).
func (s *Services) ListVolumes(ctx context.Context, namespace string) ([]service.VolumeInfo, error) {
	filters := make(client.Filters).Add("label", LabelServiceVolume)
	if namespace != "" {
		filters.Add("label", LabelServiceNamespace+"="+namespace)
	}
	list, err := s.r.cli.VolumeList(ctx, client.VolumeListOptions{Filters: filters})
	if err != nil {
		return nil, engineError(s.r, "list volumes", err)
	}
	var out []service.VolumeInfo
	for _, v := range list.Items {
		out = append(out, service.VolumeInfo{Namespace: v.Labels[LabelServiceNamespace], Name: v.Labels[LabelServiceVolume], ID: v.Name})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace < out[j].Namespace || out[i].Namespace == out[j].Namespace && out[i].Name < out[j].Name
	})
	return out, nil
}

// DeleteVolume removes a named volume of namespace. A volume a container
// still uses is refused with an error saying so.
func (s *Services) DeleteVolume(ctx context.Context, namespace, name string) error {
	namespace = defaultNS(namespace)
	if err := service.ValidSlug("name", name); err != nil {
		return err
	}
	id := volumeName(namespace, name)
	_, err := s.r.cli.VolumeRemove(ctx, id, client.VolumeRemoveOptions{})
	switch {
	case err == nil || cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "in use"):
		return fmt.Errorf("docker: volume %s of namespace %s is in use by a service: delete the service first: %w", name, namespace, err)
	}
	return engineError(s.r, "remove volume "+id, err)
}
