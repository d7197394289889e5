package runner

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lading-dev/lading/internal/mask"
)

// Runner runs a [Task] to completion and reports its [Result].
//
// Implementations must be safe for concurrent use: a workflow engine calls Run
// from many goroutines with one Runner.
//
// Run returns a non-nil *Result whenever the task's process started, even
// when it also returns an error. A process that ran and exited non-zero
// yields the populated Result and an [*ExitError]; every other error
// (invalid task, image not found, engine unreachable, timeout, ...) is an
// infrastructure failure and matches one of the package's sentinels where one
// fits.
type Runner interface {
	Run(ctx context.Context, task Task) (*Result, error)
}

var defaultInterpreter = []string{"/bin/sh", "-c"}

// DefaultInterpreter returns the interpreter used when [Task.Interpreter] is
// empty: /bin/sh -c. The returned slice is a fresh copy.
func DefaultInterpreter() []string {
	return append([]string(nil), defaultInterpreter...)
}

// Task describes one run of a script in a container.
//
// A Task is a plain value: it is read, never modified, by [Runner.Run], and
// may be reused for several runs. The writers and the callback it holds are
// called from one goroutine at a time for a given run.
type Task struct {
	// ID optionally names the task for the engine's labels and the caller's
	// logs (for example a workflow engine's task-run id). It is not required
	// to be unique.
	ID string

	// Image is the container image reference, for example "busybox:1.36".
	Image string

	// Interpreter is the command that runs the script; the script is passed
	// as its last argument. Empty means /bin/sh -c.
	Interpreter []string

	// Commands are joined with newlines into one script (see [Task.Script]).
	Commands []string

	// BeforeCommands run before the commands, in the same script and so
	// the same interpreter and shell (Kestra's beforeCommands), for
	// example "pip install -r requirements.txt". They are templates like
	// the commands, named beforeCommands[i] in errors.
	BeforeCommands []string

	// DisableFailFast turns off Kestra's failFast: by default a script run
	// by a shell begins with the line "set -e", as Kestra's begins, so the
	// first command that fails (a before command included) ends the
	// script with its exit status: ["unknown", "echo 1"] exits 127 without
	// printing 1. With DisableFailFast every command runs and the last
	// one's status is the script's. The line is added only when
	// [Task.FailFast] says the interpreter is a shell; other interpreters
	// (python -c, node -e, ...) get the script as written, where Kestra
	// would add "set -e" for every interpreter.
	DisableFailFast bool

	// Env holds environment variables for the script, on top of the image's.
	Env map[string]string

	// Secrets are environment variables for the script whose values are
	// masked ("****") in everything the runner hands back: lines, the bytes
	// passed to Stdout and Stderr, outputs, metrics, warnings and errors
	// (those about an invalid task included), also when split across
	// writes, spread over lines, or base64- or URL-encoded. Their values
	// are not templates. A name may not be in both Env and Secrets.
	//
	// A value must be at least [MinSecretLength] characters long (or
	// empty, which masks nothing): masking a shorter one would mangle
	// ordinary text in every message ("x" would turn "exit code 3" into
	// "e****it code 3"), as GitLab refuses to mask values under 8
	// characters. A short value that need not stay hidden goes in Env. A
	// value may not contain a NUL byte, which no environment variable can
	// hold.
	Secrets map[string]string

	// WorkingDir is the host directory that holds what goes in and what
	// comes back. Empty means a fresh temporary directory, which the caller
	// owns (it is in [Result.WorkingDir]) and removes when done. Two runs
	// may share one working directory: the second sees what the first
	// collected. The container sees it at the same absolute path (as in
	// Kestra), so {{ workingDir }}, WORKING_DIR and a host path rendered
	// into the script name the same files inside and out; a system
	// directory of the container ("/", "/etc", "/tmp", anything under
	// /proc, /sys or /dev) is refused with [ErrInvalidTask].
	WorkingDir string

	// InputFiles maps paths relative to the working directory ("data.csv",
	// "conf/app.yml") to their content; package files has the usual
	// sources. Nested directories are created. A [TemplateSource]
	// (files.Template) is rendered first; no other source is.
	InputFiles map[string]Source

	// OutputFiles lists globs, relative to the working directory, of files
	// to bring back: "*.txt" matches the top level only, "out/**" recurses,
	// "{a,b}.csv" and "[ab].txt" work. Only regular files are collected;
	// symbolic links are never followed. Everything the script writes under
	// the output directory comes back as well.
	OutputFiles []string

	// DisableOutputDir turns the output directory off: no OUTPUT_DIR
	// variable and no {{ outputDir }} (Kestra's outputDirEnabled: false).
	DisableOutputDir bool

	// Vars are template variables for the commands, the before commands,
	// the env values, the output globs and the input files that are
	// templates ([TemplateSource]), e.g. {"inputs": {"file": "data.csv"}}
	// for {{ inputs.file }}, next to the built-in {{ workingDir }} and
	// {{ outputDir }}. An undefined variable is an error.
	Vars map[string]any

	// DisableTemplates turns template rendering off for the whole task:
	// the commands, before commands, env values and output globs reach the
	// container byte for byte, so a CI script's own braces
	// (docker inspect --format "{{ .State.Status }}", an env value
	// "{{.ID}}") need no {% verbatim %}; an input file that is a
	// [TemplateSource] is staged as its template text. Vars are then
	// unused. There is no switch per field: a task that needs templates in
	// some strings and literal braces in others keeps rendering on and
	// writes those braces inside {% verbatim %}...{% endverbatim %} or as
	// {{ "{{" }}. Kestra has no such switch (Pebble renders every
	// property); it is for host programs whose tasks are not Kestra flows.
	DisableTemplates bool

	// Stdout and Stderr, when set, receive what the script writes to each
	// stream, line by line and unchanged (line terminators included), lines
	// carrying outputs (::{...}::) included.
	Stdout io.Writer
	Stderr io.Writer

	// OnLine, when set, is called for each line of output, in the order the
	// script wrote it within each stream. Calls for one run never overlap; a
	// slow callback slows the reading of the container's output.
	OnLine func(Line)

	// OnEvent, when set, is called as the run moves through its stages
	// (pulling, creating, running, stopping, cleaning, ...), for a host
	// program to show progress. It is called from the goroutine that called
	// Run, so it must not block for long.
	OnEvent func(Event)

	// OnPull, when set, receives the progress of an image pull, one call
	// per progress message of the engine, from the goroutine that called
	// Run.
	OnPull func(PullProgress)

	// OnStats, when set, receives resource usage samples of the running
	// container, at most once per runner-defined interval (the docker
	// runner: Config.StatsInterval, 1 s by default when OnStats is set).
	OnStats func(Stats)

	// Timeout bounds the whole run (pull, create, run, collection). Zero
	// means no limit beyond ctx. When it is reached, the container is
	// stopped and Run returns an error matching [ErrTimeout] and
	// [context.DeadlineExceeded].
	Timeout time.Duration

	// ScriptTimeout bounds the script alone (what Kestra users read as a
	// task's timeout): it starts when the container starts, so the pull
	// and the create do not count. Zero means no limit of its own. When
	// it is reached the container is stopped as for Timeout, the output
	// files are collected, and Run returns an error matching [ErrTimeout]
	// and [context.DeadlineExceeded] whose [*TimeoutError] has Limit
	// "scriptTimeout". With both set, the first reached stops the run.
	// Runners that cannot tell the script's start apply it as they
	// document.
	ScriptTimeout time.Duration
}

// Script returns the script the interpreter runs, as Kestra builds it: the
// line "set -e" when [Task.FailFast] holds, then the before commands, then
// the commands, joined with newlines. The commands are as written; a runner
// renders the templates in them first.
func (t Task) Script() string {
	return strings.Join(ScriptLines(t.FailFast(), t.BeforeCommands, t.Commands), "\n")
}

// ScriptLines returns the lines of a script as [Task.Script] joins them,
// for a runner that renders the before commands and the commands first:
// "set -e" when failFast, then before, then commands.
func ScriptLines(failFast bool, before, commands []string) []string {
	lines := make([]string, 0, 1+len(before)+len(commands))
	if failFast {
		lines = append(lines, FailFastLine)
	}
	lines = append(lines, before...)
	return append(lines, commands...)
}

// FailFastLine is the line a script run by a shell begins with unless
// [Task.DisableFailFast] is set: Kestra's exact line (set -e, without
// pipefail: in a | b only b's status counts, as in Kestra).
const FailFastLine = "set -e"

// isShell reports whether prog's base name is one of the shells
// [Task.FailFast] knows.
func isShell(prog string) bool {
	switch path.Base(prog) {
	case "sh", "bash", "ash", "dash", "zsh", "ksh", "mksh":
		return true
	}
	return false
}

// FailFast reports whether the script begins with [FailFastLine]: unless
// [Task.DisableFailFast] is set, when the interpreter is a shell that takes
// the script as its -c argument. That is the default /bin/sh -c, and an
// interpreter whose program's base name is sh, bash, ash, dash, zsh, ksh or
// mksh (also behind env or busybox: "/usr/bin/env bash -c", "busybox sh -c")
// and whose last argument is -c or a cluster of short options ending in c
// ("-ec", "-lc"). Any other interpreter (python -c, node -e, sh with a
// script file) gets the script as written.
func (t Task) FailFast() bool {
	if t.DisableFailFast {
		return false
	}
	interp := t.Interpreter
	if len(interp) == 0 {
		interp = defaultInterpreter
	}
	prog := 0
	if base := path.Base(interp[0]); (base == "env" || base == "busybox") && len(interp) > 1 {
		prog = 1
	}
	if !isShell(interp[prog]) || len(interp) < prog+2 {
		return false
	}
	return shortOptionsEndingInC.MatchString(interp[len(interp)-1])
}

// shortOptionsEndingInC matches -c and clusters such as -ec and -lc.
var shortOptionsEndingInC = regexp.MustCompile(`^-[a-zA-Z]*c$`)

// Command returns the full command line: the interpreter followed by the
// script.
func (t Task) Command() []string {
	interp := t.Interpreter
	if len(interp) == 0 {
		interp = defaultInterpreter
	}
	cmd := make([]string, 0, len(interp)+1)
	cmd = append(cmd, interp...)
	return append(cmd, t.Script())
}

// MinSecretLength is the shortest non-empty [Task.Secrets] value, in
// characters (Unicode code points).
const MinSecretLength = 8

// Validate reports the first problem with the task as a [*FieldError] that
// matches [ErrInvalidTask]. Secrets are checked first, and an error about a
// secret names it ("secrets.TOKEN") without its value. Errors about other
// fields quote their value as written, with the task's secrets masked in
// it, as in everything a runner hands back: an env name or an image that
// holds a secret by accident does not print it.
func (t Task) Validate() error {
	err := t.validate()
	fe, ok := err.(*FieldError)
	if !ok || len(t.Secrets) == 0 {
		return err
	}
	values := make([]string, 0, len(t.Secrets))
	for _, v := range t.Secrets {
		if utf8.RuneCountInString(v) >= MinSecretLength {
			values = append(values, v)
		}
	}
	m := mask.New(values...)
	return &FieldError{Field: m.String(fe.Field), Value: m.String(fe.Value), Problem: m.String(fe.Problem), Err: fe.Err}
}

func (t Task) validate() error {
	for _, k := range slices.Sorted(maps.Keys(t.Secrets)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return invalidTask("secrets", k, "a variable name must be non-empty and contain no '=' or NUL")
		}
		if _, ok := t.Env[k]; ok {
			return invalidTask("secrets", k, "is also in env")
		}
		v := t.Secrets[k]
		if strings.ContainsRune(v, 0) {
			return invalidTask("secrets."+k, "", "must not contain a NUL byte: no environment variable can hold one")
		}
		if n := utf8.RuneCountInString(v); n > 0 && n < MinSecretLength {
			return invalidTask("secrets."+k, "", fmt.Sprintf("must be at least %d characters long to be masked (it has %d; shorter values would mask ordinary text in every message): put a value that need not stay hidden in env, unmasked", MinSecretLength, n))
		}
	}
	if strings.TrimSpace(t.Image) == "" {
		return invalidTask("image", t.Image, "must not be empty")
	}
	if strings.ContainsAny(t.Image, " \t\r\n") {
		return invalidTask("image", t.Image, "must not contain whitespace")
	}
	if len(t.Commands) == 0 {
		return invalidTask("commands", "[]", "at least one command is required")
	}
	for i, arg := range t.Interpreter {
		if i == 0 && strings.TrimSpace(arg) == "" {
			return invalidTask("interpreter[0]", arg, "must name a program")
		}
	}
	for k := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return invalidTask("env", k, "a variable name must be non-empty and contain no '=' or NUL")
		}
	}
	for _, name := range []string{"workingDir", "outputDir"} {
		if _, ok := t.Vars[name]; ok {
			return invalidTask("vars", name, "is set by the runner and cannot be overridden")
		}
	}
	for i, g := range t.OutputFiles {
		if strings.TrimSpace(g) == "" {
			return invalidTask(fmt.Sprintf("outputFiles[%d]", i), g, "must not be empty")
		}
	}
	for name, src := range t.InputFiles {
		if src == nil {
			return invalidTask("inputFiles", name, "has no source")
		}
	}
	if t.Timeout < 0 {
		return invalidTask("timeout", t.Timeout.String(), "must not be negative")
	}
	if t.ScriptTimeout < 0 {
		return invalidTask("scriptTimeout", t.ScriptTimeout.String(), "must not be negative")
	}
	return nil
}

func invalidTask(field, value, problem string) error {
	return &FieldError{Field: field, Value: value, Problem: problem, Err: ErrInvalidTask}
}

// Stream says which output stream a line came from.
type Stream uint8

const (
	// Stdout is the script's standard output.
	Stdout Stream = iota + 1
	// Stderr is the script's standard error.
	Stderr
)

// String returns "stdout" or "stderr".
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("Stream(%d)", uint8(s))
}

// Line is one line of output, without its terminator.
//
// Kind and Level say what Kestra would do with the line, so that a host
// program can log a task's output as Kestra logs it in one line of code:
//
//	OnLine: func(l runner.Line) { if l.Logged() { logger.Log(ctx, l.Level, l.Text) } },
//
// lading itself hides nothing: every line, ::{...}:: lines and markers
// included, reaches Stdout, Stderr and OnLine and is counted in
// [Result.StdoutLines] and [Result.StderrLines].
type Line struct {
	Stream Stream
	// Text is the line without its terminator ("\n", "\r\n" or "\r").
	// For a [LineLog] line it is the log entry's message.
	Text string
	// Time is when lading received the line.
	Time time.Time
	// Kind says what the line is: text the script printed, a ::{...}::
	// line, a log entry re-emitted from one, or a log-level marker.
	Kind LineKind
	// Level is the level Kestra logs the line at:
	//
	//   - a [LineText] line: [slog.LevelInfo] on stdout, [slog.LevelError]
	//     on stderr (as Kestra's PluginUtilsService.parseOut does; earlier
	//     releases logged stderr at WARN), and
	//     [slog.LevelDebug] on both streams between a
	//     "##kestra:log:debug##" line and the next "##kestra:log:info##"
	//     line (Kestra's DefaultLogConsumer);
	//   - a [LineLog] line: the entry's level, Kestra's (SLF4J's) TRACE,
	//     DEBUG, INFO, WARN or ERROR, as [LevelTrace], [slog.LevelDebug],
	//     [slog.LevelInfo], [slog.LevelWarn] or [slog.LevelError]. Kestra
	//     reads only these five names, in capitals; lading reads them in
	//     any case, and gives an entry with no level [slog.LevelInfo]
	//     where Kestra drops the entry, and one with another level
	//     [slog.LevelInfo] and a warning in [Result.Warnings] where
	//     Kestra drops the whole ::{...}:: line, outputs included;
	//   - a [LineProtocol] or [LineMarker] line, which Kestra does not log:
	//     the level a LineText line would have on the same stream at the
	//     same point (before the marker takes effect).
	//
	// Level is an [slog.Level], Go's own scale, so that it goes straight
	// to a [*slog.Logger] and levels compare (l.Level >= slog.LevelWarn);
	// its zero value is INFO, the level of ordinary output. Kestra's TRACE,
	// below slog's DEBUG, is [LevelTrace], which slog prints "DEBUG-4".
	Level slog.Level
}

// Logged reports whether Kestra logs the line: it does for [LineText] and
// [LineLog] lines, and not for [LineProtocol] and [LineMarker] lines.
func (l Line) Logged() bool { return l.Kind == LineText || l.Kind == LineLog }

// LevelTrace is Kestra's TRACE level as an [slog.Level], one step (4)
// below [slog.LevelDebug].
const LevelTrace = slog.LevelDebug - 4

// LineKind says what a [Line] is.
type LineKind uint8

const (
	// LineText is a line the script printed that is none of the others.
	LineText LineKind = iota
	// LineProtocol is a ::{...}:: line (outputs, metrics and log entries
	// for the runner, whether its JSON can be read or not). Kestra reads
	// it and does not log it. lading also reads one with spaces around
	// it, which Kestra would log as text.
	LineProtocol
	// LineLog is the message of an entry of a {"logs":[...]} ::{...}::
	// line, re-emitted after that line with the entry's level.
	LineLog
	// LineMarker is a line that is exactly "##kestra:log:debug##" or
	// "##kestra:log:info##": Kestra does not log or count it, and logs
	// the text lines after the first at DEBUG until the second.
	LineMarker
)

// String returns "text", "protocol", "log" or "marker".
func (k LineKind) String() string {
	switch k {
	case LineText:
		return "text"
	case LineProtocol:
		return "protocol"
	case LineLog:
		return "log"
	case LineMarker:
		return "marker"
	}
	return fmt.Sprintf("LineKind(%d)", uint8(k))
}

// Result is what a run produced. Fields are added over time; the zero value
// of a new field keeps the old meaning.
type Result struct {
	// ExitCode is the exit status of the script's process.
	ExitCode int
	// OOMKilled is true when the engine reports the container was killed
	// for exceeding its memory limit.
	OOMKilled bool

	// Outputs merges every {"outputs":{...}} object the script printed as a
	// ::{...}:: line; a later value for a key replaces an earlier one, and a
	// JSON null is kept as a nil value.
	//
	// Values have the types of decoded JSON, at every depth: string, bool,
	// nil, []any, map[string]any, and for numbers an int64 for an integer
	// that fits one (2, 9007199254740993), an [encoding/json.Number]
	// holding the exact text for an integer that does not
	// (123456789012345678901234567890) or a number beyond float64, and a
	// float64 for any other number (1.5, 1e3). Secrets are masked in keys
	// and in values of every type: a number whose text contains a secret
	// becomes that text masked, a string ({"p": 84213579} with the secret
	// 84213579 gives "p": "****").
	//
	// Outputs are bounded: at most 10,000 keys and 1 MiB, counting for each
	// key its length, the length of its value's JSON text as printed, and
	// 4 (about the size of Outputs encoded as JSON). The key that does not
	// fit and every output after it (new keys and replacements alike) are
	// dropped, with a warning naming that key and one counting the values
	// dropped; the lines are still counted and passed on.
	Outputs map[string]any
	// Metrics lists every {"metrics":[...]} entry the script printed, in
	// order, read one by one as Kestra reads them (see [Metric]). An entry
	// that cannot be read, whose type is not counter, timer or gauge, or
	// whose value contains a secret, is left out with a warning naming it;
	// the other entries and the outputs of its line are kept. At most
	// 10,000 entries are kept; the others are counted in a warning.
	Metrics []Metric
	// Warnings lists problems that did not fail the run, for example a
	// ::{...}:: line that was not valid JSON or an entry of one that could
	// not be read, secrets masked. The first 100 warnings about ::{...}::
	// lines are kept and the rest counted in one "N more warnings about
	// ::{...}:: lines not shown"; the warnings that a limit on outputs or
	// metrics was reached are always kept.
	Warnings []string

	// StdoutLines and StderrLines count the lines received on each stream,
	// including ::{...}:: lines and a last line without a terminator.
	StdoutLines int
	StderrLines int

	// Started and Finished bound the run of the script's process as seen by
	// lading.
	Started  time.Time
	Finished time.Time

	// PeakMemory is the highest memory use seen, in bytes, and CPUTime the
	// CPU time used, when the runner measured them (the docker runner: when
	// stats are collected); zero otherwise. Both come from samples taken
	// about once a second, so a run shorter than that may show zero.
	PeakMemory int64
	CPUTime    time.Duration

	// WorkingDir is the host working directory of the run (see
	// [Task.WorkingDir]); the caller owns it.
	WorkingDir string
	// OutputFiles maps each collected file to its absolute path on the
	// host: files matched by [Task.OutputFiles] by their path relative to
	// the working directory, files from the output directory by their path
	// relative to it (as Kestra names them). It lists only files the run
	// created or changed: a file that was in the working directory before
	// and that the script left alone is not an output. A glob that matched
	// none adds a warning naming it.
	OutputFiles map[string]string

	// Details holds runner-specific facts; the docker runner stores a
	// *docker.Details with the container id.
	Details any
}

// Duration returns Finished - Started.
func (r *Result) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// Metric is one entry of a Kestra-style {"metrics":[...]} line. Entries are
// read leniently, as Kestra's Jackson mapper reads them: a name or tag value
// printed as a number or boolean is kept as its text ({"n": 3} gives "3").
type Metric struct {
	// Name is the metric's name, never empty.
	Name string `json:"name"`
	// Type is "counter", "timer" or "gauge", the types Kestra knows.
	Type string `json:"type"`
	// Value is the number a counter adds or a gauge holds (printed as a
	// number or a string holding one: 5 or "5"), or a timer's duration in
	// seconds (a number of seconds, a string holding one, or an ISO-8601
	// duration as java.time.Duration reads it: "PT1.5S" is 1.5). It is
	// always finite.
	Value float64 `json:"value"`
	// Tags are the entry's tags, if it has any.
	Tags map[string]string `json:"tags,omitempty"`
}

// Stage is a step of a run, reported through [Task.OnEvent].
type Stage string

// The stages of a run, in the order they happen. A runner reports the ones
// it goes through; not every run has every stage.
const (
	StagePulling    Stage = "pulling"    // the image is being pulled
	StageCreating   Stage = "creating"   // the container (and its volume) is being created
	StageStaging    Stage = "staging"    // input files are being copied in
	StageRunning    Stage = "running"    // the script has started
	StageStopping   Stage = "stopping"   // the run was cancelled or timed out: the container is being stopped
	StageCollecting Stage = "collecting" // output files are being copied out
	StageCleaning   Stage = "cleaning"   // the container and volume are being removed
)

// Event reports that a run entered a [Stage].
type Event struct {
	Stage Stage
	Time  time.Time
	// Detail says more where there is more to say, e.g. the image being
	// pulled or the container id.
	Detail string
}

// PullProgress is one progress report of an image pull.
type PullProgress struct {
	// Layer is the layer (or image) the report is about, as the engine
	// names it; empty for messages about the whole pull.
	Layer string
	// Status is the engine's wording, e.g. "Downloading", "Pull complete".
	Status string
	// Current and Total are bytes done and expected for the layer, when the
	// engine reports them (0 otherwise).
	Current int64
	Total   int64
}

// Stats is one resource usage sample of a running task.
type Stats struct {
	Time time.Time
	// MemoryUsage is the memory in use, in bytes; MemoryLimit the limit
	// (the host's memory when none is set); MemoryCache the part of the
	// usage that is page cache.
	MemoryUsage int64
	MemoryLimit int64
	MemoryCache int64
	// CPUUsage is the CPU time used since the start; CPUPercent the use
	// since the previous sample, in percent of one CPU (150 = 1.5 CPUs).
	CPUUsage   time.Duration
	CPUPercent float64
	// PIDs is the number of processes and threads.
	PIDs int64
}

// Source supplies the content of an input file. Package files provides
// String, Bytes, HostFile and Reader sources, and WithMode to give any of
// them a mode. A Source that also implements [ModeSource] says which
// permission bits its file gets; others are staged 0o644.
type Source interface {
	// Open returns the content. It is called once per run.
	Open() (io.ReadCloser, error)
}

// ModeSource is a [Source] that knows the permission bits of its file, as
// a host file does. A runner finds it by type assertion.
type ModeSource interface {
	Source
	// Mode returns the file's permission bits. Only bits within 0o777 are
	// allowed (a setuid, setgid or sticky bit is refused as invalid); the
	// group and other write bits are dropped when the file is staged.
	Mode() fs.FileMode
}
