// Command build builds an image from a Containerfile with a build arg, then
// runs a task on it. A second run finds the image by the digest of its
// input and builds nothing; change a byte under app/ and it builds again.
//
//	go run ./examples/build                                        # FROM busybox:1.36, pulled if missing
//	go run ./examples/build -base lading-test/busybox:latest       # offline, on the test image
//	go run ./examples/build -greeting bonjour -no-cache            # another arg; force a rebuild
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

func main() {
	dir := flag.String("context", "examples/build/app", "the context directory, holding a Containerfile")
	base := flag.String("base", "busybox:1.36", "the base image (the BASE build arg)")
	greeting := flag.String("greeting", "hello", "the GREETING build arg")
	noCache := flag.Bool("no-cache", false, "build even when the image exists")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	img, res, err := run(ctx, build.Spec{
		Context: *dir,
		Args:    map[string]string{"BASE": *base, "GREETING": *greeting},
		NoCache: *noCache,
		Name:    "lading-example/greeter",
		OnProgress: func(p build.Progress) {
			fmt.Printf("build [%d/%d] %s\n", p.Step, p.Steps, p.Line)
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	fmt.Printf("image:    %s (cached: %v)\n", img.Ref, img.Cached)
	fmt.Printf("outputs:  %v\n", res.Outputs)
}

// run builds spec's image and runs greet in it.
func run(ctx context.Context, spec build.Spec) (build.Image, *runner.Result, error) {
	r, err := docker.New(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}}) // the image was just built
	if err != nil {
		return build.Image{}, nil, err
	}
	defer r.Close()
	img, err := r.Build(ctx, spec)
	if err != nil {
		return img, nil, err
	}
	res, err := r.Run(ctx, runner.Task{
		Image:    img.Ref,
		Commands: []string{"greet lading"},
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
	})
	if res != nil {
		_ = os.RemoveAll(res.WorkingDir)
	}
	return img, res, err
}
