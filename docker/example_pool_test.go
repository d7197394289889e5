package docker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

// A CI tool running many short scripts in one image: a warm pool of 4
// containers, 4 scripts at a time, each in a container of its own that is
// checked before the next script gets it. Needs an engine: no Output line.
func ExampleWithPool() {
	r, err := docker.New(docker.Config{}, docker.WithMaxConcurrency(4), docker.WithPool(docker.Pool{Size: 4}))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close() // removes the pool's containers

	ctx := context.Background()
	if err := r.Warm(ctx, "busybox:1.36"); err != nil { // start the 4 containers now
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			res, err := r.Run(ctx, runner.Task{Image: "busybox:1.36", Commands: []string{fmt.Sprintf("echo step %d", i)}, Stdout: os.Stdout})
			if res != nil {
				defer os.RemoveAll(res.WorkingDir)
			}
			if err != nil {
				log.Print(err)
			}
		})
	}
	wg.Wait()
	s := r.PoolStats()
	fmt.Printf("%d tasks in warm containers, %d containers started, %d discarded\n", s.Pooled, s.Warmed, s.Discarded)
}
