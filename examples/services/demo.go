package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
	"github.com/lading-dev/lading/service/redissink"
)

//go:embed kv.sh
var kvScript string

//go:embed web.sh
var webScript string

// Options configure [Run].
type Options struct {
	// Image is a busybox image (sh, httpd, nc, wget).
	Image string
	// Namespace is the services' namespace, and so the name of their
	// network (docker.NetworkName).
	Namespace string
	// Redis is the host:port of the redis-server the logs and stats are
	// pushed to, on channels "<namespace>.<slug>.stdout", ".stderr" and
	// ".stats".
	Redis string
	// StatsPeriod is the period of the stats samples; zero means 2 s.
	StatsPeriod time.Duration
	// Out receives the demo's progress; nil discards it.
	Out io.Writer
}

// Report is what the demo saw.
type Report struct {
	WebHost    string            // web's hostname, "web-<unique id>"
	Page       string            // GET / of web, from the host
	Hits       []string          // GET /cgi-bin/hits of web, from the host, twice
	Greeting   string            // GET greeting of kv, from the host, with go-redis
	TaskOutput string            // the task's stdout: web and kv by slug, from the namespace's network
	HitsAfter  string            // GET hits of kv from the host, after the task
	Messages   map[string]int    // messages received per Redis channel
	FirstLines map[string]string // the first message of each log channel
	LastStats  string            // the last stats message
	Dropped    int64             // messages the sinks dropped
	Left       int               // services left in the namespace after the deletes
}

// Run deploys kv (a Redis-like server on a named volume) and web (busybox
// httpd whose CGI counts hits in kv), waits for both, uses them from the
// host and from a task, streams their logs and stats to Redis, and deletes
// them and the volume.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	rep = &Report{Messages: map[string]int{}, FirstLines: map[string]string{}}
	netName := docker.NetworkName(o.Namespace)

	// A task may join the namespace's network only if the host program
	// allows that network.
	r, err := docker.New(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}},
		docker.WithAllow(docker.Allow{Networks: []string{netName}}))
	if err != nil {
		return rep, err
	}
	defer r.Close()
	services, err := r.Services(docker.ServicesConfig{
		// Env defaults of the namespace; a service's own env overrides them.
		Namespaces:  map[string]service.Namespace{o.Namespace: {Env: map[string]string{"GREETING": "hello"}}},
		StopTimeout: 2 * time.Second,
	})
	if err != nil {
		return rep, err
	}
	defer func() {
		// Runs last, after the deletes below.
		list, lerr := services.List(context.WithoutCancel(ctx), o.Namespace)
		rep.Left = len(list)
		err = errors.Join(err, lerr)
	}()

	// Subscribe before anything is published: Redis pub/sub delivers only
	// to the subscribers of the moment.
	rc := redis.NewClient(&redis.Options{Addr: o.Redis})
	defer rc.Close()
	channels := []string{}
	for _, slug := range []string{"kv", "web"} {
		for _, s := range []string{"stdout", "stderr", "stats"} {
			channels = append(channels, o.Namespace+"."+slug+"."+s)
		}
	}
	sub := rc.Subscribe(ctx, channels...)
	for range channels {
		if _, err := sub.Receive(ctx); err != nil {
			_ = sub.Close()
			return rep, fmt.Errorf("subscribe to redis at %s: %w", o.Redis, err)
		}
	}
	readerDone := make(chan struct{})
	defer func() {
		_ = sub.Close()
		<-readerDone
	}()
	var mu sync.Mutex
	received := make(chan struct{}, 1)
	go func() {
		defer close(readerDone)
		for m := range sub.Channel(redis.WithChannelSize(10_000)) {
			mu.Lock()
			rep.Messages[m.Channel]++
			if strings.HasSuffix(m.Channel, ".stats") {
				rep.LastStats = m.Payload
			} else if _, ok := rep.FirstLines[m.Channel]; !ok {
				rep.FirstLines[m.Channel] = m.Payload
			}
			mu.Unlock()
			select {
			case received <- struct{}{}:
			default:
			}
		}
	}()

	// Deploy both; each Deploy returns once the container has started.
	kv, err := services.Deploy(ctx, service.Spec{
		Slug:       "kv",
		Namespace:  o.Namespace,
		Image:      o.Image,
		Port:       6379,
		Entrypoint: []string{"sh", "-c", `printf '%s\n' "$KV_SCRIPT" > /tmp/kv.sh && chmod +x /tmp/kv.sh && exec nc -ll -p 6379 -e /tmp/kv.sh`},
		Env:        map[string]string{"KV_SCRIPT": kvScript, "KV_DIR": "/data"},
		Volumes:    []service.Volume{{Name: "kv-data", Path: "/data"}},
		Memory:     64 << 20,
		CPU:        500,
		// What redis-cli ping is to Redis.
		Health: &service.HealthCheck{Command: []string{"sh", "-c", `printf 'PING\r\nQUIT\r\n' | nc 127.0.0.1 6379 | grep -q PONG`},
			Interval: 200 * time.Millisecond, Retries: 25},
		Ephemeral: true,
	})
	if err != nil {
		return rep, fmt.Errorf("deploy kv: %w", err)
	}
	defer func() {
		// Delete removes the container; the named volume only goes when asked.
		err = errors.Join(err, kv.Delete(context.WithoutCancel(ctx)), services.DeleteVolume(context.WithoutCancel(ctx), o.Namespace, "kv-data"))
	}()
	web, err := services.Deploy(ctx, service.Spec{
		Slug:       "web",
		Namespace:  o.Namespace,
		Image:      o.Image,
		Port:       8080,
		Entrypoint: []string{"sh", "-c", webScript},
		Memory:     64 << 20,
		CPU:        500,
		Health:     &service.HealthCheck{HTTP: &service.HTTPCheck{Path: "/", Status: http.StatusOK}, Interval: 200 * time.Millisecond},
		Ephemeral:  true,
	})
	if err != nil {
		return rep, fmt.Errorf("deploy web: %w", err)
	}
	defer func() { err = errors.Join(err, web.Delete(context.WithoutCancel(ctx))) }()
	rep.WebHost = web.Info().Hostname
	say("deployed kv (%s) and web (%s) in namespace %s", kv.Info().Hostname, web.Info().Hostname, o.Namespace)

	// Stream both services' logs and stats to Redis until the demo ends.
	sctx, stopStreams := context.WithCancel(ctx)
	var streams sync.WaitGroup
	var sinks []*redissink.Sink
	defer func() {
		stopStreams()
		streams.Wait()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, s := range sinks {
			o, e, st := s.Dropped()
			rep.Dropped += o + e + st
			err = errors.Join(err, s.Close(cctx))
		}
	}()
	for _, svc := range []service.Service{kv, web} {
		base := "redis://" + o.Redis + "/" + o.Namespace + "." + svc.Info().Slug + "."
		sink, err := redissink.New(redissink.Config{Stdout: base + "stdout", Stderr: base + "stderr", Stats: base + "stats", StatsPeriod: o.StatsPeriod})
		if err != nil {
			return rep, err
		}
		sinks = append(sinks, sink)
		streams.Go(func() {
			if err := service.Stream(sctx, svc, sink.Sinks()); err != nil {
				say("stream %s: %v", svc.Info().Slug, err)
			}
		})
	}

	// Wait until both are DEPLOYED (running and healthy), or say why not.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, svc := range []service.Service{kv, web} {
		if _, err := service.Wait(wctx, svc); err != nil {
			return rep, err
		}
	}
	say("both DEPLOYED")

	// From the host: the published ports on 127.0.0.1.
	webAddr, err := web.Endpoint(ctx)
	if err != nil {
		return rep, err
	}
	if rep.Page, err = get(ctx, "http://"+webAddr+"/"); err != nil {
		return rep, err
	}
	for range 2 {
		hits, err := get(ctx, "http://"+webAddr+"/cgi-bin/hits")
		if err != nil {
			return rep, err
		}
		rep.Hits = append(rep.Hits, hits)
	}
	kvAddr, err := kv.Endpoint(ctx)
	if err != nil {
		return rep, err
	}
	// kv speaks enough of Redis's protocol for go-redis (RESP2, no HELLO).
	kvc := redis.NewClient(&redis.Options{Addr: kvAddr, Protocol: 2, DisableIdentity: true})
	defer kvc.Close()
	if err := kvc.Set(ctx, "greeting", "hi from the host", 0).Err(); err != nil {
		return rep, fmt.Errorf("SET on kv at %s: %w", kvAddr, err)
	}
	if rep.Greeting, err = kvc.Get(ctx, "greeting").Result(); err != nil {
		return rep, fmt.Errorf("GET on kv at %s: %w", kvAddr, err)
	}
	say("from the host: %q, %q, kv says %q", rep.Page, rep.Hits, rep.Greeting)

	// From a task on the namespace's network: both by slug.
	tr, err := r.With(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}, Container: docker.Container{NetworkMode: netName}})
	if err != nil {
		return rep, err
	}
	var taskOut strings.Builder
	res, err := tr.Run(ctx, runner.Task{Image: o.Image, Stdout: &taskOut, Commands: []string{
		"wget -q -O - http://web:8080/cgi-bin/hits",
		`printf 'GET greeting\r\nQUIT\r\n' | nc kv 6379 | tr -d '\r'`,
	}})
	if res != nil && res.WorkingDir != "" {
		defer os.RemoveAll(res.WorkingDir) // the task's working directory
	}
	if err != nil {
		return rep, fmt.Errorf("task: %w", err)
	}
	rep.TaskOutput = taskOut.String()
	if rep.HitsAfter, err = kvc.Get(ctx, "hits").Result(); err != nil {
		return rep, err
	}
	say("from a task: %q; hits now %s", rep.TaskOutput, rep.HitsAfter)

	// Let the sinks deliver what the services logged: kv logged one line
	// per command, web one per response, and each gave stats samples.
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		done := rep.Messages[o.Namespace+".kv.stderr"] >= 5 && rep.Messages[o.Namespace+".web.stderr"] >= 4 &&
			rep.Messages[o.Namespace+".kv.stats"] >= 1 && rep.Messages[o.Namespace+".web.stats"] >= 1
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-received:
		case <-deadline:
			mu.Lock()
			defer mu.Unlock()
			return rep, fmt.Errorf("the sinks delivered too little in 30 s: %v", rep.Messages)
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	mu.Lock()
	say("redis received %v", rep.Messages)
	mu.Unlock()
	return rep, nil
}

// get returns the body of a GET.
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}
