package docker_test

import (
	"context"
	"encoding/json"
	"log"
	"sync"
	"time"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

// Two tasks of a flow with their own taskRunner blocks, on one engine
// connection and under one limit of 2 runs at once; the script alone may
// take a minute, the pull not counted. Needs an engine: no Output line.
func ExampleRunner_With() {
	base := docker.Config{}
	root, err := docker.New(base, docker.WithMaxConcurrency(2))
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close() // closes the connection of every Runner from With

	blocks := []string{`{"user": "1000", "memory": {"memory": "256Mi"}}`, `{"cpu": {"cpus": 0.5}}`}
	var wg sync.WaitGroup
	for _, block := range blocks {
		cfg := base // what a block leaves out keeps base's value
		if err := json.Unmarshal([]byte(block), &cfg); err != nil {
			log.Fatal(err)
		}
		r, err := root.With(cfg)
		if err != nil {
			log.Fatal(err)
		}
		wg.Go(func() {
			_, err := r.Run(context.Background(), runner.Task{
				Image: "busybox:1.36", Commands: []string{"id -u"}, ScriptTimeout: time.Minute,
			})
			if err != nil {
				log.Print(err)
			}
		})
	}
	wg.Wait()
}
