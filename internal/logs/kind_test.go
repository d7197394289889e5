package logs

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// write is one write to one stream of a sink.
type write struct {
	stream runner.Stream
	text   string
}

// feedStreams writes to both streams of a fresh sink in the order given and
// returns the lines delivered, the bytes passed on per stream and the result.
func feedStreams(t *testing.T, masker *mask.Masker, writes ...write) ([]runner.Line, [2]string, *runner.Result) {
	t.Helper()
	var lines []runner.Line
	var out, errb bytes.Buffer
	s := New(&out, &errb, func(l runner.Line) { lines = append(lines, l) }, masker)
	for _, w := range writes {
		_, err := s.Writer(w.stream).Write([]byte(w.text))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	return lines, [2]string{out.String(), errb.String()}, res
}

// shown is a line as the tests compare it: stream, kind, level, text.
func shown(l runner.Line) string {
	return fmt.Sprintf("%s %s %s %s", l.Stream, l.Kind, l.Level, l.Text)
}

// TestLinesSayWhatKestraDoes: each line says whether Kestra logs it
// (text and log entries) or not (::{...}:: lines and level markers), and
// at which level: stdout INFO, stderr ERROR, DEBUG on both streams between
// ##kestra:log:debug## and ##kestra:log:info##, a log entry its own level.
// Before, every line had Kind text and level INFO.
func TestLinesSayWhatKestraDoes(t *testing.T) {
	o, e := runner.Stdout, runner.Stderr
	lines, passed, res := feedStreams(t, nil,
		write{o, "plain\n"},
		write{e, "oops\n"},
		write{o, `::{"outputs":{"a":1}}::` + "\n"},
		write{e, `::{"outputs":{"b":2}}::` + "\n"},
		write{o, "  ::{\"outputs\":{\"c\":3}}::  \n"},
		write{o, "::{broken}::\n"},
		write{o, `::{"logs":[{"level":"WARN","message":"w"},{"level":"TRACE","message":"t"},{"message":"none"},` +
			`{"level":"FATAL","message":"f"},{"level":"ERROR","message":"e"},{"level":"debug","message":"d"},{"level":" Info ","message":"i"}]}::` + "\n"},
		write{o, "##kestra:log:debug##\n"},
		write{o, "setup\n"},
		write{e, "setup warning\n"},
		write{o, `::{"logs":[{"level":"INFO","message":"entry"}]}::` + "\n"},
		write{o, " ##kestra:log:info##\n"},
		write{o, "##KESTRA:LOG:INFO##\n"},
		write{e, "##kestra:log:info##\r\n"},
		write{o, "main\n"},
		write{e, "fail"},
	)
	assert.Equal(t, []string{
		"stdout text INFO plain",
		"stderr text ERROR oops",
		`stdout protocol INFO ::{"outputs":{"a":1}}::`,
		`stderr protocol ERROR ::{"outputs":{"b":2}}::`,
		`stdout protocol INFO   ::{"outputs":{"c":3}}::  `,
		"stdout protocol INFO ::{broken}::",
		`stdout protocol INFO ::{"logs":[{"level":"WARN","message":"w"},{"level":"TRACE","message":"t"},{"message":"none"},` +
			`{"level":"FATAL","message":"f"},{"level":"ERROR","message":"e"},{"level":"debug","message":"d"},{"level":" Info ","message":"i"}]}::`,
		"stdout log WARN w",
		"stdout log DEBUG-4 t",
		"stdout log INFO none",
		"stdout log INFO f",
		"stdout log ERROR e",
		"stdout log DEBUG d",
		"stdout log INFO i",
		"stdout marker INFO ##kestra:log:debug##",
		"stdout text DEBUG setup",
		"stderr text DEBUG setup warning",
		`stdout protocol DEBUG ::{"logs":[{"level":"INFO","message":"entry"}]}::`,
		"stdout log INFO entry",
		"stdout text DEBUG  ##kestra:log:info##",
		"stdout text DEBUG ##KESTRA:LOG:INFO##",
		"stderr marker DEBUG ##kestra:log:info##",
		"stdout text INFO main",
		"stderr text ERROR fail",
	}, mapLines(lines, shown))

	var logged []string
	for _, l := range lines {
		if l.Logged() {
			logged = append(logged, l.Text)
		}
	}
	assert.Equal(t, []string{"plain", "oops", "w", "t", "none", "f", "e", "d", "i", "setup", "setup warning", "entry",
		" ##kestra:log:info##", "##KESTRA:LOG:INFO##", "main", "fail"}, logged, "what Kestra logs")
	assert.Equal(t, runner.LevelTrace, lines[8].Level)

	require.Len(t, res.Warnings, 2, "%q", res.Warnings)
	assert.Contains(t, res.Warnings[0], "::{...}:: line that is not a JSON object")
	assert.Contains(t, res.Warnings[1], `logs[3]: level "FATAL" is not one of TRACE, DEBUG, INFO, WARN, ERROR; logged at INFO`)
	assert.Equal(t, 11, res.StdoutLines, "lading counts every line, markers and ::{...}:: lines included")
	assert.Equal(t, 5, res.StderrLines)
	assert.Contains(t, passed[0], "##kestra:log:debug##\n", "markers are passed on")
	assert.Contains(t, passed[1], "##kestra:log:info##\r\n")
}

// TestMarkerWithSecretStillMarks: a line is classified before it is masked,
// so a marker that contains a secret by accident still switches the level.
func TestMarkerWithSecretStillMarks(t *testing.T) {
	o := runner.Stdout
	lines, passed, _ := feedStreams(t, mask.New("kestra:log:debug"),
		write{o, "##kestra:log:debug##\n"},
		write{o, "quiet\n"},
	)
	assert.Equal(t, []string{"stdout marker INFO ##****##", "stdout text DEBUG quiet"}, mapLines(lines, shown))
	assert.NotContains(t, passed[0], "kestra:log:debug")
}

func mapLines(lines []runner.Line, f func(runner.Line) string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, f(l))
	}
	return out
}
