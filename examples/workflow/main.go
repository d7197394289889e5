// Command workflow is a small workflow engine on lading: it reads a
// Kestra-style YAML flow, runs its tasks in containers in order, the tasks
// of a Parallel task at the same time under a flow-wide limit, passes
// outputs and output files from task to task through templates, and prints
// a summary of the run.
//
//	go run ./examples/workflow -flow examples/workflow/flows/etl.yaml
//	go run ./examples/workflow -flow examples/workflow/flows/failures.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
)

func main() {
	flowPath := flag.String("flow", "examples/workflow/flows/etl.yaml", "flow file")
	maxParallel := flag.Int("max-parallel", 2, "tasks of the flow that may run at once")
	dir := flag.String("dir", "", "where the task runs' working directories go (default: a new temporary directory, kept)")
	flag.Parse()
	state, err := run(*flowPath, *maxParallel, *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "workflow:", err)
		os.Exit(2)
	}
	if state != Success && state != Warning {
		os.Exit(1)
	}
}

func run(flowPath string, maxParallel int, dir string) (State, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f, err := ReadFlow(flowPath)
	if err != nil {
		return "", err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "workflow-"); err != nil {
			return "", err
		}
	}
	e := &Engine{Dir: dir, MaxParallel: maxParallel, Log: os.Stdout}
	sum, err := e.Run(ctx, f)
	if err != nil {
		return "", err
	}
	fmt.Println()
	sum.Print(os.Stdout)
	fmt.Printf("working directories (yours to remove): %s\n", dir)
	return sum.State, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
