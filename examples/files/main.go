// Command files sends two input files into a container, runs a script that
// writes a report from them, and prints where the collected files are on the
// host.
//
//	go run ./examples/files -image lading-test/busybox:latest
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

func main() {
	image := flag.String("image", "busybox:1.36", "image to run the script in")
	strategy := flag.String("strategy", "VOLUME", "file handling strategy: VOLUME or MOUNT")
	flag.Parse()
	if err := run(*image, docker.FileHandlingStrategy(*strategy)); err != nil {
		fmt.Fprintln(os.Stderr, "files:", err)
		os.Exit(1)
	}
}

func run(image string, strategy docker.FileHandlingStrategy) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := docker.New(docker.Config{FileHandlingStrategy: strategy})
	if err != nil {
		return err
	}
	defer r.Close()

	res, err := r.Run(ctx, runner.Task{
		Image: image,
		InputFiles: map[string]runner.Source{
			"data/sales.csv": files.String("region,amount\nnorth,120\nsouth,80\nnorth,40\n"),
			"title.txt":      files.String("Sales by region"),
		},
		Vars:        map[string]any{"inputs": map[string]any{"region": "north"}},
		OutputFiles: []string{"report.txt"},
		Commands: []string{
			`total=$(grep '^{{ inputs.region }},' data/sales.csv | cut -d, -f2 | paste -sd+ | bc)`,
			`{ cat title.txt; echo; echo "{{ inputs.region }}: $total"; } > report.txt`,
			`cp data/sales.csv {{ outputDir }}/sales-copy.csv`,
			`echo "::{\"outputs\":{\"total\":$total}}::"`,
		},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	if err != nil {
		return err
	}
	fmt.Printf("outputs: %v\n", res.Outputs)
	fmt.Printf("working directory (yours to remove): %s\n", res.WorkingDir)
	names := make([]string, 0, len(res.OutputFiles))
	for name := range res.OutputFiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("  %-16s -> %s\n", name, res.OutputFiles[name])
	}
	report, err := os.ReadFile(res.OutputFiles["report.txt"])
	if err != nil {
		return err
	}
	fmt.Printf("report.txt:\n%s", report)
	return nil
}
