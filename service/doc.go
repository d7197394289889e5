// Package service is lading's engine-neutral vocabulary for services:
// long-running containers with a slug, a port, a health check and a
// status, as Dataflow, Clace, Scaleway and Zero-OS deploy them, and as Go
// tests start databases and HTTP servers with testcontainers-go. It
// imports no engine; engines (the [github.com/lading-dev/lading/docker]
// package's Runner.Services) implement [Manager] and [Service], and
// [github.com/lading-dev/lading/service/servicetest] is the conformance
// suite they pass.
//
// # Spec
//
// A [Spec] names a service (Name, and a Slug unique within its Namespace),
// its Image (or a Build from a Containerfile, with
// [github.com/lading-dev/lading/build]), an optional Port (1-65535, or the
// image's single EXPOSE),
// Env (with [ParseEnv] for Dataflow's KEY=VALUE lines), SecretEnv (masked
// in everything handed back), Entrypoint, a Command string split by
// [SplitCommand] as a shell would, CPU and memory limits (with a host
// program's defaults and maxima, [Limits]; Dataflow's by default), a
// [HealthCheck] (HTTP GET, TCP connect or a command; interval, timeout,
// retries, start period), a restart policy, named Volumes, HostVolumes
// (which an engine refuses unless the host program allows host paths) and
// an optional fixed IP on the namespace's network (which needs the
// namespace's Subnet). [Resolve] checks a spec and
// fills in its defaults; its errors are [*runner.FieldError] values naming
// the field and the value, matching [ErrInvalidSpec].
//
// # Status
//
// A service's [Status] is one of Dataflow's four: PENDING, DEPLOYED,
// FAILED, DELETING. It is never remembered: [Service.Status] reads it
// from the engine each time (the container's state, and its health check),
// so a service that dies after it was DEPLOYED turns FAILED, and one that
// is restarted and passes its check turns DEPLOYED again. A [State] says
// why in its Reason: the exit code and the last log lines, a kill for
// memory, restarts exhausted, the last probe's result.
//
// # State lives in the engine
//
// A [Manager] keeps nothing in memory: a new Manager, in the same program
// or after a restart, lists and gets back every service with its current
// status. An ephemeral service ([Spec.Ephemeral], what tests deploy) dies
// with the process that deployed it: an engine's prune removes it once that
// process has ended. Any other service is deployed for good and no prune
// removes it.
//
// # Example
//
//	r, err := docker.New(docker.Config{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer r.Close()
//	services, err := r.Services(docker.ServicesConfig{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	ctx := context.Background()
//	web, err := services.Deploy(ctx, service.Spec{
//		Slug:    "web",
//		Image:   "busybox:1.36",
//		Port:    8080,
//		Command: `sh -c 'mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'`,
//		Health:  &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/"}},
//	})
//	if err != nil {
//		log.Fatal(err) // errors.Is(err, service.ErrSlugTaken), service.ErrInvalidSpec, ...
//	}
//	defer web.Delete(ctx)
//	wctx, cancel := context.WithTimeout(ctx, time.Minute)
//	defer cancel()
//	if _, err := service.Wait(wctx, web); err != nil {
//		log.Fatal(err) // a *service.FailedError says why
//	}
//	addr, _ := web.Endpoint(ctx) // 127.0.0.1:<a free port>
//	resp, err := http.Get("http://" + addr + "/")
//
// # Concurrency
//
// A [Manager] and its [Service] handles are safe for concurrent use; a
// [Spec] is a plain value. [Wait] and [Stream] may run in many goroutines
// at once, on one service or several.
//
// # Logs and stats
//
// [Service.Logs] writes stdout and stderr apart, line by line, secrets
// masked, followed or not; [Service.Stats] takes a sample in Zero-OS's
// fields and units. [Stream] pushes both to [Sinks] (writers and a
// callback) until its context ends.
package service
