// Command testimage builds lading's offline test image on the engine that
// DOCKER_HOST (or the default socket) points at. CI runs it before the tests;
// the tests also build the image themselves when it is missing.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/testenv"
)

func main() {
	if err := build(); err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
	fmt.Println("built", testenv.Image)
}

func build() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	return testenv.BuildImage(ctx, cli)
}
