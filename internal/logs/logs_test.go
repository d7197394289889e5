package logs

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// feed writes chunks to one stream of a fresh sink and returns the lines
// delivered, the bytes passed on and the result.
func feed(t *testing.T, chunks ...string) ([]runner.Line, string, *runner.Result) {
	t.Helper()
	var lines []runner.Line
	var out bytes.Buffer
	s := New(&out, nil, func(l runner.Line) { lines = append(lines, l) }, nil)
	w := s.Writer(runner.Stdout)
	for _, c := range chunks {
		n, err := w.Write([]byte(c))
		require.NoError(t, err)
		require.Equal(t, len(c), n)
	}
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	return lines, out.String(), res
}

func texts(lines []runner.Line) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

func TestSplitting(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"one line", []string{"hello\n"}, []string{"hello"}},
		{"no trailing newline", []string{"a\nb"}, []string{"a", "b"}},
		{"split across chunks", []string{"hel", "lo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"CR segments", []string{"10%\r50%\r100%\n"}, []string{"10%", "50%", "100%"}},
		{"CRLF is one terminator", []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"CRLF split across chunks", []string{"a\r", "\nb\n"}, []string{"a", "b"}},
		{"CR then CR", []string{"a\r", "\rb"}, []string{"a", "", "b"}},
		{"empty lines kept", []string{"\n\nx\n"}, []string{"", "", "x"}},
		{"byte at a time", strings.Split("ab\ncd\r\nef", ""), []string{"ab", "cd", "ef"}},
		{"nothing", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, raw, res := feed(t, tt.chunks...)
			assert.Equal(t, tt.want, texts(lines))
			assert.Equal(t, strings.Join(tt.chunks, ""), raw, "bytes passed on unchanged")
			assert.Equal(t, len(tt.want), res.StdoutLines)
			for _, l := range lines {
				assert.Equal(t, runner.Stdout, l.Stream)
				assert.False(t, l.Time.IsZero())
			}
		})
	}
}

func TestLongLineIsCutAtMaxLineBytes(t *testing.T) {
	long := strings.Repeat("x", MaxLineBytes+10)
	lines, raw, res := feed(t, long[:100], long[100:], "\n")
	require.Len(t, lines, 2)
	assert.Len(t, lines[0].Text, MaxLineBytes)
	assert.Len(t, lines[1].Text, 10)
	assert.Equal(t, 2, res.StdoutLines)
	assert.Equal(t, long+"\n", raw)
}

func TestOutputs(t *testing.T) {
	lines, _, res := feed(t,
		`::{"outputs":{"a":1,"b":"x","c":null}}::`+"\n",
		"not json ::{\"outputs\":{\"z\":1}}::\n",
		"  ::{\"outputs\":{\"a\":2}}::  \n",
		`::{"metrics":[{"name":"rows","type":"counter","value":3,"tags":{"t":"v"}}]}::`+"\n",
		`::{"logs":[{"level":"WARN","message":"careful"}]}::`+"\n",
		`::{broken}::`+"\n",
	)
	assert.Equal(t, map[string]any{"a": int64(2), "b": "x", "c": nil}, res.Outputs)
	assert.Equal(t, []runner.Metric{{Name: "rows", Type: "counter", Value: 3, Tags: map[string]string{"t": "v"}}}, res.Metrics)
	require.Len(t, res.Warnings, 1)
	assert.Contains(t, res.Warnings[0], "stdout")
	assert.Equal(t, 6, res.StdoutLines, "::{...}:: lines are counted like any other")

	var logged []runner.Line
	for _, l := range lines {
		if l.Kind == runner.LineLog {
			logged = append(logged, l)
		}
	}
	require.Len(t, logged, 1)
	assert.Equal(t, slog.LevelWarn, logged[0].Level)
	assert.Equal(t, "careful", logged[0].Text)
}

func TestStreamsKeptApart(t *testing.T) {
	var out, errb bytes.Buffer
	s := New(&out, &errb, nil, nil)
	_, _ = s.Writer(runner.Stdout).Write([]byte("o1\no"))
	_, _ = s.Writer(runner.Stderr).Write([]byte("e1\ne"))
	_, _ = s.Writer(runner.Stdout).Write([]byte("2\n"))
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	assert.Equal(t, "o1\no2\n", out.String())
	assert.Equal(t, "e1\ne", errb.String())
	assert.Equal(t, 2, res.StdoutLines)
	assert.Equal(t, 2, res.StderrLines)
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, assert.AnError
}

func TestWriterErrorKeepsDraining(t *testing.T) {
	fw := &failWriter{}
	s := New(fw, nil, nil, nil)
	w := s.Writer(runner.Stdout)
	for range 3 {
		_, err := w.Write([]byte("x\n"))
		require.NoError(t, err, "the engine's stream must keep draining")
	}
	err := s.Close()
	require.ErrorIs(t, err, assert.AnError)
	assert.Equal(t, 1, fw.n, "a failed writer is not written again")
	res := &runner.Result{}
	s.Fill(res)
	assert.Equal(t, 3, res.StdoutLines)
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte("a\r\nb\rc\n"), uint8(3))
	f.Add([]byte("::{\"outputs\":{\"k\":1}}::\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		size := int(step%16) + 1
		var got bytes.Buffer
		var lines int
		s := New(&got, nil, func(runner.Line) { lines++ }, nil)
		w := s.Writer(runner.Stdout)
		for i := 0; i < len(data); i += size {
			_, _ = w.Write(data[i:min(i+size, len(data))])
		}
		_ = s.Close()
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("bytes changed: %q -> %q", data, got.Bytes())
		}
		// The line count must not depend on how the stream was chunked.
		var whole int
		s2 := New(nil, nil, func(runner.Line) { whole++ }, nil)
		_, _ = s2.Writer(runner.Stdout).Write(data)
		_ = s2.Close()
		if whole != lines {
			t.Fatalf("chunking by %d gave %d lines, whole gave %d", size, lines, whole)
		}
	})
}

func BenchmarkSplit(b *testing.B) {
	line := strings.Repeat("y", 99) + "\n"
	chunk := []byte(strings.Repeat(line, 32*1024/len(line)))
	b.SetBytes(int64(len(chunk)))
	s := New(io.Discard, nil, func(runner.Line) {}, nil)
	w := s.Writer(runner.Stdout)
	for b.Loop() {
		_, _ = w.Write(chunk)
	}
}

func TestMasking(t *testing.T) {
	var out bytes.Buffer
	var lines []runner.Line
	s := New(&out, nil, func(l runner.Line) { lines = append(lines, l) }, mask.New("hunter2"))
	w := s.Writer(runner.Stdout)
	for _, chunk := range []string{"pass=hun", "ter2\n", `::{"outputs":{"pw":"hunter2","ok":1},"logs":[{"message":"is hunter2"}]}::` + "\n", `::{"metrics":[{"name":"hunter2","type":"counter","value":1,"tags":{"t":"hunter2"}}]}::` + "\n"} {
		_, _ = w.Write([]byte(chunk))
	}
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	assert.NotContains(t, out.String(), "hunter2")
	assert.Contains(t, out.String(), "pass=****\n")
	for _, l := range lines {
		assert.NotContains(t, l.Text, "hunter2")
	}
	assert.Equal(t, map[string]any{"pw": "****", "ok": int64(1)}, res.Outputs)
	assert.Equal(t, "****", res.Metrics[0].Name)
	assert.Equal(t, map[string]string{"t": "****"}, res.Metrics[0].Tags)
}

func BenchmarkSplitMasked(b *testing.B) {
	line := strings.Repeat("y", 99) + "\n"
	chunk := []byte(strings.Repeat(line, 32*1024/len(line)))
	b.SetBytes(int64(len(chunk)))
	s := New(io.Discard, nil, func(runner.Line) {}, mask.New("hunter2hunter2", "ghp_0123456789abcdef", "p@ss word"))
	w := s.Writer(runner.Stdout)
	for b.Loop() {
		_, _ = w.Write(chunk)
	}
}
