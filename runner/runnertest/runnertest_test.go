//go:build unix

package runnertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/lading-dev/lading/internal/logs"
	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/runner/runnertest"
)

// TestHostRunner runs the suite against hostRunner, which proves the suite
// sound: a genuine runner passes every case it claims to support.
func TestHostRunner(t *testing.T) {
	const noFiles = "hostRunner stages no files and renders no templates"
	runnertest.Run(t, runnertest.Config{
		Image: "host", // ignored
		New:   func(*testing.T) runner.Runner { return hostRunner{} },
		Skip: map[string]string{
			"InputAndOutputFiles":           noFiles,
			"NestedOutputFiles":             noFiles,
			"RecursiveGlob":                 noFiles,
			"OutputFilesAfterFailure":       noFiles,
			"WorkingAndOutputDirEnv":        noFiles,
			"OutputDirDisabled":             noFiles,
			"TemplateVars":                  noFiles,
			"UndefinedTemplateVariable":     noFiles,
			"InputOutsideWorkingDirRefused": noFiles,
			"SymlinksNeverFollowed":         noFiles,
			"InputFileMode":                 noFiles,
			"InputFileModeRefused":          noFiles,
			"OnlyProducedFilesAreOutputs":   noFiles,
			"LaterRunListsOnlyItsOwnFiles":  noFiles,
			"UnmatchedGlobWarns":            noFiles,

			// The template cases need a runner that renders templates.
			"TemplateValuesAreNotEscaped":               noFiles,
			"TemplateUndefinedFunctionFailsBeforeStart": noFiles,
			"TemplateNumbersRenderAsWritten":            noFiles,
			"TemplateRenderHonoursTimeout":              noFiles,
			"TemplateRenderIsCapped":                    noFiles,
			"BeforeCommandsAreTemplates":                noFiles,
			"InputFileTemplates":                        noFiles,
			"InputFileTemplateErrorsNameTheFile":        noFiles,
			"InputFileTemplatesDisabled":                noFiles,
		},
	})
}

// hostRunner runs a task's script on this host with os/exec, ignoring the
// image, in the task's working directory (a fresh one when empty). It
// feeds the output through the same line handling as the engines and
// reports exits, timeouts and cancellation as [runner.Runner] says. It is
// safe for concurrent use.
type hostRunner struct{}

var _ runner.Runner = hostRunner{}

func (hostRunner) Run(ctx context.Context, task runner.Task) (*runner.Result, error) {
	if err := task.Validate(); err != nil {
		return nil, err
	}
	parent := ctx
	if task.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, task.Timeout)
		defer cancel()
	}
	whole := ctx
	if task.ScriptTimeout > 0 {
		// The script is all a host run does: its limit starts here.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, task.ScriptTimeout)
		defer cancel()
	}

	secrets := make([]string, 0, len(task.Secrets))
	for _, v := range task.Secrets {
		secrets = append(secrets, v)
	}
	masker := mask.New(secrets...)

	dir := task.WorkingDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "lading-host-"); err != nil {
			return nil, fmt.Errorf("host: working directory: %w", err)
		}
	}

	argv := task.Command()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range task.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range task.Secrets {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sink := logs.New(task.Stdout, task.Stderr, task.OnLine, masker)
	cmd.Stdout = sink.Writer(runner.Stdout)
	cmd.Stderr = sink.Writer(runner.Stderr)
	// The script runs in a process group of its own, killed whole when ctx
	// is done, so its children (sleep) do not hold the pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	res := &runner.Result{WorkingDir: dir, Started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, masker.Error(fmt.Errorf("host: start %s: %w", argv[0], err))
	}
	waitErr := cmd.Wait()
	res.Finished = time.Now()
	closeErr := sink.Close()
	sink.Fill(res)

	var err error
	var exit *exec.ExitError
	switch {
	case parent.Err() != nil:
		err = fmt.Errorf("host: %w", parent.Err())
	case whole.Err() != nil:
		err = &runner.TimeoutError{Timeout: task.Timeout, Cause: whole.Err(), Limit: "timeout"}
	case ctx.Err() != nil:
		err = &runner.TimeoutError{Timeout: task.ScriptTimeout, Cause: ctx.Err(), Limit: "scriptTimeout"}
	case errors.As(waitErr, &exit):
		res.ExitCode = exit.ExitCode()
		err = &runner.ExitError{ExitCode: res.ExitCode}
	case waitErr != nil:
		err = fmt.Errorf("host: %w", waitErr)
	}
	if err == nil && closeErr != nil {
		err = fmt.Errorf("host: %w", closeErr)
	}
	return res, masker.Error(err)
}
