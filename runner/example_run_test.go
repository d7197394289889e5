package runner_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lading-dev/lading/runner"
)

// echoRunner stands in for an engine (docker.New in a host program): it
// "runs" a task by exiting with the code its first command names.
type echoRunner struct{}

func (echoRunner) Run(ctx context.Context, task runner.Task) (*runner.Result, error) {
	if err := task.Validate(); err != nil {
		return nil, err
	}
	switch task.Commands[0] {
	case "exit 3":
		return &runner.Result{ExitCode: 3}, &runner.ExitError{ExitCode: 3}
	case "sleep 60":
		return &runner.Result{ExitCode: 137}, &runner.TimeoutError{Timeout: task.Timeout, Cause: context.DeadlineExceeded}
	}
	return &runner.Result{Outputs: map[string]any{"ok": true}}, nil
}

// A host program runs tasks through the Runner interface and tells the
// outcomes apart with errors.Is and errors.As: an invalid task, a script
// that failed, a timeout, a success.
func Example() {
	var r runner.Runner = echoRunner{}
	for _, task := range []runner.Task{
		{Image: "alpine:3", Commands: []string{"true"}},
		{Image: "alpine:3", Commands: []string{"exit 3"}},
		{Image: "alpine:3", Commands: []string{"sleep 60"}, Timeout: 2 * time.Second},
		{Commands: []string{"true"}},
	} {
		res, err := r.Run(context.Background(), task)
		var exit *runner.ExitError
		var timeout *runner.TimeoutError
		switch {
		case errors.Is(err, runner.ErrInvalidTask):
			fmt.Println("not run:", err)
		case errors.As(err, &exit):
			fmt.Println("script failed with exit code", exit.ExitCode)
		case errors.As(err, &timeout):
			fmt.Println("stopped after", timeout.Timeout, "matches ErrTimeout:", errors.Is(err, runner.ErrTimeout))
		case err != nil:
			fmt.Println("could not run:", err)
		default:
			fmt.Println("outputs:", res.Outputs)
		}
	}
	// Output:
	// outputs: map[ok:true]
	// script failed with exit code 3
	// stopped after 2s matches ErrTimeout: true
	// not run: invalid task: image: must not be empty
}
