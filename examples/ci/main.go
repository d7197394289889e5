// Command ci is a small CI runner on lading: it reads a pipeline file of
// stages and steps, checks the source out once, runs the steps of each stage
// in parallel in containers on that checkout with live prefixed logs and
// masked secrets, stops a stage at its first failure, returns the steps'
// artifacts, stops cleanly on Ctrl-C, and at start-up removes what a crashed
// run left on the engine.
//
//	DEPLOY_TOKEN=tok-3f9a1c7e go run ./examples/ci -src examples/ci/testdata/repo
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

func main() {
	src := flag.String("src", ".", "the source to check out")
	pipeline := flag.String("pipeline", "", "pipeline file (default: <src>/pipeline.yaml)")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "lading-ci"), "checkouts, artifacts and caches")
	flag.Parse()
	if *pipeline == "" {
		*pipeline = filepath.Join(*src, "pipeline.yaml")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	state, err := run(ctx, *pipeline, *src, *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ci:", err)
		os.Exit(2)
	}
	if state != Passed {
		os.Exit(1)
	}
}

func run(ctx context.Context, pipelinePath, src, dir string) (string, error) {
	p, err := ReadPipeline(pipelinePath)
	if err != nil {
		return "", err
	}
	c, pruned, err := New(ctx, Options{Dir: dir, Out: os.Stdout})
	if err != nil {
		return "", err
	}
	defer c.Close()
	if n := len(pruned.Containers) + len(pruned.Volumes); n > 0 {
		fmt.Printf("removed %d containers and %d volumes an earlier run left behind\n", len(pruned.Containers), len(pruned.Volumes))
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	rep, err := c.Run(ctx, p, src, runID)
	if err != nil {
		return "", err
	}
	fmt.Printf("\npipeline %s: %s\n", runID, rep.State)
	for _, s := range rep.Steps {
		fmt.Printf("  %-8s %-10s %-9s %6s", s.Stage, s.Name, s.State, s.Duration.Round(time.Millisecond))
		if s.Err != nil {
			fmt.Printf("  %v", s.Err)
		}
		fmt.Println()
		for _, name := range slices.Sorted(maps.Keys(s.Artifacts)) {
			fmt.Printf("  %-8s %-10s artifact %s -> %s\n", "", "", name, s.Artifacts[name])
		}
	}
	fmt.Printf("checkout: %s\nartifacts: %s\n", rep.Checkout, rep.Artifacts)
	return rep.State, nil
}
