package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/template"
)

// State is how a task run ended, with Kestra's names.
type State string

const (
	Success State = "SUCCESS"
	Warning State = "WARNING" // failed, but allowFailure is set
	Failed  State = "FAILED"
	Killed  State = "KILLED" // the flow was cancelled
	Skipped State = "SKIPPED"
)

// Engine runs flows. The zero value is not usable: set Dir.
type Engine struct {
	// Dir holds a working directory per task run, Dir/<flow>/<task>.
	Dir string
	// MaxParallel is how many tasks of a flow may run at the same time,
	// across all its parallel branches. Zero means 2.
	MaxParallel int
	// Log receives every line of every task, prefixed with its task id.
	// Nil means io.Discard.
	Log io.Writer
}

// TaskRun is what one task did.
type TaskRun struct {
	ID          string
	State       State
	ExitCode    int
	OOMKilled   bool
	TimedOut    bool
	Err         error // why it failed, was killed or was skipped
	Duration    time.Duration
	Outputs     map[string]any
	OutputFiles map[string]string // name -> host path
}

// Summary is what a flow did.
type Summary struct {
	Flow  string
	State State
	// Tasks are the script tasks in flow order (Parallel tasks are not
	// listed; their tasks are).
	Tasks []*TaskRun
	// MaxRunning is the most tasks seen running at once.
	MaxRunning int
	Duration   time.Duration
}

// Task returns the run of the task id, or nil.
func (s *Summary) Task(id string) *TaskRun {
	for _, t := range s.Tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// execution is the state of one run of a flow.
type execution struct {
	e    *Engine
	flow *Flow
	dir  string
	sem  chan struct{}

	mu       sync.Mutex
	runs     map[string]*TaskRun
	outputs  map[string]any  // outputs.<task>.{vars,outputFiles,exitCode,state}
	produced map[string]bool // host paths of output files, staged by path
	runners  map[string]*docker.Runner
	failed   error // the first failure that stops the flow
	running  int
	maxRun   int
	logMu    sync.Mutex
	log      io.Writer
}

// Run runs flow f and returns its summary. The error is for what kept the
// flow from being run at all; a task's failure is in the summary.
func (e *Engine) Run(ctx context.Context, f *Flow) (*Summary, error) {
	if e.Dir == "" {
		return nil, errors.New("workflow: Engine.Dir is empty")
	}
	limit := e.MaxParallel
	if limit <= 0 {
		limit = 2
	}
	x := &execution{
		e: e, flow: f, dir: filepath.Join(e.Dir, f.ID),
		sem:      make(chan struct{}, limit),
		runs:     map[string]*TaskRun{},
		outputs:  map[string]any{},
		produced: map[string]bool{},
		runners:  map[string]*docker.Runner{},
		log:      e.Log,
	}
	if x.log == nil {
		x.log = io.Discard
	}
	defer func() {
		for _, r := range x.runners {
			_ = r.Close()
		}
	}()
	sum := &Summary{Flow: f.ID, State: Success}
	var order func([]Task)
	order = func(ts []Task) {
		for _, t := range ts {
			if t.Type == typeParallel {
				order(t.Tasks)
				continue
			}
			tr := &TaskRun{ID: t.ID}
			x.runs[t.ID] = tr
			sum.Tasks = append(sum.Tasks, tr)
		}
	}
	order(f.Tasks)

	start := time.Now()
	x.sequence(ctx, f.Tasks)
	sum.Duration = time.Since(start)
	sum.MaxRunning = x.maxRun
	for _, tr := range sum.Tasks {
		switch {
		case tr.State == Killed:
			sum.State = Killed
		case tr.State == Failed && sum.State != Killed:
			sum.State = Failed
		case tr.State == Warning && sum.State == Success:
			sum.State = Warning
		}
	}
	return sum, nil
}

// sequence runs tasks one after the other, skipping the rest once one
// failed.
func (x *execution) sequence(ctx context.Context, tasks []Task) {
	for _, t := range tasks {
		x.mu.Lock()
		stop := x.failed
		x.mu.Unlock()
		if stop == nil && ctx.Err() != nil {
			stop = context.Cause(ctx)
		}
		if stop != nil {
			x.skip(t, stop)
			continue
		}
		x.one(ctx, t)
	}
}

// one runs a task: a Parallel task runs all its tasks at once (each waits
// for a free slot of the flow's limit).
func (x *execution) one(ctx context.Context, t Task) {
	if t.Type != typeParallel {
		x.script(ctx, t)
		return
	}
	var wg sync.WaitGroup
	for _, c := range t.Tasks {
		wg.Go(func() { x.one(ctx, c) })
	}
	wg.Wait()
}

func (x *execution) skip(t Task, why error) {
	if t.Type == typeParallel {
		for _, c := range t.Tasks {
			x.skip(c, why)
		}
		return
	}
	tr := x.runs[t.ID]
	tr.State, tr.Err = Skipped, fmt.Errorf("not run: %w", why)
	x.record(tr)
}

// record publishes a finished run to the tasks after it, as
// {{ outputs.<id>.vars.<name> }}, {{ outputs.<id>.outputFiles['<name>'] }},
// {{ outputs.<id>.exitCode }} and {{ outputs.<id>.state }}, and stops the
// flow when the run failed.
func (x *execution) record(tr *TaskRun) {
	x.mu.Lock()
	defer x.mu.Unlock()
	outFiles := map[string]any{}
	for name, path := range tr.OutputFiles {
		outFiles[name] = path
		x.produced[path] = true
	}
	vars := tr.Outputs
	if vars == nil {
		vars = map[string]any{}
	}
	x.outputs[tr.ID] = map[string]any{
		"vars": vars, "outputFiles": outFiles,
		"exitCode": int64(tr.ExitCode), "state": string(tr.State),
	}
	if (tr.State == Failed || tr.State == Killed) && x.failed == nil {
		x.failed = fmt.Errorf("task %s %s", tr.ID, tr.State)
	}
}

func (x *execution) script(ctx context.Context, t Task) {
	tr := x.runs[t.ID]
	task, err := x.prepare(ctx, t)
	if err != nil {
		tr.State, tr.Err = Failed, err
		x.record(tr)
		return
	}
	r, err := x.runner(t)
	if err != nil {
		tr.State, tr.Err = Failed, err
		x.record(tr)
		return
	}

	select { // a slot of the flow's limit
	case x.sem <- struct{}{}:
	case <-ctx.Done():
		tr.State, tr.Err = Killed, context.Cause(ctx)
		x.record(tr)
		return
	}
	x.mu.Lock()
	x.running++
	x.maxRun = max(x.maxRun, x.running)
	x.mu.Unlock()
	res, err := r.Run(ctx, task)
	x.mu.Lock()
	x.running--
	x.mu.Unlock()
	<-x.sem

	if res != nil {
		tr.ExitCode, tr.OOMKilled = res.ExitCode, res.OOMKilled
		tr.Duration, tr.Outputs, tr.OutputFiles = res.Duration(), res.Outputs, res.OutputFiles
	}
	var exit *runner.ExitError
	switch {
	case err == nil:
		tr.State = Success
	case errors.As(err, &exit):
		tr.State, tr.Err = Failed, err
		tr.ExitCode, tr.OOMKilled = exit.ExitCode, exit.OOMKilled
	case errors.Is(err, runner.ErrTimeout):
		tr.State, tr.Err, tr.TimedOut = Failed, err, true
	case ctx.Err() != nil:
		tr.State, tr.Err = Killed, err
	default:
		tr.State, tr.Err = Failed, err
	}
	if tr.State == Failed && t.AllowFailure {
		tr.State = Warning
	}
	x.record(tr)
}

// fileRef is an inputFiles value that is only a reference to an earlier
// task's output file.
var fileRef = regexp.MustCompile(`^\{\{\s*outputs\.[A-Za-z0-9_-]+\.outputFiles\[[^\]]+\]\s*\}\}$`)

// prepare turns a flow task into a lading task. lading renders the
// commands, env values, output globs and inputFiles values (passed as
// files.Template, as Kestra renders inline inputFiles) from Vars. An
// inputFiles value that is only {{ outputs.<task>.outputFiles['<name>'] }}
// is rendered here and staged from that file (as Kestra stages a
// kestra:// URI from its internal storage), byte for byte; one that names
// no output file is an error.
func (x *execution) prepare(ctx context.Context, t Task) (runner.Task, error) {
	x.mu.Lock()
	vars := map[string]any{"outputs": maps.Clone(x.outputs)}
	produced := maps.Clone(x.produced)
	x.mu.Unlock()

	dir := filepath.Join(x.dir, t.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return runner.Task{}, err
	}
	inputs := map[string]runner.Source{}
	render := template.New(vars, template.Options{})
	for name, value := range t.InputFiles {
		if !fileRef.MatchString(strings.TrimSpace(value)) {
			inputs[name] = files.Template(value)
			continue
		}
		path, err := render.Render(ctx, "inputFiles."+name, strings.TrimSpace(value))
		if err != nil {
			return runner.Task{}, err
		}
		if !produced[path] {
			return runner.Task{}, fmt.Errorf("inputFiles.%s %q: names no output file of an earlier task", name, value)
		}
		inputs[name] = files.HostFile(path)
	}
	var timeout time.Duration
	if t.Timeout != "" {
		d, err := docker.ParseDuration(t.Timeout)
		if err != nil {
			return runner.Task{}, fmt.Errorf("timeout %q: %w", t.Timeout, err)
		}
		timeout = d
	}
	return runner.Task{
		ID:             x.flow.ID + "." + t.ID,
		Image:          t.ContainerImage,
		BeforeCommands: t.BeforeCommands,
		Commands:       t.Commands,
		Env:            t.Env,
		InputFiles:     inputs,
		OutputFiles:    t.OutputFiles,
		Vars:           vars,
		WorkingDir:     dir,
		Timeout:        timeout,
		// Logged as Kestra logs: not the ::{...}:: lines nor the level
		// markers, stdout at INFO and stderr at ERROR.
		OnLine: func(l runner.Line) {
			if !l.Logged() {
				return
			}
			x.logMu.Lock()
			defer x.logMu.Unlock()
			fmt.Fprintf(x.log, "%-10s %-5s %s\n", t.ID, l.Level, l.Text)
		},
	}, nil
}

// runner returns the runner for the task's taskRunner block: one per
// distinct block, shared by the tasks that have the same. ParseConfigMap
// reads the block as YAML decoded it, with lading's exact names and
// Kestra's rendered values ("false", "100").
func (x *execution) runner(t Task) (*docker.Runner, error) {
	block, err := json.Marshal(t.TaskRunner) // a map's keys come sorted
	if err != nil {
		return nil, fmt.Errorf("taskRunner: %w", err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if r, ok := x.runners[string(block)]; ok {
		return r, nil
	}
	cfg, err := docker.ParseConfigMap(t.TaskRunner)
	if err != nil {
		return nil, fmt.Errorf("taskRunner: %w", err)
	}
	r, err := docker.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("taskRunner: %w", err)
	}
	x.runners[string(block)] = r
	return r, nil
}

// Print writes the summary as a table.
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "flow %s: %s in %s (at most %d tasks at once)\n", s.Flow, s.State, s.Duration.Round(time.Millisecond), s.MaxRunning)
	for _, t := range s.Tasks {
		note := ""
		switch {
		case t.OOMKilled:
			note = "out of memory"
		case t.TimedOut:
			note = "timed out"
		case t.Err != nil:
			note = t.Err.Error()
		}
		fmt.Fprintf(w, "  %-10s %-8s exit %-4d %8s  %s\n", t.ID, t.State, t.ExitCode, t.Duration.Round(time.Millisecond), note)
		if len(t.Outputs) > 0 {
			b, _ := json.Marshal(t.Outputs)
			fmt.Fprintf(w, "  %-10s outputs %s\n", "", b)
		}
		for _, name := range sortedKeys(t.OutputFiles) {
			fmt.Fprintf(w, "  %-10s file %s -> %s\n", "", name, t.OutputFiles[name])
		}
	}
}
