package runnertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// Config describes the runner under test. Fields may be added; the zero
// value of a new field keeps the old behaviour.
type Config struct {
	// Image is the image the cases run in (see the package doc for what it
	// must provide).
	Image string
	// New returns the runner to test. It is called once per case, from the
	// case's goroutine; it may register cleanups on t.
	New func(t *testing.T) runner.Runner
	// Skip maps the names of cases to skip (see [Cases]) to the reason, for
	// runners that cannot do something by design. A name that is not a
	// case fails the suite.
	Skip map[string]string
}

// liveness bounds how long a stopped run may take to return: far below the
// 30 s the stopped scripts would sleep, so a runner that does not stop them
// fails. It is a bound on hanging, not a speed target.
const liveness = 20 * time.Second

// clockSlack is how far Started, Finished and line times may lie outside
// the span of the Run call, for runners that read times from a clock a
// little apart from the test's.
const clockSlack = time.Second

// Case is one conformance case.
type Case struct {
	// Name names the subtest and is the key of [Config.Skip].
	Name string
	// Test runs the case.
	Test func(t *testing.T, s *Suite)
}

// Suite is what a case gets: the configuration and the helpers that run
// tasks with it. It is safe for concurrent use.
type Suite struct {
	cfg Config

	mu   sync.Mutex
	late map[string]int // per test, the runs that delivered output after Run returned
}

// Run runs every case of [Cases] against the runner of cfg, each as a
// parallel subtest of t named after the case.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	require.NotEmpty(t, cfg.Image, "runnertest.Config.Image")
	require.NotNil(t, cfg.New, "runnertest.Config.New")
	cases := Cases()
	known := make(map[string]bool, len(cases))
	for _, c := range cases {
		known[c.Name] = true
	}
	for _, name := range sortedKeys(cfg.Skip) {
		if !known[name] {
			t.Errorf("runnertest.Config.Skip names %q, which is not a case", name)
		}
	}
	s := &Suite{cfg: cfg, late: map[string]int{}}
	// Output delivered after Run returned is looked for once every case
	// has finished, which gives a late delivery the most time to show.
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, name := range sortedKeys(s.late) {
			t.Errorf("%s: Stdout, Stderr or OnLine was called after Run returned, in %d run(s)", name, s.late[name])
		}
	})
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if why, ok := cfg.Skip[c.Name]; ok {
				t.Skip(why)
			}
			t.Parallel()
			c.Test(t, s)
		})
	}
}

// Output is what one run produced and delivered.
type Output struct {
	Result *runner.Result
	Err    error
	Lines  []runner.Line // every line passed to OnLine, in order of delivery
	Stdout string        // the bytes the Stdout writer received
	Stderr string        // the bytes the Stderr writer received
}

// Texts returns the texts of the lines of one stream that the script printed
// (not the re-emitted log entries, of Kind [runner.LineLog]).
func (o *Output) Texts(stream runner.Stream) []string {
	var out []string
	for _, l := range o.Lines {
		if l.Stream == stream && l.Kind != runner.LineLog {
			out = append(out, l.Text)
		}
	}
	return out
}

// Exec runs task with a fresh runner from [Config.New] and gathers what it
// delivered. An empty task.Image becomes [Config.Image]; Stdout, Stderr and
// OnLine are replaced by recorders. It checks the delivery contract (no
// overlapping calls, none after Run returned) and removes a working
// directory the runner created.
func (s *Suite) Exec(t *testing.T, ctx context.Context, task runner.Task) *Output {
	t.Helper()
	if task.Image == "" {
		task.Image = s.cfg.Image
	}
	return s.execWith(t, s.cfg.New(t), ctx, task)
}

// Script runs commands with a fresh runner and requires success.
func (s *Suite) Script(t *testing.T, commands ...string) *Output {
	t.Helper()
	out := s.Exec(t, t.Context(), runner.Task{Commands: commands})
	require.NoError(t, out.Err)
	require.NotNil(t, out.Result)
	return out
}

// execWith runs task as it is with r. It only asserts (never requires), so
// it may be called from several goroutines.
func (s *Suite) execWith(t *testing.T, r runner.Runner, ctx context.Context, task runner.Task) *Output {
	t.Helper()
	rec := &recorder{suite: s, test: t.Name()}
	rec.attach(&task)
	res, err := r.Run(ctx, task)
	out := rec.finish(t)
	out.Result, out.Err = res, err
	if task.WorkingDir == "" && res != nil && res.WorkingDir != "" {
		dir := res.WorkingDir
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	return out
}

// recorder gathers what one run delivers through Stdout, Stderr and OnLine.
// It is safe for concurrent use, and notes the breaches of [runner.Task]'s
// contract it sees: calls that overlap, and calls after Run returned (which
// it reports to the suite).
type recorder struct {
	suite *Suite
	test  string // the name of the test that ran the task

	busy     atomic.Int32
	overlap  atomic.Bool
	returned atomic.Bool
	late     atomic.Bool

	mu     sync.Mutex
	lines  []runner.Line
	stdout bytes.Buffer
	stderr bytes.Buffer
}

// attach points task's writers and callback at r, keeping a callback the
// task already had (called after r records the line).
func (r *recorder) attach(task *runner.Task) {
	next := task.OnLine
	task.Stdout = recorderWriter{r, &r.stdout}
	task.Stderr = recorderWriter{r, &r.stderr}
	task.OnLine = func(l runner.Line) {
		r.record(func() { r.lines = append(r.lines, l) })
		if next != nil {
			next(l)
		}
	}
}

// record runs f under the lock, noting an overlapping or late call.
func (r *recorder) record(f func()) {
	if r.busy.Add(1) != 1 {
		r.overlap.Store(true)
	}
	defer r.busy.Add(-1)
	runtime.Gosched() // widen the window in which an overlapping call shows
	if r.returned.Load() && !r.late.Swap(true) {
		r.suite.mu.Lock()
		r.suite.late[r.test]++
		r.suite.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// finish is called when Run has returned: it checks that no calls
// overlapped and returns what was delivered. Calls from then on are late;
// the suite reports them once every case has finished.
func (r *recorder) finish(t *testing.T) *Output {
	t.Helper()
	r.returned.Store(true)
	assert.False(t, r.overlap.Load(), "calls to Stdout, Stderr and OnLine of one run overlapped")
	r.mu.Lock()
	defer r.mu.Unlock()
	return &Output{
		Lines:  append([]runner.Line(nil), r.lines...),
		Stdout: r.stdout.String(),
		Stderr: r.stderr.String(),
	}
}

// recorderWriter is the Stdout or Stderr writer of a recorder.
type recorderWriter struct {
	r   *recorder
	buf *bytes.Buffer
}

func (w recorderWriter) Write(p []byte) (int, error) {
	w.r.record(func() { w.buf.Write(p) })
	return len(p), nil
}

// text is an input file's content.
type text string

func (s text) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(s))), nil }

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

// requireInvalid checks that the run was refused as an invalid task naming
// field, before anything ran.
func requireInvalid(t *testing.T, out *Output, field string) {
	t.Helper()
	require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
	var fe *runner.FieldError
	require.ErrorAs(t, out.Err, &fe)
	assert.Equal(t, field, fe.Field)
	assert.Empty(t, out.Lines, "nothing ran")
}

// assertWithin checks that tm lies in [from, to], give or take clockSlack.
func assertWithin(t *testing.T, what string, tm, from, to time.Time) {
	t.Helper()
	assert.False(t, tm.IsZero(), "%s is set", what)
	assert.False(t, tm.Before(from.Add(-clockSlack)), "%s %v is not before Run was called (%v)", what, tm, from)
	assert.False(t, tm.After(to.Add(clockSlack)), "%s %v is not after Run returned (%v)", what, tm, to)
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Cases returns the conformance cases, in the order [Run] starts them.
// Their names are stable: they are the keys of [Config.Skip].
func Cases() []Case {
	cases := append(runCases(), logCases()...)
	cases = append(cases, outputCases()...)
	cases = append(cases, secretCases()...)
	cases = append(cases, outputsMoreCases()...)
	cases = append(cases, templateCases()...)
	cases = append(cases, modeCases()...)
	cases = append(cases, producedCases()...)
	cases = append(cases, lineCases()...)
	cases = append(cases, scriptCases()...)
	cases = append(cases, scriptTimeoutCases()...)
	return append(cases, fileCases()...)
}

// runCases: exit codes, the script, the environment, validation, stopping
// and concurrency.
func runCases() []Case {
	return []Case{
		{"HelloWorld", func(t *testing.T, s *Suite) {
			before := time.Now()
			out := s.Script(t, "echo 'Hello World'")
			after := time.Now()
			res := out.Result
			assert.Equal(t, 0, res.ExitCode)
			assert.Equal(t, []string{"Hello World"}, out.Texts(runner.Stdout))
			assert.Empty(t, out.Texts(runner.Stderr))
			assert.Equal(t, "Hello World\n", out.Stdout)
			assert.Equal(t, 1, res.StdoutLines)
			assert.Zero(t, res.StderrLines)
			assertWithin(t, "Started", res.Started, before, after)
			assertWithin(t, "Finished", res.Finished, before, after)
			assert.False(t, res.Finished.Before(res.Started), "Finished %v is not before Started %v", res.Finished, res.Started)
			for _, l := range out.Lines {
				assertWithin(t, "Line.Time", l.Time, before, after)
			}
		}},
		{"ExitCodeWithStderrLine", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"echo boom >&2", "exit 66"}})
			requireExit(t, out, 66)
			assert.Equal(t, 1, out.Result.StderrLines)
			assert.Zero(t, out.Result.StdoutLines)
			assert.Equal(t, []string{"boom"}, out.Texts(runner.Stderr))
			assert.Equal(t, "boom\n", out.Stderr)
			assert.Contains(t, out.Err.Error(), "66")
		}},
		{"UnknownCommandIs127", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"no-such-command-lading"}})
			requireExit(t, out, 127)
			assert.Positive(t, out.Result.StderrLines, "the shell says what is missing")
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
			assert.Empty(t, out.Texts(runner.Stdout), "-e stopped the script")
			assert.Empty(t, out.Stdout)
		}},
		{"InvalidTask", func(t *testing.T, s *Suite) {
			valid := func(edit func(*runner.Task)) runner.Task {
				task := runner.Task{Image: s.cfg.Image, Commands: []string{"echo ran"}}
				edit(&task)
				return task
			}
			tests := []struct {
				name  string
				task  runner.Task
				field string
			}{
				{"empty image", valid(func(task *runner.Task) { task.Image = "" }), "image"},
				{"blank image", valid(func(task *runner.Task) { task.Image = " " }), "image"},
				{"no commands", valid(func(task *runner.Task) { task.Commands = nil }), "commands"},
				{"empty commands", valid(func(task *runner.Task) { task.Commands = []string{} }), "commands"},
				{"blank interpreter", valid(func(task *runner.Task) { task.Interpreter = []string{" ", "-c"} }), "interpreter[0]"},
				{"bad env name", valid(func(task *runner.Task) { task.Env = map[string]string{"A=B": "x"} }), "env"},
				{"secret also in env", valid(func(task *runner.Task) {
					task.Env, task.Secrets = map[string]string{"TOKEN": "a"}, map[string]string{"TOKEN": "b"}
				}), "secrets"},
				{"negative timeout", valid(func(task *runner.Task) { task.Timeout = -time.Second }), "timeout"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					out := s.execWith(t, s.cfg.New(t), t.Context(), tt.task)
					requireInvalid(t, out, tt.field)
				})
			}
		}},
		{"Timeout", func(t *testing.T, s *Suite) {
			start := time.Now()
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"echo started", "sleep 30"}, Timeout: 2 * time.Second})
			elapsed := time.Since(start)
			require.ErrorIs(t, out.Err, runner.ErrTimeout)
			require.ErrorIs(t, out.Err, context.DeadlineExceeded)
			assert.NotErrorIs(t, out.Err, context.Canceled, "a timeout is not a cancellation")
			var exit *runner.ExitError
			assert.False(t, errors.As(out.Err, &exit), "a stopped script is not reported as a failed one")
			assert.Less(t, elapsed, liveness, "the script was stopped")
		}},
		{"Cancel", func(t *testing.T, s *Suite) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var once sync.Once
			task := runner.Task{Image: s.cfg.Image, Commands: []string{"echo started", "sleep 30"},
				// Cancel once the script is known to run.
				OnLine: func(runner.Line) { once.Do(func() { time.AfterFunc(500*time.Millisecond, cancel) }) }}
			start := time.Now()
			out := s.execWith(t, s.cfg.New(t), ctx, task)
			elapsed := time.Since(start)
			require.ErrorIs(t, out.Err, context.Canceled)
			assert.NotErrorIs(t, out.Err, runner.ErrTimeout)
			assert.NotErrorIs(t, out.Err, context.DeadlineExceeded)
			var exit *runner.ExitError
			assert.False(t, errors.As(out.Err, &exit), "a stopped script is not reported as a failed one")
			assert.Less(t, elapsed, liveness, "the script was stopped")
			assert.Equal(t, []string{"started"}, out.Texts(runner.Stdout), "output before the stop is delivered")
			if assert.NotNil(t, out.Result, "the script started, so Run returns its Result") {
				assert.Equal(t, 1, out.Result.StdoutLines, "output before the stop is counted")
			}
		}},
		{"Concurrent", func(t *testing.T, s *Suite) {
			const n = 8
			r := s.cfg.New(t)
			outs := make([]*Output, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					outs[i] = s.execWith(t, r, t.Context(), runner.Task{Image: s.cfg.Image, Commands: []string{
						fmt.Sprintf("echo 'task %d'", i),
						fmt.Sprintf(`echo '::{"outputs":{"i":%d}}::'`, i),
					}})
				})
			}
			wg.Wait()
			for i, out := range outs {
				require.NoError(t, out.Err, "run %d", i)
				require.NotNil(t, out.Result, "run %d", i)
				assert.Equal(t, []string{fmt.Sprintf("task %d", i), fmt.Sprintf(`::{"outputs":{"i":%d}}::`, i)},
					out.Texts(runner.Stdout), "run %d got its own lines", i)
				assert.Equal(t, map[string]any{"i": int64(i)}, out.Result.Outputs, "run %d got its own outputs", i)
				assert.Equal(t, 2, out.Result.StdoutLines, "run %d", i)
			}
		}},
	}
}

// logCases: splitting, counting and passing on the output.
func logCases() []Case {
	return []Case{
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
			// 100,000 characters span several of Docker's 16 KiB partial
			// log messages.
			out := s.Script(t,
				"head -c 10000 /dev/zero | tr '\\0' a; echo",
				"head -c 100000 /dev/zero | tr '\\0' b; echo")
			a, b := strings.Repeat("a", 10000), strings.Repeat("b", 100000)
			got := out.Texts(runner.Stdout)
			require.Len(t, got, 2)
			assert.True(t, got[0] == a, "the 10,000-character line is whole (got %d characters)", len(got[0]))
			assert.True(t, got[1] == b, "the 100,000-character line is whole (got %d characters)", len(got[1]))
			assert.Equal(t, 2, out.Result.StdoutLines)
			assert.True(t, out.Stdout == a+"\n"+b+"\n", "the Stdout writer got the bytes (%d of %d)", len(out.Stdout), len(a)+len(b)+2)
		}},
		{"CarriageReturnSegments", func(t *testing.T, s *Suite) {
			out := s.Script(t, `printf 'a\rb\rc\n'`)
			assert.Equal(t, []string{"a", "b", "c"}, out.Texts(runner.Stdout))
			assert.Equal(t, 3, out.Result.StdoutLines)
			assert.Equal(t, "a\rb\rc\n", out.Stdout, "writers get the bytes unchanged")
		}},
		{"LastLineWithoutNewline", func(t *testing.T, s *Suite) {
			out := s.Script(t, "printf 'no newline'", "printf 'nor here' >&2")
			assert.Equal(t, []string{"no newline"}, out.Texts(runner.Stdout))
			assert.Equal(t, []string{"nor here"}, out.Texts(runner.Stderr))
			assert.Equal(t, "no newline", out.Stdout)
			assert.Equal(t, "nor here", out.Stderr)
			assert.Equal(t, 1, out.Result.StdoutLines)
			assert.Equal(t, 1, out.Result.StderrLines)
		}},
		{"WritersGetBytesUnchanged", func(t *testing.T, s *Suite) {
			out := s.Script(t, `printf 'x\r\ny\n'`, `printf 'e\r\n' >&2`)
			assert.Equal(t, "x\r\ny\n", out.Stdout)
			assert.Equal(t, "e\r\n", out.Stderr)
			assert.Equal(t, []string{"x", "y"}, out.Texts(runner.Stdout), `"\r\n" ends one line`)
			assert.Equal(t, []string{"e"}, out.Texts(runner.Stderr))
		}},
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
	}
}

// outputCases: Kestra's ::{...}:: lines.
func outputCases() []Case {
	return []Case{
		{"Outputs", func(t *testing.T, s *Suite) {
			out := s.Script(t,
				`echo '::{"outputs":{"greeting":"hi","n":3,"nothing":null}}::'`,
				`echo '::{"outputs":{"greeting":"hello"}}::'`)
			o := out.Result.Outputs
			assert.Equal(t, "hello", o["greeting"], "last value wins")
			assert.Equal(t, int64(3), o["n"], "an integer stays an integer")
			v, ok := o["nothing"]
			assert.True(t, ok, "null is kept")
			assert.Nil(t, v)
			assert.Len(t, o, 3)
			assert.Equal(t, 2, out.Result.StdoutLines, "outputs lines are counted")
			assert.Len(t, out.Texts(runner.Stdout), 2, "outputs lines are passed on")
		}},
		{"OutputsKeptOnFailure", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{
				`echo '::{"outputs":{"before":"failure"}}::'`, "exit 1"}})
			requireExit(t, out, 1)
			assert.Equal(t, "failure", out.Result.Outputs["before"])
		}},
		{"Metrics", func(t *testing.T, s *Suite) {
			out := s.Script(t,
				`echo '::{"metrics":[{"name":"rows","type":"counter","value":3,"tags":{"table":"t"}}]}::'`,
				`echo '::{"metrics":[{"name":"load","type":"timer","value":1.5}]}::'`)
			assert.Equal(t, []runner.Metric{
				{Name: "rows", Type: "counter", Value: 3, Tags: map[string]string{"table": "t"}},
				{Name: "load", Type: "timer", Value: 1.5},
			}, out.Result.Metrics)
		}},
		{"LogEntriesReEmitted", func(t *testing.T, s *Suite) {
			out := s.Script(t, `echo '::{"logs":[{"level":"WARN","message":"careful"}]}::'`)
			var logged []runner.Line
			for _, l := range out.Lines {
				if l.Kind == runner.LineLog {
					logged = append(logged, l)
				}
			}
			require.Len(t, logged, 1)
			assert.Equal(t, slog.LevelWarn, logged[0].Level)
			assert.Equal(t, "careful", logged[0].Text)
			assert.Equal(t, runner.Stdout, logged[0].Stream)
		}},
		{"InvalidOutputsLineWarns", func(t *testing.T, s *Suite) {
			out := s.Script(t, `echo '::{"outputs": not json}::'`, `echo '::{"outputs":{"ok":true}}::'`)
			assert.NotEmpty(t, out.Result.Warnings, "the bad line is noted")
			assert.Equal(t, map[string]any{"ok": true}, out.Result.Outputs, "the good line still counts")
			assert.Equal(t, []string{`::{"outputs": not json}::`, `::{"outputs":{"ok":true}}::`}, out.Texts(runner.Stdout), "both lines are passed on")
		}},
	}
}

// fileCases: input and output files, working and output directories,
// templates.
func fileCases() []Case {
	return []Case{
		{"InputAndOutputFiles", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles:  map[string]runner.Source{"hello.txt": text("Hello World")},
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
			assert.Equal(t, []string{"Hello World", `::{"outputs":{"logOutput":"Hello World"}}::`}, out.Texts(runner.Stdout))
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
				InputFiles:  map[string]runner.Source{"test/application.yml": text("app: 1\n")},
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
			requireInvalid(t, out, "commands[1]")
			assert.Contains(t, out.Err.Error(), "workDir")
		}},
		{"InputOutsideWorkingDirRefused", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{InputFiles: map[string]runner.Source{"../escape.txt": text("x")}, Commands: []string{"echo ran"}})
			requireInvalid(t, out, "inputFiles")
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.Equal(t, "../escape.txt", fe.Value)
		}},
		{"SymlinksNeverFollowed", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				OutputFiles: []string{"*.txt", "**"},
				Commands:    []string{"ln -s /etc/passwd passwd.txt", "ln -s /etc {{ outputDir }}/etc", "echo real > real.txt"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, map[string]string{"real.txt": "real\n"}, readOutputs(t, out.Result))
		}},
		{"NothingAskedNothingCollected", func(t *testing.T, s *Suite) {
			out := s.Script(t, "echo x > stray.txt")
			assert.Empty(t, out.Result.OutputFiles)
		}},
	}
}
