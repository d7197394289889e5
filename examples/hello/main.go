// Command hello runs a two-line script in a container with lading and prints
// what it wrote and the outputs it reported.
//
//	go run ./examples/hello                               # busybox:1.36, pulled if missing
//	go run ./examples/hello -image lading-test/busybox    # an image the engine already has
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

func main() {
	image := flag.String("image", "busybox:1.36", "image to run the script in")
	flag.Parse()
	if err := run(*image); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(image string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	r, err := docker.New(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
	if err != nil {
		return err
	}
	defer r.Close()

	res, err := r.Run(ctx, runner.Task{
		Image: image,
		Commands: []string{
			`echo "Hello World from $NAME"`,
			`echo '::{"outputs":{"greeting":"hi"}}::'`,
		},
		Env:    map[string]string{"NAME": "lading"},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	var exit *runner.ExitError
	if err != nil && !errors.As(err, &exit) {
		return err
	}
	defer os.RemoveAll(res.WorkingDir) // nothing in it is needed here
	fmt.Printf("exit code: %d\n", res.ExitCode)
	fmt.Printf("outputs:   %v\n", res.Outputs)
	fmt.Printf("lines:     %d stdout, %d stderr, in %s\n", res.StdoutLines, res.StderrLines, res.Duration().Round(1e6))
	fmt.Printf("container: %s\n", res.Details.(*docker.Details).ContainerID[:12])
	return err
}
