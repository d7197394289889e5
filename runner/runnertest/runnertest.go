// Package runnertest is a conformance suite for [runner.Runner]
// implementations. It is seeded with the cases of Kestra's own task-runner
// tests and adds the ones lading promises on top: every runner must pass it.
//
// # Usage
//
// Call [Run] from a test of the runner's package:
//
//	func TestConformance(t *testing.T) {
//		runnertest.Run(t, runnertest.Config{
//			Image: "busybox:1.36",
//			New: func(t *testing.T) runner.Runner {
//				r, err := docker.New(docker.Config{})
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { r.Close() })
//				return r
//			},
//		})
//	}
//
// The image must provide /bin/sh and the usual tools (echo, printf, seq,
// head, tr, sleep, cat), as busybox does. Cases run in parallel.
//
// The package imports no container engine.
package runnertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// Config describes the runner under test.
type Config struct {
	// Image is the image the cases run in.
	Image string
	// New returns the runner to test; it is called once per case.
	New func(t *testing.T) runner.Runner
	// Skip names cases to skip, with the reason, for runners that cannot
	// do something by design.
	Skip map[string]string
}

// liveness bounds how long a stopped run may take to return: far below the
// 30 s the stopped scripts would sleep, so a runner that does not stop them
// fails.
const liveness = 20 * time.Second

// Case is one conformance case.
type Case struct {
	Name string
	Test func(t *testing.T, s *Suite)
}

// Suite is what a case gets: the config and helpers.
type Suite struct {
	cfg Config
}

// Run runs every case against the runner as parallel subtests.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	require.NotEmpty(t, cfg.Image, "runnertest.Config.Image")
	require.NotNil(t, cfg.New, "runnertest.Config.New")
	s := &Suite{cfg: cfg}
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			if why, ok := cfg.Skip[c.Name]; ok {
				t.Skip(why)
			}
			t.Parallel()
			c.Test(t, s)
		})
	}
}

// Output is what a run produced, gathered safely.
type Output struct {
	Result *runner.Result
	Err    error
	Lines  []runner.Line // every line, in order of delivery
	Stdout string        // bytes the Stdout writer received
	Stderr string        // bytes the Stderr writer received
}

// Texts returns the texts of the lines of one stream that the script printed
// (not re-emitted log entries).
func (o *Output) Texts(stream runner.Stream) []string {
	var out []string
	for _, l := range o.Lines {
		if l.Stream == stream && l.Level == "" {
			out = append(out, l.Text)
		}
	}
	return out
}

// lockedBuffer is a writer safe for use from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Exec runs task (its Image defaulting to the suite's) with a fresh runner
// and gathers everything it delivered.
func (s *Suite) Exec(t *testing.T, ctx context.Context, task runner.Task) *Output {
	t.Helper()
	if task.Image == "" {
		task.Image = s.cfg.Image
	}
	var mu sync.Mutex
	out := &Output{}
	var stdout, stderr lockedBuffer
	task.Stdout, task.Stderr = &stdout, &stderr
	task.OnLine = func(l runner.Line) {
		mu.Lock()
		defer mu.Unlock()
		out.Lines = append(out.Lines, l)
	}
	out.Result, out.Err = s.cfg.New(t).Run(ctx, task)
	if task.WorkingDir == "" && out.Result != nil && out.Result.WorkingDir != "" {
		dir := out.Result.WorkingDir
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	mu.Lock()
	defer mu.Unlock()
	out.Stdout, out.Stderr = stdout.String(), stderr.String()
	return out
}

// Script runs commands and requires success.
func (s *Suite) Script(t *testing.T, commands ...string) *Output {
	t.Helper()
	out := s.Exec(t, t.Context(), runner.Task{Commands: commands})
	require.NoError(t, out.Err)
	require.NotNil(t, out.Result)
	return out
}

// requireExit checks that the run failed with exit code code and still
// returned its result.
func requireExit(t *testing.T, out *Output, code int) {
	t.Helper()
	var exit *runner.ExitError
	require.ErrorAs(t, out.Err, &exit)
	assert.Equal(t, code, exit.ExitCode)
	require.NotNil(t, out.Result, "a failed script still returns its Result")
	assert.Equal(t, code, out.Result.ExitCode)
}

// readOutputs returns the content of every collected output file.
func readOutputs(t *testing.T, res *runner.Result) map[string]string {
	t.Helper()
	got := map[string]string{}
	for rel, p := range res.OutputFiles {
		require.True(t, filepath.IsAbs(p), "output %s has an absolute path", rel)
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		got[rel] = string(data)
	}
	return got
}

// Cases returns the conformance cases.
func Cases() []Case {
	return append(logCases(), fileCases()...)
}

func fileCases() []Case {
	return []Case{
		{"InputAndOutputFiles", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles:  map[string]runner.Source{"hello.txt": files.String("Hello World")},
				OutputFiles: []string{"output.txt"},
				Commands: []string{
					"cat hello.txt && echo",
					"cp {{ workingDir }}/hello.txt {{ workingDir }}/output.txt",
					"echo 'file' > {{ outputDir }}/file.txt",
					"mkdir -p {{ outputDir }}/nested && echo 'nested' > {{ outputDir }}/nested/file.txt",
					`echo '::{"outputs":{"logOutput":"'"$(cat hello.txt)"'"}}::'`,
				},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, "Hello World", out.Texts(runner.Stdout)[0])
			assert.Equal(t, "Hello World", out.Result.Outputs["logOutput"])
			assert.Equal(t, map[string]string{"output.txt": "Hello World", "file.txt": "file\n", "nested/file.txt": "nested\n"}, readOutputs(t, out.Result))
			assert.DirExists(t, out.Result.WorkingDir)
		}},
		{"NestedOutputFiles", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				OutputFiles: []string{"*.xml", "sub/**/*.csv"},
				Commands:    []string{"printf '1\\n3\\n' > file.xml", "mkdir -p sub/dir", "printf '2\\n' > sub/dir/file.csv", "echo no > other.txt"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, map[string]string{"file.xml": "1\n3\n", "sub/dir/file.csv": "2\n"}, readOutputs(t, out.Result))
		}},
		{"RecursiveGlob", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles:  map[string]runner.Source{"test/application.yml": files.String("app: 1\n")},
				OutputFiles: []string{"out/**"},
				Commands:    []string{"mkdir -p out", "cp test/application.yml out/bla.yml"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, map[string]string{"out/bla.yml": "app: 1\n"}, readOutputs(t, out.Result))
		}},
		{"OutputFilesAfterFailure", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				OutputFiles: []string{"*.txt"},
				Commands:    []string{"echo partial > result.txt", "echo more > {{ outputDir }}/log.txt", "exit 1"},
			})
			requireExit(t, out, 1)
			assert.Equal(t, map[string]string{"result.txt": "partial\n", "log.txt": "more\n"}, readOutputs(t, out.Result))
		}},
		{"TwoRunsInOneWorkingDir", func(t *testing.T, s *Suite) {
			dir := t.TempDir()
			first := s.Exec(t, t.Context(), runner.Task{WorkingDir: dir, OutputFiles: []string{"state.txt"}, Commands: []string{"echo from-first > state.txt"}})
			require.NoError(t, first.Err)
			second := s.Exec(t, t.Context(), runner.Task{WorkingDir: dir, Commands: []string{"cat state.txt"}})
			require.NoError(t, second.Err)
			assert.Equal(t, []string{"from-first"}, second.Texts(runner.Stdout))
			assert.Equal(t, dir, second.Result.WorkingDir)
		}},
		{"WorkingAndOutputDirEnv", func(t *testing.T, s *Suite) {
			out := s.Script(t, `[ "$(pwd)" = "$WORKING_DIR" ] && echo cwd-ok`, `[ "{{ workingDir }}" = "$WORKING_DIR" ] && echo wd-ok`,
				`[ "{{ outputDir }}" = "$OUTPUT_DIR" ] && [ -d "$OUTPUT_DIR" ] && [ -w "$OUTPUT_DIR" ] && echo od-ok`)
			assert.Equal(t, []string{"cwd-ok", "wd-ok", "od-ok"}, out.Texts(runner.Stdout))
		}},
		{"OutputDirDisabled", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{DisableOutputDir: true, Commands: []string{`echo "[${OUTPUT_DIR-unset}]"`}})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"[unset]"}, out.Texts(runner.Stdout))
			out = s.Exec(t, t.Context(), runner.Task{DisableOutputDir: true, Commands: []string{"echo {{ outputDir }}"}})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
		}},
		{"TemplateVars", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				Vars:     map[string]any{"inputs": map[string]any{"name": "lading", "n": 2}},
				Env:      map[string]string{"GREETING": "hi {{ inputs.name }}"},
				Commands: []string{"echo {{ inputs.name }} {{ inputs.n }}", `echo "$GREETING"`},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"lading 2", "hi lading"}, out.Texts(runner.Stdout))
		}},
		{"UndefinedTemplateVariable", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"echo safe", "rm -rf {{ workDir }}/"}})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.Equal(t, "commands[1]", fe.Field)
			assert.Contains(t, out.Err.Error(), "workDir")
			assert.Empty(t, out.Lines, "nothing ran")
		}},
		{"InputOutsideWorkingDirRefused", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{InputFiles: map[string]runner.Source{"../escape.txt": files.String("x")}, Commands: []string{"true"}})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.Equal(t, "inputFiles", fe.Field)
			assert.Equal(t, "../escape.txt", fe.Value)
		}},
		{"SymlinksNeverFollowed", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				OutputFiles: []string{"*.txt", "**"},
				Commands:    []string{"ln -s /etc/passwd passwd.txt", "ln -s /etc {{ outputDir }}/etc", "echo real > real.txt"},
			})
			require.NoError(t, out.Err)
			got := readOutputs(t, out.Result)
			assert.Equal(t, map[string]string{"real.txt": "real\n"}, got)
		}},
		{"NothingAskedNothingCollected", func(t *testing.T, s *Suite) {
			out := s.Script(t, "echo x > stray.txt")
			assert.Empty(t, out.Result.OutputFiles)
		}},
	}
}

func logCases() []Case {
	return []Case{
		{"SecretsMasked", func(t *testing.T, s *Suite) {
			const secret = "hunter2-lading-Secret"
			out := s.Exec(t, t.Context(), runner.Task{
				Secrets: map[string]string{"TOKEN": secret},
				Commands: []string{
					`echo "token=$TOKEN"`,
					`printf 'split: hunter2-la'; printf 'ding-Secret\n'`,
					`echo "$TOKEN" >&2`,
					`printf '%s' "$TOKEN" | base64`,
					`echo "b64url: $(printf '%s' "$TOKEN" | base64 | tr '+/' '-_')"`,
					`echo '::{"outputs":{"leak":"'"$TOKEN"'"}}::'`,
					`[ ${#TOKEN} -eq 21 ] && echo length-ok`,
				},
			})
			require.NoError(t, out.Err)
			all := out.Stdout + out.Stderr
			for _, l := range out.Lines {
				all += l.Text
			}
			for _, v := range out.Result.Outputs {
				all += fmt.Sprint(v)
			}
			assert.NotContains(t, all, secret)
			assert.NotContains(t, all, "aHVudGVyMi1sYWRpbmctU2VjcmV0", "base64 form")
			assert.Contains(t, out.Texts(runner.Stdout), "token=****")
			assert.Contains(t, out.Texts(runner.Stdout), "split: ****")
			assert.Contains(t, out.Texts(runner.Stdout), "length-ok", "the script sees the real value")
			assert.Equal(t, "****", out.Result.Outputs["leak"])
			assert.Equal(t, "****\n", out.Stderr)
		}},
		{"HelloWorld", func(t *testing.T, s *Suite) {
			before := time.Now()
			out := s.Script(t, "echo 'Hello World'")
			res := out.Result
			assert.Equal(t, 0, res.ExitCode)
			assert.Equal(t, []string{"Hello World"}, out.Texts(runner.Stdout))
			assert.Equal(t, 1, res.StdoutLines)
			assert.Zero(t, res.StderrLines)
			assert.False(t, res.Started.Before(before.Add(-time.Second)), "Started is set")
			assert.False(t, res.Finished.Before(res.Started), "Finished is not before Started")
			for _, l := range out.Lines {
				assert.False(t, l.Time.IsZero(), "lines carry a time")
			}
		}},
		{"ExitCodeWithStderrLine", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"echo boom >&2", "exit 66"}})
			requireExit(t, out, 66)
			assert.Equal(t, 1, out.Result.StderrLines)
			assert.Equal(t, []string{"boom"}, out.Texts(runner.Stderr))
			assert.Contains(t, out.Err.Error(), "66")
		}},
		{"UnknownCommandIs127", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"no-such-command-lading"}})
			requireExit(t, out, 127)
		}},
		{"LinesCountedPerStream", func(t *testing.T, s *Suite) {
			out := s.Script(t, "echo o1", "echo e1 >&2", "echo o2", "echo e2 >&2")
			assert.Equal(t, 2, out.Result.StdoutLines)
			assert.Equal(t, 2, out.Result.StderrLines)
			assert.Equal(t, []string{"o1", "o2"}, out.Texts(runner.Stdout))
			assert.Equal(t, []string{"e1", "e2"}, out.Texts(runner.Stderr))
			assert.Equal(t, "o1\no2\n", out.Stdout)
			assert.Equal(t, "e1\ne2\n", out.Stderr)
		}},
		{"ManyLinesInOrder", func(t *testing.T, s *Suite) {
			out := s.Script(t, "seq 1 2000")
			got := out.Texts(runner.Stdout)
			require.Len(t, got, 2000)
			for i, l := range got {
				if l != strconv.Itoa(i+1) {
					t.Fatalf("line %d is %q", i+1, l)
				}
			}
			assert.Equal(t, 2000, out.Result.StdoutLines)
		}},
		{"LongLinesWhole", func(t *testing.T, s *Suite) {
			out := s.Script(t,
				"head -c 10000 /dev/zero | tr '\\0' a; echo",
				"head -c 100000 /dev/zero | tr '\\0' b; echo")
			got := out.Texts(runner.Stdout)
			require.Len(t, got, 2)
			assert.Equal(t, strings.Repeat("a", 10000), got[0])
			assert.Equal(t, strings.Repeat("b", 100000), got[1])
		}},
		{"CarriageReturnSegments", func(t *testing.T, s *Suite) {
			out := s.Script(t, `printf 'a\rb\rc\n'`)
			assert.Equal(t, []string{"a", "b", "c"}, out.Texts(runner.Stdout))
			assert.Equal(t, "a\rb\rc\n", out.Stdout, "writers get the bytes unchanged")
		}},
		{"LastLineWithoutNewline", func(t *testing.T, s *Suite) {
			out := s.Script(t, "echo first", "printf 'no newline'")
			assert.Equal(t, []string{"first", "no newline"}, out.Texts(runner.Stdout))
			assert.Equal(t, "first\nno newline", out.Stdout)
		}},
		{"WritersGetBytesUnchanged", func(t *testing.T, s *Suite) {
			out := s.Script(t, `printf 'x\r\ny\n'`, `printf 'e\r\n' >&2`)
			assert.Equal(t, "x\r\ny\n", out.Stdout)
			assert.Equal(t, "e\r\n", out.Stderr)
			assert.Equal(t, []string{"x", "y"}, out.Texts(runner.Stdout))
		}},
		{"Outputs", func(t *testing.T, s *Suite) {
			out := s.Script(t,
				`echo '::{"outputs":{"greeting":"hi","n":3,"nothing":null}}::'`,
				`echo '::{"outputs":{"greeting":"hello"}}::'`)
			o := out.Result.Outputs
			assert.Equal(t, "hello", o["greeting"], "last value wins")
			assert.Equal(t, float64(3), o["n"])
			v, ok := o["nothing"]
			assert.True(t, ok, "null is kept")
			assert.Nil(t, v)
			assert.Equal(t, 2, out.Result.StdoutLines, "outputs lines are counted")
		}},
		{"OutputsKeptOnFailure", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{
				`echo '::{"outputs":{"before":"failure"}}::'`, "exit 1"}})
			requireExit(t, out, 1)
			assert.Equal(t, "failure", out.Result.Outputs["before"])
		}},
		{"Metrics", func(t *testing.T, s *Suite) {
			out := s.Script(t, `echo '::{"metrics":[{"name":"rows","type":"counter","value":3,"tags":{"table":"t"}}]}::'`)
			assert.Equal(t, []runner.Metric{{Name: "rows", Type: "counter", Value: 3, Tags: map[string]string{"table": "t"}}}, out.Result.Metrics)
		}},
		{"LogEntriesReEmitted", func(t *testing.T, s *Suite) {
			out := s.Script(t, `echo '::{"logs":[{"level":"WARN","message":"careful"}]}::'`)
			var logged []runner.Line
			for _, l := range out.Lines {
				if l.Level != "" {
					logged = append(logged, l)
				}
			}
			require.Len(t, logged, 1)
			assert.Equal(t, "WARN", logged[0].Level)
			assert.Equal(t, "careful", logged[0].Text)
		}},
		{"EnvVisible", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				Env:      map[string]string{"NAME": "lading", "WITH_SPACE": "a b", "QUOTES": `it's "q"`},
				Commands: []string{`echo "$NAME"`, `echo "$WITH_SPACE"`, `echo "$QUOTES"`},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"lading", "a b", `it's "q"`}, out.Texts(runner.Stdout))
		}},
		{"CommandsShareOneScript", func(t *testing.T, s *Suite) {
			out := s.Script(t, "A=1", "cd /tmp", `echo "$A $(pwd)"`)
			assert.Equal(t, []string{"1 /tmp"}, out.Texts(runner.Stdout))
		}},
		{"Interpreter", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Interpreter: []string{"/bin/sh", "-c"}, Commands: []string{"echo explicit"}})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"explicit"}, out.Texts(runner.Stdout))

			out = s.Exec(t, t.Context(), runner.Task{Interpreter: []string{"/bin/sh", "-e", "-c"}, Commands: []string{"false", "echo unreachable"}})
			requireExit(t, out, 1)
			assert.Empty(t, out.Texts(runner.Stdout))
		}},
		{"InvalidTask", func(t *testing.T, s *Suite) {
			tests := []struct {
				name  string
				task  runner.Task
				field string
			}{
				{"no image", runner.Task{Image: " ", Commands: []string{"true"}}, "image"},
				{"no commands", runner.Task{}, "commands"},
				{"bad env name", runner.Task{Commands: []string{"true"}, Env: map[string]string{"A=B": "x"}}, "env"},
				{"negative timeout", runner.Task{Commands: []string{"true"}, Timeout: -time.Second}, "timeout"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					out := s.Exec(t, t.Context(), tt.task)
					require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
					var fe *runner.FieldError
					require.ErrorAs(t, out.Err, &fe)
					assert.Equal(t, tt.field, fe.Field)
					assert.Empty(t, out.Lines, "nothing ran")
				})
			}
		}},
		{"Timeout", func(t *testing.T, s *Suite) {
			start := time.Now()
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"echo started", "sleep 30"}, Timeout: 2 * time.Second})
			require.ErrorIs(t, out.Err, runner.ErrTimeout)
			require.ErrorIs(t, out.Err, context.DeadlineExceeded)
			assert.Less(t, time.Since(start), liveness, "the script was stopped")
			var exit *runner.ExitError
			assert.False(t, errors.As(out.Err, &exit), "a stopped script is not reported as a failed one")
		}},
		{"Cancel", func(t *testing.T, s *Suite) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			start := time.Now()
			var once sync.Once
			task := runner.Task{Image: s.cfg.Image, Commands: []string{"echo started", "sleep 30"},
				OnLine: func(runner.Line) { once.Do(func() { time.AfterFunc(300*time.Millisecond, cancel) }) }}
			res, err := s.cfg.New(t).Run(ctx, task)
			require.ErrorIs(t, err, context.Canceled)
			assert.False(t, errors.Is(err, runner.ErrTimeout))
			assert.Less(t, time.Since(start), liveness, "the script was stopped")
			if res != nil {
				assert.Equal(t, 1, res.StdoutLines, "output before the stop is kept")
			}
		}},
		{"Concurrent", func(t *testing.T, s *Suite) {
			r := s.cfg.New(t)
			var wg sync.WaitGroup
			results := make([]*runner.Result, 8)
			errs := make([]error, 8)
			for i := range 8 {
				wg.Go(func() {
					results[i], errs[i] = r.Run(t.Context(), runner.Task{Image: s.cfg.Image,
						Commands: []string{fmt.Sprintf(`echo '::{"outputs":{"i":%d}}::'`, i)}})
				})
			}
			wg.Wait()
			for i := range 8 {
				require.NoError(t, errs[i])
				assert.Equal(t, float64(i), results[i].Outputs["i"], "run %d got its own outputs", i)
			}
		}},
	}
}
