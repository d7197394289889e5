// Package runner is lading's runner-neutral contract: a [Task] to run, the
// [Runner] that runs it, the [Result] it returns and the errors it reports.
//
// It imports no container engine's packages; engines such as
// [github.com/lading-dev/lading/docker] implement [Runner], and
// [github.com/lading-dev/lading/runner/runnertest] checks that they all behave
// the same.
//
// # Tasks
//
// A Task names an image, an interpreter (default /bin/sh -c) and commands,
// joined with newlines into one script after its before commands. As in
// Kestra, a script run by a shell begins with set -e, so the first failing
// command ends it (see [Task.DisableFailFast]). Its output reaches the caller three
// ways, all optional: the Stdout and Stderr writers get the bytes unchanged,
// OnLine gets each line with its stream and time, and the Result counts lines
// per stream.
//
// # Outputs
//
// A script reports values by printing a line that is exactly
// ::{"outputs":{...}}:: (surrounding spaces allowed), the format of Kestra's
// script tasks, so scripts written for Kestra work unchanged. The objects of
// all such lines are merged into [Result.Outputs]: a later value for a key
// replaces an earlier one and a JSON null is kept. {"metrics":[...]} entries
// land in [Result.Metrics], and {"logs":[{"level":...,"message":...}]}
// entries are re-emitted to OnLine as lines of Kind [LineLog] with the
// entry's level. Numbers keep their type (an integer is an int64), and secrets are
// masked in values of every type. Each part of a line, and each metric and
// log entry, is read on its own: a ::{...}:: line that is not valid JSON, or
// an entry that cannot be read, is passed on and noted in [Result.Warnings],
// and the rest of the line is kept. Outputs are bounded (10,000 keys, 1 MiB)
// and so are warnings (100, then a count): see [Result].
//
// # Lines and Kestra's log
//
// Kestra does not log ::{...}:: lines; it logs stdout at INFO and stderr at
// ERROR, and the text between a "##kestra:log:debug##" line and a
// "##kestra:log:info##" line (both left out) at DEBUG. lading hides
// nothing: every line reaches Stdout, Stderr and OnLine and is counted in
// [Result]. Each [Line] says what Kestra would do with it (its [LineKind],
// and its Level as an [log/slog.Level]), so that a host logs as Kestra does
// with one line in OnLine:
//
//	if l.Logged() { logger.Log(ctx, l.Level, l.Text) }
//
// Lines end at "\n", "\r\n" or a lone "\r" (progress bars); a last line
// without a terminator is delivered at the end. A line longer than 1 MiB is
// delivered in 1 MiB pieces.
//
// # Errors
//
// A script that ran and exited non-zero gives a populated *Result and an
// [*ExitError], so outputs printed before the failure are kept. Other
// failures match a sentinel with [errors.Is]: [ErrInvalidTask] and
// [ErrInvalidConfig] (as a [*FieldError] naming the field and value),
// [ErrImageNotFound], [ErrUnauthorized], [ErrEngineUnreachable],
// [ErrEngineUnresponsive], [ErrOutputBlocked] and [ErrTimeout] (the task's
// own Timeout or ScriptTimeout; it also matches [context.DeadlineExceeded]). Once the context
// is done, the error matches both its Err ([context.Canceled] or
// [context.DeadlineExceeded]) and its [context.Cause].
//
// # Example
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//		"os"
//
//		"github.com/lading-dev/lading/docker"
//		"github.com/lading-dev/lading/runner"
//	)
//
//	func main() {
//		r, err := docker.New(docker.Config{})
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer r.Close()
//		res, err := r.Run(context.Background(), runner.Task{
//			Image:    "busybox:1.36",
//			Commands: []string{"echo Hello World", `echo '::{"outputs":{"greeting":"hi"}}::'`},
//			Stdout:   os.Stdout,
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(res.Outputs["greeting"])
//	}
package runner
