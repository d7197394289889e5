// Package docker runs lading tasks in containers on a Docker Engine, or on any
// engine that serves the Docker Engine API (Podman's API service included).
//
// It speaks the Engine API through github.com/moby/moby/client with API
// version negotiation, so it works with Engine API 1.41 (Docker 20.10) and
// newer engines.
//
// # Configuration
//
// [Config] uses the property names and defaults of Kestra's Docker task
// runner: pullPolicy IF_NOT_PRESENT, the image's entrypoint cleared, delete
// and wait true, killGracePeriod 0 (kill at once). [ParseConfig] reads a
// Kestra taskRunner block (as JSON) and refuses unknown properties.
//
// # A run
//
// [Runner.Run] makes the image present as the pull policy says, creates a
// labelled container named lading-<run id>, attaches to its output and
// registers the wait before starting it (so neither a fast exit nor the first
// bytes are missed), reads stdout and stderr apart (no TTY) until the stream
// ends, and removes the container on every path, on a fresh bounded context,
// so a cancelled caller still leaves a clean engine. Lines the engine split
// into 16 KiB pieces arrive whole, because lines are cut on the bytes, not
// on the engine's frames.
//
// Every container carries the labels [LabelManaged], [LabelRun],
// [LabelCreated] and, when the task has an ID, [LabelTask].
//
// # Stopping
//
// When the context is cancelled or the task's timeout is reached, the
// container is killed at once (KillGracePeriod 0), or sent StopSignal
// (default SIGTERM) and killed after KillGracePeriod. Run returns once the
// container has stopped, with the output read up to then.
//
// # Example
//
//	r, err := docker.New(docker.Config{PullPolicy: docker.PullIfNotPresent})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer r.Close()
//	res, err := r.Run(ctx, runner.Task{
//		Image:    "busybox:1.36",
//		Commands: []string{"echo Hello World", `echo '::{"outputs":{"greeting":"hi"}}::'`},
//		Env:      map[string]string{"NAME": "x"},
//		Stdout:   os.Stdout,
//		Stderr:   os.Stderr,
//	})
//	var exit *runner.ExitError
//	if errors.As(err, &exit) {
//		log.Printf("script failed with %d; outputs so far: %v", exit.ExitCode, res.Outputs)
//	}
package docker
