package docker_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/service"
)

// A service deployed, waited for, used from the host and deleted.
func ExampleRunner_Services() {
	r, err := docker.New(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	services, err := r.Services(docker.ServicesConfig{
		Namespaces: map[string]service.Namespace{"demo": {Env: map[string]string{"APP_ENV": "production"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	web, err := services.Deploy(ctx, service.Spec{
		Slug:      "web",
		Namespace: "demo",
		Image:     "busybox:1.36",
		Port:      8080, // published on 127.0.0.1 at a free port
		Command:   `sh -c 'mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'`,
		Memory:    64 << 20,
		Health:    &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/"}},
	})
	if err != nil {
		log.Fatal(err) // errors.Is(err, service.ErrSlugTaken), service.ErrInvalidSpec, runner.ErrImageNotFound...
	}
	defer web.Delete(ctx)

	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := service.Wait(wctx, web); err != nil {
		log.Fatal(err) // a *service.FailedError: the exit code and last log lines, the failing probe...
	}
	addr, err := web.Endpoint(ctx)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s", body)
	// Other services and tasks on docker.NetworkName("demo") reach it as
	// "web" or as web.Info().Hostname.

	// Logs and stats to sinks, until sctx ends.
	sctx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	_ = service.Stream(sctx, web, service.Sinks{Stdout: os.Stdout, Stderr: os.Stderr,
		Stats: func(s service.Stats) { fmt.Println("memory", s.MemoryUsage, "cpu", s.CPUUsage) }})
}
