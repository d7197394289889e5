package runner_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/lading-dev/lading/runner"
)

// A host program that logs a task's output as Kestra does: ::{...}:: lines
// and level markers are left out, the rest is logged at Kestra's level.
func ExampleLine_Logged() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // for a stable example output
			}
			return a
		},
	}))
	task := runner.Task{
		OnLine: func(l runner.Line) {
			if l.Logged() {
				logger.Log(ctx, l.Level, l.Text)
			}
		},
	}

	// What a runner would deliver for a script that prints these lines.
	for _, l := range []runner.Line{
		{Stream: runner.Stdout, Text: "hello", Kind: runner.LineText, Level: slog.LevelInfo},
		{Stream: runner.Stderr, Text: "oops", Kind: runner.LineText, Level: slog.LevelError},
		{Stream: runner.Stdout, Text: `::{"outputs":{"n":1},"logs":[{"level":"WARN","message":"careful"}]}::`, Kind: runner.LineProtocol, Level: slog.LevelInfo},
		{Stream: runner.Stdout, Text: "careful", Kind: runner.LineLog, Level: slog.LevelWarn},
		{Stream: runner.Stdout, Text: "##kestra:log:debug##", Kind: runner.LineMarker, Level: slog.LevelInfo},
		{Stream: runner.Stdout, Text: "pip install ...", Kind: runner.LineText, Level: slog.LevelDebug},
	} {
		task.OnLine(l)
	}
	// Output:
	// level=INFO msg=hello
	// level=ERROR msg=oops
	// level=WARN msg=careful
	// level=DEBUG msg="pip install ..."
}
