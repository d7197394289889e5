package main

import (
	"context"
	"fmt"
	"os"
	"time"

	tc "github.com/testcontainers/testcontainers-go"
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
// it pays for the namespace's network as a first deploy does.
func ladingService(cfg config) (measurement, error) {
	r := newLading(docker.Config{})
	defer r.Close()
	s, err := r.Services(docker.ServicesConfig{StopTimeout: -1})
	if err != nil {
		return measurement{}, err
	}
	ns := fmt.Sprintf("bench-%d", os.Getpid())
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
// wait.ForHTTP("/") on the same image and command, then terminates the
// container untimed.
func tcService(cfg config) (measurement, error) {
	var last tc.Container
	f := func() error {
		c, err := tc.GenericContainer(ctx, tc.GenericContainerRequest{
			ContainerRequest: tc.ContainerRequest{
				Image:        cfg.Image,
				Entrypoint:   []string{"sh", "-c", httpdCommand},
				ExposedPorts: []string{"8080/tcp"},
				WaitingFor:   wait.ForHTTP("/").WithPort("8080/tcp").WithStatusCodeMatcher(func(status int) bool { return status == 200 }),
			},
			Started: true,
		})
		last = c
		return err
	}
	del := func() error {
		if last == nil {
			return nil
		}
		err := last.Terminate(ctx)
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
