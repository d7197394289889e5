// Command services deploys two services with lading and uses them, as a
// program (or a Go test) that needs a database and an HTTP server would:
//
//   - kv, a Redis-like key-value server (busybox sh behind nc, RESP, values
//     on a named volume), with a command health check (its "redis-cli ping");
//   - web, busybox httpd with an HTTP health check, whose CGI script counts
//     hits in kv, reached by its slug on the namespace's network.
//
// It waits until both are DEPLOYED, uses them from the host (their ports
// published on 127.0.0.1: net/http and go-redis) and from a task on the
// namespace's network (wget and nc, by slug), streams their logs and stats
// to a real Redis's channels as Zero-OS does, and deletes them and the
// volume. It needs a redis-server for the sinks:
//
//	redis-server --port 6390 --save '' &
//	go run ./examples/services -redis 127.0.0.1:6390 -image lading-test/busybox:latest
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o Options
	flag.StringVar(&o.Image, "image", "busybox:1.36", "a busybox image (pulled if the engine lacks it)")
	flag.StringVar(&o.Namespace, "namespace", "demo", "the services' namespace")
	flag.StringVar(&o.Redis, "redis", "127.0.0.1:6379", "host:port of the redis-server the logs and stats go to")
	flag.Parse()
	o.Out = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "services:", err)
		os.Exit(1)
	}
	fmt.Printf("page %q, hits %q, task %q, kv greeting %q\n", rep.Page, rep.Hits, rep.TaskOutput, rep.Greeting)
	fmt.Printf("redis messages %v (dropped %d); last stats %s\n", rep.Messages, rep.Dropped, rep.LastStats)
	fmt.Printf("deleted: %d services left in %s\n", rep.Left, o.Namespace)
}
