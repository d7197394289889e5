// Command private-registry serves an OCI registry with basic auth on
// 127.0.0.1, pushes an image the engine has to it, removes the local copy,
// and runs a task from it with credentials: the pull goes through lading's
// credential handling.
//
//	go run ./examples/private-registry -image lading-test/busybox:latest
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/api/pkg/authconfig"
	regtypes "github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/credentials"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

const user, password = "demo", "demo-password"

func main() {
	image := flag.String("image", "lading-test/busybox:latest", "a local image to push to the registry")
	flag.Parse()
	if err := run(*image); err != nil {
		fmt.Fprintln(os.Stderr, "private-registry:", err)
		os.Exit(1)
	}
}

func run(image string) error {
	ctx := context.Background()
	// 1. A registry on 127.0.0.1 behind basic auth. The engine treats
	// 127.0.0.0/8 as an insecure registry, so plain HTTP works.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="demo"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	host := l.Addr().String()
	ref := host + "/demo/busybox:1"
	fmt.Println("registry at", host)

	// 2. Push the image there and remove the local tag, with the plain
	// Engine API client.
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: image, Target: ref}); err != nil {
		return err
	}
	auth, _ := authconfig.Encode(regtypes.AuthConfig{Username: user, Password: password, ServerAddress: host})
	push, err := cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return err
	}
	if err := push.Wait(ctx); err != nil {
		return err
	}
	if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil {
		return err
	}
	fmt.Println("pushed", ref)

	// 3. Run from the registry with lading, pulling with credentials.
	r, err := docker.New(docker.Config{
		Pull: docker.Pull{PullPolicy: docker.PullAlways, Credentials: &credentials.Credentials{Registry: host, Username: user, Password: password}},
	})
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Run(ctx, runner.Task{
		Image:    ref,
		Commands: []string{"echo pulled from the private registry and ran"},
		Stdout:   os.Stdout,
		OnEvent:  func(e runner.Event) { fmt.Printf("  [%s] %s\n", e.Stage, e.Detail) },
	})
	if err != nil {
		return err
	}
	defer os.RemoveAll(res.WorkingDir)
	_, _ = cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{})
	fmt.Println("exit code", res.ExitCode)
	return nil
}
