package runnertest

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/lading-dev/lading/runner"
)

// lineCases: what each line says about how Kestra would log it (its Kind
// and Level).
func lineCases() []Case {
	kindsOf := func(out *Output, stream runner.Stream) []string {
		var got []string
		for _, l := range out.Lines {
			if l.Stream == stream {
				got = append(got, fmt.Sprintf("%s %s %s", l.Kind, l.Level, l.Text))
			}
		}
		return got
	}
	return []Case{
		{"LinesSayHowKestraLogsThem", func(t *testing.T, s *Suite) {
			// Both streams, no marker: the order across streams does not
			// matter here.
			out := s.Script(t,
				"echo plain",
				"echo oops >&2",
				`echo '::{"outputs":{"a":1},"logs":[{"level":"WARN","message":"careful"},{"level":"TRACE","message":"fine"}]}::'`,
				`echo '::{"outputs":{"b":2}}::' >&2`,
			)
			assert.Equal(t, []string{
				"text INFO plain",
				`protocol INFO ::{"outputs":{"a":1},"logs":[{"level":"WARN","message":"careful"},{"level":"TRACE","message":"fine"}]}::`,
				"log WARN careful",
				"log DEBUG-4 fine",
			}, kindsOf(out, runner.Stdout))
			assert.Equal(t, []string{"text ERROR oops", `protocol ERROR ::{"outputs":{"b":2}}::`}, kindsOf(out, runner.Stderr))
			assert.Equal(t, map[string]any{"a": int64(1), "b": int64(2)}, out.Result.Outputs)
			assert.Equal(t, 2, out.Result.StdoutLines, "lading counts and passes on ::{...}:: lines")
			assert.Contains(t, out.Stdout, `::{"outputs":{"a":1}`)
		}},
		{"LevelMarkers", func(t *testing.T, s *Suite) {
			// One stream only: the markers switch the level of the lines
			// after them in the order the runner received them.
			out := s.Script(t,
				"echo '##kestra:log:debug##'",
				"echo setup",
				"echo '##kestra:log:info##'",
				"echo main",
			)
			assert.Equal(t, []string{
				"marker INFO ##kestra:log:debug##",
				"text DEBUG setup",
				"marker DEBUG ##kestra:log:info##",
				"text INFO main",
			}, kindsOf(out, runner.Stdout))
			var logged []slog.Level
			for _, l := range out.Lines {
				if l.Logged() {
					logged = append(logged, l.Level)
				}
			}
			assert.Equal(t, []slog.Level{slog.LevelDebug, slog.LevelInfo}, logged, "what Kestra logs: setup at DEBUG, main at INFO")
		}},
	}
}
