package docker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// The program of the README: needs an engine, so it has no Output line.
func ExampleRunner_Run() {
	r, err := docker.New(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	res, err := r.Run(context.Background(), runner.Task{
		Image:       "busybox:1.36",
		InputFiles:  map[string]runner.Source{"hello.txt": files.String("Hello World\n")},
		OutputFiles: []string{"*.out"},
		Secrets:     map[string]string{"TOKEN": "s3cret-t0ken"},
		Commands: []string{
			"cat hello.txt | tr a-z A-Z > shout.out",
			`echo '::{"outputs":{"greeting":"hi"}}::'`,
		},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	var exit *runner.ExitError
	switch {
	case errors.As(err, &exit):
		log.Fatalf("script failed with exit code %d; outputs so far: %v", exit.ExitCode, res.Outputs)
	case err != nil:
		log.Fatal(err)
	}
	defer os.RemoveAll(res.WorkingDir)
	fmt.Println(res.Outputs["greeting"], res.OutputFiles["shout.out"])
}

// A Kestra taskRunner block, as JSON, configures a Runner.
func ExampleParseConfig() {
	cfg, err := docker.ParseConfig([]byte(`{
		"type": "io.kestra.plugin.scripts.runner.docker.Docker",
		"pullPolicy": "NEVER",
		"cpu": {"cpus": 1.5},
		"memory": {"memory": "512Mb"},
		"killGracePeriod": "PT5S"
	}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.PullPolicy, cfg.CPU.CPUs, cfg.Memory.Memory, cfg.KillGracePeriod)
	// Output: NEVER 1.5 512MiB 5s
}

// A taskRunner block of a YAML flow, as a YAML library decodes it into a
// map (go.yaml.in/yaml/v3 gives these types), with values that went
// through templates, configures a Runner.
func ExampleParseConfigMap() {
	block := map[string]any{ // taskRunner: {type: ..., delete: "false", pidsLimit: "100", cpu: {cpus: 1.5}, user: 1000}
		"type":      "io.kestra.plugin.scripts.runner.docker.Docker",
		"delete":    "false",
		"pidsLimit": "100",
		"cpu":       map[string]any{"cpus": 1.5},
		"user":      1000,
	}
	cfg, err := docker.ParseConfigMap(block)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*cfg.Delete, cfg.PidsLimit, cfg.CPU.CPUs, cfg.User)

	_, err = docker.ParseConfigMap(map[string]any{"delete": "yes", "pullpolicy": "NEVER"})
	fmt.Println(err)
	// Output:
	// false 100 1.5 1000
	// invalid config: delete "yes": must be true or false
}
