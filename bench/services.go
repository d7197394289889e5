package main

import (
	"context"
	"fmt"
	"os"
	"time"

	tc "github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/service"
)

// ---- services: deploy to ready ----

// httpdCommand serves a page on port 8080 with busybox httpd.
const httpdCommand = `mkdir -p /tmp/www && echo ready > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`

// ladingService times Deploy until service.Wait returns DEPLOYED, with an
// HTTP health check of / on port 8080 (lading probes the published port
// from the host, as wait.ForHTTP does), then deletes the service untimed.
// Each repetition deploys into a namespace left empty by the last one, so
// it pays for the namespace's network (created, then removed with the
// service) as the first service of a namespace does.
func ladingService(cfg config) (measurement, error) { return ladingDeploy(cfg, false) }

// ladingServiceNS is ladingService in a namespace that has another
// service, so its network exists: what every service but the first of a
// namespace pays.
func ladingServiceNS(cfg config) (measurement, error) { return ladingDeploy(cfg, true) }

func ladingDeploy(cfg config, anchored bool) (measurement, error) {
	r := newLading(docker.Config{})
	defer r.Close()
	s, err := r.Services(docker.ServicesConfig{StopTimeout: -1})
	if err != nil {
		return measurement{}, err
	}
	ns := fmt.Sprintf("bench-%d", os.Getpid())
	if anchored {
		anchor, err := s.Deploy(ctx, service.Spec{Slug: "anchor", Namespace: ns, Image: cfg.Image, Command: "sleep 3600", Ephemeral: true})
		if err != nil {
			return measurement{}, err
		}
		defer anchor.Delete(ctx)
	}
	i := 0
	var last service.Service
	f := func() error {
		i++
		svc, err := s.Deploy(ctx, service.Spec{Slug: fmt.Sprintf("web-%d", i), Namespace: ns, Image: cfg.Image, Port: 8080, Ephemeral: true,
			Entrypoint: []string{"sh", "-c", httpdCommand},
			Health:     &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/", Status: 200}}})
		if err != nil {
			return err
		}
		last = svc
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err = service.Wait(wctx, svc)
		return err
	}
	del := func() error {
		if last == nil {
			return nil
		}
		err := last.Delete(ctx)
		last = nil
		return err
	}
	defer del()
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	if err := del(); err != nil {
		return measurement{}, err
	}
	s2, err := timeItThen(cfg.N, f, del)
	return measurement{Samples: s2}, err
}

// tcService times testcontainers-go's GenericContainer with
// wait.ForHTTP("/") on the same image and command, on the default bridge
// (no name other containers reach it by), then terminates the container
// untimed.
func tcService(cfg config) (measurement, error) { return tcDeploy(cfg, false) }

// tcServiceNet is tcService on a network of its own made for it
// (network.New) with an alias, as other containers would reach it by
// name: what lading's Deploy does for a namespace's first service. The
// network is made in the timed part and removed in the untimed one.
func tcServiceNet(cfg config) (measurement, error) { return tcDeploy(cfg, true) }

func tcDeploy(cfg config, withNet bool) (measurement, error) {
	var last tc.Container
	var lastNet *tc.DockerNetwork
	f := func() error {
		req := tc.ContainerRequest{
			Image:        cfg.Image,
			Entrypoint:   []string{"sh", "-c", httpdCommand},
			ExposedPorts: []string{"8080/tcp"},
			WaitingFor:   wait.ForHTTP("/").WithPort("8080/tcp").WithStatusCodeMatcher(func(status int) bool { return status == 200 }),
		}
		if withNet {
			n, err := network.New(ctx)
			if err != nil {
				return err
			}
			lastNet = n
			req.Networks = []string{n.Name}
			req.NetworkAliases = map[string][]string{n.Name: {"web"}}
		}
		c, err := tc.GenericContainer(ctx, tc.GenericContainerRequest{ContainerRequest: req, Started: true})
		last = c
		return err
	}
	del := func() error {
		var err error
		if last != nil {
			err = last.Terminate(ctx)
			last = nil
		}
		if lastNet != nil {
			if nerr := lastNet.Remove(ctx); err == nil {
				err = nerr
			}
			lastNet = nil
		}
		return err
	}
	defer del()
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	if err := del(); err != nil {
		return measurement{}, err
	}
	s, err := timeItThen(cfg.N, f, del)
	return measurement{Samples: s}, err
}

// timeItThen runs f reps times, recording each duration, and after each
// runs then, untimed.
func timeItThen(reps int, f, then func() error) ([]float64, error) {
	var out []float64
	for range reps {
		start := time.Now()
		err := f()
		d := time.Since(start)
		if terr := then(); err == nil {
			err = terr
		}
		if err != nil {
			return out, err
		}
		out = append(out, d.Seconds())
	}
	return out, nil
}
