package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
)

// Labels on a service's container (and, for the namespace, its network).
// They are the service's state: [Services] keeps none of its own, so a new
// [Services], in this process or a later one, lists and gets back every
// service from them. A service's container also carries [LabelManaged] and
// [LabelCreated], and, when it is ephemeral, the owner labels
// ([LabelOwnerPID]...), which is how a prune tells a service deployed for
// good (no owner labels: never pruned) from one of a process that has
// ended.
const (
	LabelService          = "dev.lading.service"             // "true" on a service's container
	LabelServiceNamespace = "dev.lading.service.namespace"   // the namespace (also on its network)
	LabelServiceSlug      = "dev.lading.service.slug"        // the slug
	LabelServiceName      = "dev.lading.service.name"        // the display name
	LabelServiceHostname  = "dev.lading.service.hostname"    // "<slug>-<unique id>"
	LabelServicePort      = "dev.lading.service.port"        // the container port, absent without one
	LabelServiceHealth    = "dev.lading.service.health"      // the health check, JSON, absent without one
	LabelServiceSecrets   = "dev.lading.service.secret-keys" // the names (never the values) of the secret env, comma-separated
	LabelServiceEphemeral = "dev.lading.service.ephemeral"   // "true" for [service.Spec.Ephemeral]
)

// serviceStopTimeout is how long Delete waits for a service to stop on its
// own (SIGTERM) before the engine kills it, when [ServicesConfig] sets none.
const serviceStopTimeout = 10 * time.Second

// serviceCallTimeout bounds each engine call of the service code that is
// not a stream, and the cleanup calls made on a fresh context.
const serviceCallTimeout = 30 * time.Second

// ServicesConfig configures [Runner.Services].
type ServicesConfig struct {
	// Namespaces holds the env defaults of namespaces, by name; a
	// namespace not listed has none.
	Namespaces map[string]service.Namespace
	// Limits are the CPU and memory defaults and maxima; nil means
	// [service.DefaultLimits].
	Limits *service.Limits
	// StopTimeout is how long Delete lets a service stop after SIGTERM
	// before it is killed; zero means 10 s, negative kills at once.
	StopTimeout time.Duration
}

// Services deploys and finds services on the engine of the [Runner] it
// came from, with that Runner's pull policy, credentials and platform. It
// implements [service.Manager]; its handles implement [service.Service]
// and [service.Execer]. Its state is the engine's (see [LabelService]); it
// is safe for concurrent use.
//
// A handle's Status is read from the engine at each call:
//
//   - DELETING: the container's name carries Delete's mark (Delete renames
//     it before it stops it), or the engine is removing it.
//   - PENDING: created and not started; restarting (restart policy); or
//     running with a health check that has not passed yet: for a command
//     check, the engine's own health state "starting" (Docker runs the
//     command with the check's interval, timeout, retries and start
//     period); for an HTTP, TCP or log check, a probe lading makes at the
//     call, which failed within StartPeriod + Retries × Interval of the
//     start.
//   - DEPLOYED: running, and healthy (the engine says "healthy", or the
//     probe made now passed) when there is a check.
//   - FAILED: exited or dead (the Reason gives the exit code or the kill
//     for memory, "restarts exhausted" when an on-failure policy ran out,
//     and the last 5 log lines), paused, or running with the check failing
//     (the engine says "unhealthy", or the probe failed after the grace).
//
// HTTP and TCP probes go from the host to the published port on
// 127.0.0.1, as a client would (so the image needs no wget or nc). The
// engine's port proxy accepts a TCP connection on the host even when
// nothing listens in the container, and then closes it: a TCP probe counts
// a connection closed within 200 ms as refused. A log check reads the logs
// since the last start at each call, until a line has matched.
type Services struct {
	r      *Runner
	cfg    ServicesConfig
	limits service.Limits
	netMu  sync.Mutex // serialises this value's network creations
}

var _ service.Manager = (*Services)(nil)

// Services returns a [service.Manager] on r's engine. It does not contact
// the engine.
func (r *Runner) Services(cfg ServicesConfig) (*Services, error) {
	limits := service.DefaultLimits
	if cfg.Limits != nil {
		limits = *cfg.Limits
	}
	for ns, n := range cfg.Namespaces {
		if err := service.ValidSlug("namespaces", ns); err != nil {
			return nil, err
		}
		if err := n.Validate(); err != nil {
			var fe *runner.FieldError
			if errors.As(err, &fe) {
				fe.Field = "namespaces." + ns + "." + fe.Field
			}
			return nil, err
		}
	}
	return &Services{r: r, cfg: cfg, limits: limits}, nil
}

// NetworkName returns the name of a namespace's network ("" is
// [service.DefaultNamespace]): a task joins it, to reach the namespace's
// services by slug or hostname, with [Container.NetworkMode] set to it (which
// [WithAllow] must allow).
func NetworkName(namespace string) string {
	if namespace == "" {
		namespace = service.DefaultNamespace
	}
	return "lading-ns-" + namespace
}

func containerName(namespace, slug string) string {
	return "lading-svc-" + namespace + "-" + slug
}

// Deploy resolves spec (see [service.Resolve]), makes its image present as
// the Runner's pull policy says, creates the namespace's network if it is
// missing, and creates and starts the service's container. It returns once
// the engine has started it: the status is then PENDING until the process
// runs and its health check passes (see [service.Wait]).
//
// The container is named "lading-svc-<namespace>-<slug>", which the engine
// keeps unique: a slug taken in the namespace is [service.ErrSlugTaken],
// whatever process deployed it. The port is published on 127.0.0.1 at
// HostPort, or a free port. A failure after the container was created
// removes it.
//
// A spec with Build has its image built first ([Runner.Build]: a cache hit
// when the context is unchanged). HostVolumes are refused, with a
// [*runner.FieldError] naming hostVolumes, unless the Runner was made
// with [WithAllow] and Allow.Volumes, the opt-in of tasks' volumes. A
// fixed IP needs the namespace's Subnet ([service.Namespace]), which the
// network is created with; an IP another container holds is a
// [*runner.FieldError] for ip. A DiskSize the storage driver cannot
// enforce (overlay2 only on xfs with pquota) is a [*runner.FieldError]
// for diskSize.
func (s *Services) Deploy(ctx context.Context, spec service.Spec) (service.Service, error) {
	spec, err := service.Resolve(spec, s.cfg.Namespaces[defaultNS(spec.Namespace)], s.limits)
	if err != nil {
		return nil, err
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	h, err := s.create(ctx, spec, containerName(spec.Namespace, spec.Slug), spec.Slug+"-"+id)
	if err != nil {
		return nil, err
	}
	if err := h.start(ctx, spec); err != nil {
		return nil, err
	}
	return h, nil
}

// create makes the image present, the network, and the service's container
// named name, with hostname, not started.
func (s *Services) create(ctx context.Context, spec service.Spec, name, hostname string) (*serviceHandle, error) {
	var err error
	r := s.r
	if spec.Build != nil {
		img, err := r.Build(ctx, *spec.Build)
		if err != nil {
			return nil, fmt.Errorf("docker: service %s: build its image: %w", spec.Slug, err)
		}
		spec.Image = img.Ref
	} else {
		pr := &run{r: r, task: runner.Task{Image: spec.Image}, log: r.log}
		if err := r.ensureImage(ctx, pr); err != nil {
			return nil, fmt.Errorf("docker: service %s: %w", spec.Slug, err)
		}
	}
	if spec.Port == 0 {
		if spec.Port, err = s.exposedPort(ctx, spec.Image); err != nil {
			return nil, err
		}
	}
	if spec.HostPort != 0 && spec.Port == 0 {
		return nil, &runner.FieldError{Field: "hostPort", Value: strconv.Itoa(spec.HostPort), Problem: "needs a port: set port (the image exposes none)", Err: service.ErrInvalidSpec}
	}
	if len(spec.HostVolumes) > 0 && !r.opts.allow.Volumes {
		return nil, &runner.FieldError{Field: "hostVolumes[0].hostPath", Value: spec.HostVolumes[0].HostPath,
			Problem: "mounts a host path into the service: the host program must allow it with docker.WithAllow(docker.Allow{Volumes: true}), as for tasks' volumes", Err: service.ErrInvalidSpec}
	}
	netID, subnets, err := s.ensureNetwork(ctx, spec.Namespace)
	if err != nil {
		return nil, err
	}
	var ip netip.Addr
	if spec.IP != "" {
		ip = netip.MustParseAddr(spec.IP) // checked by Resolve
		if !slices.ContainsFunc(subnets, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return nil, errors.Join(&runner.FieldError{Field: "ip", Value: spec.IP, Problem: fmt.Sprintf("is in no subnet of the network %s (%v): it was created before its namespace had this subnet; delete the namespace's services to make it again", NetworkName(spec.Namespace), subnets), Err: service.ErrInvalidSpec},
				s.removeNetworkIfEmpty(ctx, spec.Namespace))
		}
	}
	labels := map[string]string{
		LabelManaged:          "true",
		LabelCreated:          time.Now().UTC().Format(time.RFC3339),
		LabelService:          "true",
		LabelServiceNamespace: spec.Namespace,
		LabelServiceSlug:      spec.Slug,
		LabelServiceName:      spec.Name,
		LabelServiceHostname:  hostname,
	}
	if spec.Ephemeral {
		labels[LabelServiceEphemeral] = "true"
		maps.Copy(labels, r.owner)
	}
	if len(spec.SecretEnv) > 0 {
		labels[LabelServiceSecrets] = strings.Join(sortedNames(spec.SecretEnv), ",")
	}
	cmd, _ := service.SplitCommand(spec.Command) // checked by Resolve
	cfg := &container.Config{
		Hostname:   hostname,
		Image:      spec.Image,
		Entrypoint: spec.Entrypoint,
		Cmd:        cmd,
		Env:        serviceEnv(spec),
		Labels:     labels,
	}
	mounts, err := s.volumeMounts(ctx, spec)
	if err != nil {
		return nil, err
	}
	for _, v := range spec.HostVolumes {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: v.HostPath, Target: v.Path, ReadOnly: v.ReadOnly})
	}
	host := &container.HostConfig{
		Mounts: mounts,
		Resources: container.Resources{
			NanoCPUs:  spec.CPU.NanoCPUs(),
			Memory:    spec.Memory.Bytes(),
			CPUShares: spec.CPUShares,
		},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(spec.Restart), MaximumRetryCount: spec.MaxRestarts},
	}
	if spec.Restart == "" {
		host.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if spec.DiskSize > 0 {
		host.StorageOpt = map[string]string{"size": strconv.FormatInt(spec.DiskSize.Bytes(), 10)}
	}
	if spec.Port != 0 {
		labels[LabelServicePort] = strconv.Itoa(spec.Port)
		p, _ := network.PortFrom(uint16(spec.Port), network.TCP)
		cfg.ExposedPorts = network.PortSet{p: {}}
		hp := ""
		if spec.HostPort != 0 {
			hp = strconv.Itoa(spec.HostPort)
		}
		host.PortBindings = network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hp}}}
	}
	if h := spec.Health; h != nil {
		data, _ := json.Marshal(h)
		labels[LabelServiceHealth] = string(data)
		if len(h.Command) > 0 {
			cfg.Healthcheck = &container.HealthConfig{
				Test:        append([]string{"CMD"}, h.Command...),
				Interval:    h.Interval,
				Timeout:     h.Timeout,
				StartPeriod: h.StartPeriod,
				Retries:     h.Retries,
			}
		}
	}
	var created client.ContainerCreateResult
	for attempt := 0; ; attempt++ {
		host.NetworkMode = container.NetworkMode(netID)
		endpoint := &network.EndpointSettings{Aliases: []string{spec.Slug, hostname}}
		if ip.Is4() {
			endpoint.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ip}
		} else if ip.IsValid() {
			endpoint.IPAMConfig = &network.EndpointIPAMConfig{IPv6Address: ip}
		}
		created, err = r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:             name,
			Config:           cfg,
			HostConfig:       host,
			NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netID: endpoint}},
			Platform:         r.platform,
		})
		// The last service of the namespace, deleted meanwhile, may have
		// taken the network with it: make it again, once.
		if err == nil || attempt > 0 || !cerrdefs.IsNotFound(err) || !strings.Contains(strings.ToLower(err.Error()), "network") {
			break
		}
		if netID, _, err = s.ensureNetwork(ctx, spec.Namespace); err != nil {
			break
		}
	}
	if err != nil {
		err = s.createError(ctx, spec, name, err)
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), serviceCallTimeout)
		defer cancel()
		if ctx.Err() != nil {
			// The engine may create the container after the call gave up:
			// remove it, if it is this one (its hostname is new).
			if in, ierr := r.cli.ContainerInspect(cleanup, name, client.ContainerInspectOptions{}); ierr == nil &&
				in.Container.Config != nil && in.Container.Config.Labels[LabelServiceHostname] == hostname {
				_, _ = r.cli.ContainerRemove(cleanup, in.Container.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			}
		}
		return nil, errors.Join(err, s.removeNetworkIfEmpty(cleanup, spec.Namespace))
	}
	for _, w := range created.Warnings {
		r.log.Warn("engine warning", "service", spec.Slug, "warning", w)
	}
	return s.handle(created.ID, spec.Image, labels, mask.New(mapValues(spec.SecretEnv)...)), nil
}

// createError turns a failed create into the error Deploy returns.
func (s *Services) createError(ctx context.Context, spec service.Spec, name string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("docker: service %s: create: %w", spec.Slug, context.Cause(ctx))
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("docker: service %s in namespace %s: %w", spec.Slug, spec.Namespace, service.ErrSlugTaken)
	case spec.DiskSize > 0 && strings.Contains(strings.ToLower(err.Error()), "storage-opt"):
		return &runner.FieldError{Field: "diskSize", Value: spec.DiskSize.String(), Problem: "the engine's storage driver" + s.storageDriver(ctx) + " cannot limit a container's root file system here: " + err.Error(), Err: service.ErrInvalidSpec}
	}
	return engineError(s.r, "create service container "+name, err)
}

// storageDriver names the engine's storage driver and its backing file
// system, " (overlay2 on extfs)", or "" when the engine does not say.
func (s *Services) storageDriver(ctx context.Context) string {
	res, err := s.r.cli.Info(ctx, client.InfoOptions{})
	if err != nil || res.Info.Driver == "" {
		return ""
	}
	for _, kv := range res.Info.DriverStatus {
		if kv[0] == "Backing Filesystem" {
			return " (" + res.Info.Driver + " on " + kv[1] + ")"
		}
	}
	return " (" + res.Info.Driver + ")"
}

// start starts a created service; on failure it deletes it.
func (h *serviceHandle) start(ctx context.Context, spec service.Spec) error {
	r := h.s.r
	if _, err := r.cli.ContainerStart(ctx, h.info.ID, client.ContainerStartOptions{}); err != nil {
		err = engineError(r, "start service "+spec.Slug, err)
		switch msg := err.Error(); {
		case spec.IP != "" && strings.Contains(msg, "ddress already in use"):
			err = &runner.FieldError{Field: "ip", Value: spec.IP, Problem: "is taken on the network " + NetworkName(spec.Namespace), Err: service.ErrInvalidSpec}
		case spec.HostPort != 0 && strings.Contains(msg, "allocated"):
			err = &runner.FieldError{Field: "hostPort", Value: strconv.Itoa(spec.HostPort), Problem: "is in use on the host", Err: service.ErrInvalidSpec}
		}
		return errors.Join(h.mask.Error(err), h.Delete(ctx))
	}
	return nil
}

func defaultNS(ns string) string {
	if ns == "" {
		return service.DefaultNamespace
	}
	return ns
}

// exposedPort returns the image's one exposed TCP port, 0 when it exposes
// none, an error naming the ports when it exposes several.
func (s *Services) exposedPort(ctx context.Context, image string) (int, error) {
	inspected, err := s.r.cli.ImageInspect(ctx, image)
	if err != nil {
		return 0, engineError(s.r, "inspect image "+image, err)
	}
	if inspected.Config == nil {
		return 0, nil
	}
	var ports []string
	for p := range inspected.Config.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	switch len(ports) {
	case 0:
		return 0, nil
	case 1:
		p, err := network.ParsePort(ports[0])
		if err != nil || p.Proto() != network.TCP {
			return 0, &runner.FieldError{Field: "port", Value: "0", Problem: "the image exposes " + ports[0] + ", not a TCP port: set port", Err: service.ErrInvalidSpec}
		}
		return int(p.Num()), nil
	}
	return 0, &runner.FieldError{Field: "port", Value: "0", Problem: fmt.Sprintf("the image exposes %d ports (%s): set port", len(ports), strings.Join(ports, ", ")), Err: service.ErrInvalidSpec}
}

// ensureNetwork returns the id and subnets of the namespace's network,
// creating it when it is missing (with the namespace's Subnet, when it
// has one). Docker 20.10 lets two networks have one name: when two
// deploys create it at once, each keeps the one of lowest id and removes
// the others, so they agree.
func (s *Services) ensureNetwork(ctx context.Context, namespace string) (string, []netip.Prefix, error) {
	s.netMu.Lock()
	defer s.netMu.Unlock()
	name := NetworkName(namespace)
	type found struct {
		id      string
		subnets []netip.Prefix
	}
	find := func() ([]found, error) {
		list, err := s.r.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", LabelServiceNamespace+"="+namespace)})
		if err != nil {
			return nil, engineError(s.r, "list networks", err)
		}
		var nets []found
		for _, n := range list.Items {
			if n.Name == name {
				f := found{id: n.ID}
				for _, c := range n.IPAM.Config {
					f.subnets = append(f.subnets, c.Subnet)
				}
				nets = append(nets, f)
			}
		}
		sort.Slice(nets, func(i, j int) bool { return nets[i].id < nets[j].id })
		return nets, nil
	}
	nets, err := find()
	if err != nil {
		return "", nil, err
	}
	if len(nets) > 0 {
		return nets[0].id, nets[0].subnets, nil
	}
	opts := client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: map[string]string{
			LabelManaged:          "true",
			LabelCreated:          time.Now().UTC().Format(time.RFC3339),
			LabelServiceNamespace: namespace,
		},
	}
	if sub := s.cfg.Namespaces[namespace].Subnet; sub != "" {
		p := netip.MustParsePrefix(sub) // checked by Services
		opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: p}}}
		if p.Addr().Is6() {
			v6 := true
			opts.EnableIPv6 = &v6
		}
	}
	_, err = s.r.cli.NetworkCreate(ctx, name, opts)
	if err != nil && !cerrdefs.IsConflict(err) {
		err = engineError(s.r, "create network "+name, err)
		if opts.IPAM != nil {
			err = &runner.FieldError{Field: "namespaces." + namespace + ".subnet", Value: s.cfg.Namespaces[namespace].Subnet, Problem: "the engine could not make a network of it: " + err.Error(), Err: service.ErrInvalidSpec}
		}
		return "", nil, err
	}
	if nets, err = find(); err != nil {
		return "", nil, err
	}
	if len(nets) == 0 {
		return "", nil, fmt.Errorf("docker: network %s: created, then not found (removed at once by another process?)", name)
	}
	for _, extra := range nets[1:] {
		_, _ = s.r.cli.NetworkRemove(ctx, extra.id, client.NetworkRemoveOptions{})
	}
	return nets[0].id, nets[0].subnets, nil
}

// removeNetworkIfEmpty removes a namespace's network once no service of
// the namespace is left (in any state).
func (s *Services) removeNetworkIfEmpty(ctx context.Context, namespace string) error {
	left, err := s.r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelServiceNamespace+"="+namespace)})
	if err != nil {
		return engineError(s.r, "list services", err)
	}
	if len(left.Items) > 0 {
		return nil
	}
	list, err := s.r.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", LabelServiceNamespace+"="+namespace)})
	if err != nil {
		return engineError(s.r, "list networks", err)
	}
	var errs []error
	for _, n := range list.Items {
		if _, err := s.removeNetwork(ctx, n.ID, n.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeNetwork removes a namespace's network. A network that a container
// (a task, a new service) joined meanwhile is kept. Docker may still count
// the endpoint of a container it has just removed: while the network
// lists no container, the removal is tried again for up to 10 s (2 s was
// seen too short on a loaded engine), then the network is kept, for a
// [Services.Prune].
func (s *Services) removeNetwork(ctx context.Context, id, name string) (removed bool, err error) {
	for attempt := 0; ; attempt++ {
		_, err := s.r.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
		if err == nil || cerrdefs.IsNotFound(err) {
			return true, nil
		}
		if !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "active endpoints") {
			return false, engineError(s.r, "remove network "+name, err)
		}
		in, ierr := s.r.cli.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
		if ierr != nil || len(in.Network.Containers) > 0 || attempt >= 100 {
			if attempt >= 100 {
				s.r.log.Debug("network kept: the engine still counts an endpoint", "network", name, "error", err)
			}
			return false, nil // in use: kept
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Get returns the service of slug in namespace, read from the engine.
func (s *Services) Get(ctx context.Context, namespace, slug string) (service.Service, error) {
	namespace = defaultNS(namespace)
	if err := service.ValidSlug("slug", slug); err != nil {
		return nil, err
	}
	if err := service.ValidSlug("namespace", namespace); err != nil {
		return nil, err
	}
	c, err := s.r.cli.ContainerInspect(ctx, containerName(namespace, slug), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("docker: service %s in namespace %s: %w", slug, namespace, service.ErrNotFound)
	}
	if err != nil {
		return nil, engineError(s.r, "inspect service "+slug, err)
	}
	if c.Container.Config == nil || c.Container.Config.Labels[LabelService] != "true" {
		return nil, fmt.Errorf("docker: service %s in namespace %s: %w (a container not lading's has its name)", slug, namespace, service.ErrNotFound)
	}
	return s.fromInspect(c.Container), nil
}

// List returns the services of namespace (all of them when it is ""),
// ordered by namespace and slug.
func (s *Services) List(ctx context.Context, namespace string) ([]service.Service, error) {
	filters := make(client.Filters).Add("label", LabelService+"=true")
	if namespace != "" {
		filters.Add("label", LabelServiceNamespace+"="+namespace)
	}
	list, err := s.r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters})
	if err != nil {
		return nil, engineError(s.r, "list services", err)
	}
	var out []service.Service
	for _, c := range list.Items {
		in, err := s.r.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, engineError(s.r, "inspect service "+c.Labels[LabelServiceSlug], err)
		}
		if strings.Contains(in.Container.Name, nextMark) {
			continue // an Update's new container, not the service yet
		}
		out = append(out, s.fromInspect(in.Container))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Info(), out[j].Info()
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Slug < b.Slug
	})
	return out, nil
}

// fromInspect builds a handle from an inspected container: its labels and,
// for masking, the values of its secret env.
func (s *Services) fromInspect(c container.InspectResponse) *serviceHandle {
	labels := c.Config.Labels
	var secrets []string
	if keys := labels[LabelServiceSecrets]; keys != "" {
		want := map[string]bool{}
		for _, k := range strings.Split(keys, ",") {
			want[k] = true
		}
		for _, kv := range c.Config.Env {
			if k, v, ok := strings.Cut(kv, "="); ok && want[k] {
				secrets = append(secrets, v)
			}
		}
	}
	return s.handle(c.ID, c.Config.Image, labels, mask.New(secrets...))
}

func (s *Services) handle(id, image string, labels map[string]string, m *mask.Masker) *serviceHandle {
	port, _ := strconv.Atoi(labels[LabelServicePort])
	h := &serviceHandle{s: s, mask: m, info: service.Info{
		Namespace: labels[LabelServiceNamespace],
		Slug:      labels[LabelServiceSlug],
		Name:      labels[LabelServiceName],
		Hostname:  labels[LabelServiceHostname],
		Image:     image,
		Port:      port,
		ID:        id,
		Ephemeral: labels[LabelServiceEphemeral] == "true",
	}}
	if raw := labels[LabelServiceHealth]; raw != "" {
		var hc service.HealthCheck
		if json.Unmarshal([]byte(raw), &hc) == nil {
			h.health = &hc
		}
	}
	return h
}

// ServicePruneOptions says what [Services.Prune] removes.
type ServicePruneOptions struct {
	// DryRun reports what would be removed without removing it.
	DryRun bool
}

// ServicePruneResult lists what [Services.Prune] removed (or would).
type ServicePruneResult struct {
	Services []string // "<namespace>/<slug>"
	Networks []string // network names
}

// Prune removes the ephemeral services ([service.Spec.Ephemeral]) whose
// deploying process has ended (told as [Runner.Prune] tells it, from the
// owner labels), the services a Delete began and did not finish (their
// container renamed "...--deleting-<id>"), then the networks of namespaces
// left without services.
// A service deployed for good carries no owner labels and is never
// removed, by this Prune or by [Runner.Prune]; nor is an ephemeral one
// while its process lives.
func (s *Services) Prune(ctx context.Context, opts ServicePruneOptions) (ServicePruneResult, error) {
	var res ServicePruneResult
	var errs []error
	list, err := s.r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelService+"=true")})
	if err != nil {
		return res, engineError(s.r, "list services", err)
	}
	for _, c := range list.Items {
		deleting := false
		for _, n := range c.Names {
			deleting = deleting || strings.Contains(n, deletingMark)
		}
		if !deleting && (c.Labels[LabelServiceEphemeral] != "true" || ownerMayBeAlive(c.Labels)) {
			continue
		}
		if !opts.DryRun {
			_, err := s.r.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
				errs = append(errs, engineError(s.r, "remove service "+c.Labels[LabelServiceSlug], err))
				continue
			}
		}
		res.Services = append(res.Services, c.Labels[LabelServiceNamespace]+"/"+c.Labels[LabelServiceSlug])
	}
	nets, err := s.r.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", LabelManaged+"=true")})
	if err != nil {
		return res, errors.Join(append(errs, engineError(s.r, "list networks", err))...)
	}
	for _, n := range nets.Items {
		ns := n.Labels[LabelServiceNamespace]
		if ns == "" {
			continue
		}
		left, err := s.r.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelServiceNamespace+"="+ns)})
		if err != nil {
			errs = append(errs, engineError(s.r, "list services", err))
			continue
		}
		alive := 0
		for _, c := range left.Items {
			if !opts.DryRun || !slicesContains(res.Services, ns+"/"+c.Labels[LabelServiceSlug]) {
				alive++
			}
		}
		if alive > 0 {
			continue
		}
		in, err := s.r.cli.NetworkInspect(ctx, n.ID, client.NetworkInspectOptions{})
		if err == nil && len(in.Network.Containers) > 0 {
			continue // a task on it
		}
		if !opts.DryRun {
			removed, err := s.removeNetwork(ctx, n.ID, n.Name)
			if err != nil {
				errs = append(errs, err)
			}
			if !removed {
				continue
			}
		}
		res.Networks = append(res.Networks, n.Name)
	}
	return res, errors.Join(errs...)
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// serviceEnv is the container's env: env and secret env, sorted.
func serviceEnv(spec service.Spec) []string {
	all := maps.Clone(spec.Env)
	maps.Copy(all, spec.SecretEnv)
	env := make([]string, 0, len(all))
	for _, k := range sortedNames(all) {
		env = append(env, k+"="+all[k])
	}
	return env
}

func sortedNames(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapValues(m map[string]string) []string {
	vals := make([]string, 0, len(m))
	for _, v := range m {
		vals = append(vals, v)
	}
	return vals
}

func randomID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("docker: service id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
