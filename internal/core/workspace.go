package core

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/template"
)

// CollectGracePeriod is how long the collection of output files may go on
// once the run's context is done. See docker.CollectGracePeriod.
const CollectGracePeriod = 10 * time.Second

// Files is how a run's files reach the task and come back: one value per
// run, chosen once by [Engine.Files] (a bind mount of the host directory,
// copies into a created container, a directory inside a running one). [Run]
// calls Stage once the image is present, CopyIn once the container is
// created, Collect and then Tidy once it has exited, and Discard instead of
// them when the run ends without a result.
type Files interface {
	// Stage writes the task's input files into the host working directory
	// ([Workspace.Stage]) and makes what the strategy needs there.
	Stage(ctx context.Context) error
	// CopyIn brings the host working directory to the created container.
	CopyIn(ctx context.Context) error
	// Collect brings the output files back to the host working directory,
	// within the output limits ([State.OutputLimits]), and fills
	// res.OutputFiles. It returns the paths (relative to the working
	// directory) that came from the output globs. ctx ends
	// [CollectGracePeriod] after the run's context.
	Collect(ctx context.Context, res *runner.Result) (globbed []string, err error)
	// Tidy undoes, after Collect, what the strategy changed on the host
	// for the run, adding what it did to res.Warnings.
	Tidy(ctx context.Context, res *runner.Result) error
	// Discard undoes what Tidy would have, for a run without a result.
	Discard()
}

// Workspace is a run's working directory on the host and in the container.
type Workspace struct {
	HostDir      string
	ContainerDir string // where the container sees HostDir (slash-separated)
	Created      bool   // lading made HostDir: the caller owns it only if Run returns a result
	OutputRel    string // the output directory relative to HostDir, "" when disabled
	Matcher      *files.Matcher
	Commands     []string // the script's lines
	Env          []string // "NAME=value", secrets and WORKING_DIR, OUTPUT_DIR included
	Empty        bool     // after Stage: nothing to copy in (no inputs, and HostDir held nothing)
	engine       string
}

// OutputDir is the output directory in the container, "" when disabled.
func (ws *Workspace) OutputDir() string {
	if ws.OutputRel == "" {
		return ""
	}
	return path.Join(ws.ContainerDir, ws.OutputRel)
}

// HostPath is the host path of rel, a path relative to the working
// directory.
func (ws *Workspace) HostPath(rel string) string {
	return filepath.Join(ws.HostDir, filepath.FromSlash(rel))
}

// prepare renders the templated fields and makes the host working
// directory. The script is Kestra's: "set -e" for a shell unless
// DisableFailFast, the before commands, the commands (runner.ScriptLines).
// Input files that are templates are rendered here, before anything is
// pulled or created, and replaced in the run's copy of the task by their
// rendered text; with DisableTemplates nothing is rendered.
func (run *State) prepare(ctx context.Context) (*Workspace, error) {
	ws, err := run.makeWorkspace()
	if err != nil {
		return nil, err
	}
	if err := run.render(ctx, ws); err != nil {
		ws.discard()
		return nil, err
	}
	return ws, nil
}

// render fills in ws from the task's templated fields.
func (run *State) render(ctx context.Context, ws *Workspace) error {
	task := &run.Task
	if !task.DisableOutputDir {
		ws.OutputRel = "outputs-" + run.ID
	}
	vars := map[string]any{"workingDir": ws.ContainerDir}
	for k, v := range task.Vars {
		vars[k] = v
	}
	if ws.OutputRel != "" {
		vars["outputDir"] = ws.OutputDir()
	}
	// Rendering runs under ctx, to which Run has applied the task's Timeout.
	tpl := template.New(vars, template.Options{Secrets: task.Secrets})
	render := func(field, s string) (string, error) {
		if task.DisableTemplates {
			return s, nil
		}
		return tpl.Render(ctx, field, s)
	}
	renderList := func(field string, items []string) ([]string, error) {
		if task.DisableTemplates {
			return items, nil
		}
		return tpl.RenderList(ctx, field, items)
	}
	before, err := renderList("beforeCommands", task.BeforeCommands)
	if err != nil {
		return err
	}
	commands, err := renderList("commands", task.Commands)
	if err != nil {
		return err
	}
	ws.Commands = runner.ScriptLines(task.FailFast(), before, commands)
	globs, err := renderList("outputFiles", task.OutputFiles)
	if err != nil {
		return err
	}
	if ws.Matcher, err = files.NewMatcher(globs); err != nil {
		return err
	}
	for k, v := range task.Env {
		rendered, err := render("env."+k, v)
		if err != nil {
			return err
		}
		ws.Env = append(ws.Env, k+"="+rendered)
	}
	if err := RenderInputs(ctx, &run.Task, vars); err != nil {
		return err
	}
	for k, v := range task.Secrets {
		ws.Env = append(ws.Env, k+"="+v)
	}
	ws.Env = append(ws.Env, "WORKING_DIR="+ws.ContainerDir)
	if ws.OutputRel != "" {
		ws.Env = append(ws.Env, "OUTPUT_DIR="+ws.OutputDir())
	}
	return nil
}

// makeWorkspace makes (or takes) the host working directory and decides
// where the container sees it: at [Options.ContainerDir], else at the
// host's absolute path. A directory it made is removed again when that
// path cannot be used.
func (run *State) makeWorkspace() (*Workspace, error) {
	task := &run.Task
	ws := &Workspace{HostDir: task.WorkingDir, engine: run.opts.Name}
	var err error
	if ws.HostDir != "" {
		if ws.HostDir, err = filepath.Abs(ws.HostDir); err != nil {
			return nil, &runner.FieldError{Field: "workingDir", Value: task.WorkingDir, Problem: err.Error(), Err: runner.ErrInvalidTask}
		}
		if err := checkContainerDir(filepath.ToSlash(ws.HostDir), "workingDir", task.WorkingDir); err != nil && run.opts.ContainerDir == "" {
			return nil, err
		}
	}
	if ws.HostDir == "" {
		if ws.HostDir, err = os.MkdirTemp("", "lading-"); err != nil {
			return nil, fmt.Errorf("%s: make a working directory: %w", run.opts.Name, err)
		}
		ws.Created = true
		if ws.HostDir, err = filepath.Abs(ws.HostDir); err != nil {
			ws.discard()
			return nil, err
		}
	} else if err := os.MkdirAll(ws.HostDir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: working directory: %w", run.opts.Name, err)
	}
	ws.ContainerDir = cmp.Or(run.opts.ContainerDir, filepath.ToSlash(ws.HostDir))
	if run.opts.ContainerDir == "" {
		if err := checkContainerDir(ws.ContainerDir, "workingDir", ws.HostDir); err != nil {
			ws.discard()
			return nil, err
		}
	}
	return ws, nil
}

// systemDirs are the directories a working directory may not replace in
// the container: its file system's own.
var systemDirs = []string{"/", "/bin", "/boot", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
	"/mnt", "/opt", "/root", "/run", "/sbin", "/srv", "/tmp", "/usr", "/usr/bin", "/usr/lib",
	"/usr/local", "/usr/local/bin", "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/run"}

// containerDirProblem says why dir cannot be the container's working
// directory, or returns "": a directory of the container's own system (the
// working directory would hide or mix with it), one under /proc, /sys or
// /dev, or a relative path.
func containerDirProblem(dir string) string {
	dir = path.Clean(dir)
	if !path.IsAbs(dir) {
		return "must be an absolute path"
	}
	for _, special := range []string{"/proc", "/sys", "/dev"} {
		if dir == special || strings.HasPrefix(dir, special+"/") {
			return "is under " + special + " in the container"
		}
	}
	if slices.Contains(systemDirs, dir) {
		return "is a system directory in the container (the working directory would hide or mix with the image's)"
	}
	return ""
}

// checkContainerDir refuses a host working directory the container cannot
// see at its own path; field and value name the setting that gave it.
func checkContainerDir(dir, field, value string) error {
	if problem := containerDirProblem(dir); problem != "" {
		return &runner.FieldError{Field: field, Value: value, Err: runner.ErrInvalidTask,
			Problem: "the container sees the working directory at the host's path, which " + problem + ": choose another directory, or give the runner a fixed container working directory"}
	}
	return nil
}

// CheckContainerDir refuses dir as an engine's fixed container working
// directory, reported as its setting field (an invalid config).
func CheckContainerDir(dir, field string) error {
	if problem := containerDirProblem(dir); problem != "" {
		return &runner.FieldError{Field: field, Value: dir, Problem: problem, Err: runner.ErrInvalidConfig}
	}
	return nil
}

// RenderInputs replaces, in task (a run's copy), each input file that is a
// runner.TemplateSource by its rendered text with vars (its template text
// with DisableTemplates), in the order of the names. The caller's map is
// not modified. Engines that do not run on [Run] call it as Run does.
func RenderInputs(ctx context.Context, task *runner.Task, vars map[string]any) error {
	var inputs map[string]runner.Source
	var tpl *template.Renderer
	for _, name := range slices.Sorted(maps.Keys(task.InputFiles)) {
		src, ok := task.InputFiles[name].(runner.TemplateSource)
		if !ok {
			continue
		}
		if inputs == nil {
			inputs = maps.Clone(task.InputFiles)
			tpl = template.New(vars, template.FileOptions(task.Secrets))
		}
		text := src.Template()
		if !task.DisableTemplates {
			var err error
			if text, err = tpl.Render(ctx, "inputFiles."+name, text); err != nil {
				return err
			}
		}
		inputs[name] = files.String(text)
	}
	if inputs != nil {
		task.InputFiles = inputs
	}
	return nil
}

// Stage writes the task's input files into the host working directory and
// notes whether it then holds anything (Empty).
func (ws *Workspace) Stage(ctx context.Context, inputs map[string]runner.Source) error {
	if err := files.Stage(ctx, ws.HostDir, inputs); err != nil {
		return err
	}
	ws.Empty = dirEmpty(ws.HostDir)
	return nil
}

// MakeOutputDir makes the output directory in the host working directory
// (for strategies where the container writes there).
func (ws *Workspace) MakeOutputDir() error {
	if ws.OutputRel == "" {
		return nil
	}
	if err := os.Mkdir(filepath.Join(ws.HostDir, ws.OutputRel), 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("%s: output directory: %w", ws.engine, err)
	}
	return nil
}

// dirEmpty reports whether dir holds nothing; an error counts as not empty.
func dirEmpty(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

// discard removes a working directory lading made, when the run ends
// without a result to hand it over in (after [Files.Discard]).
func (ws *Workspace) discard() {
	if ws.Created {
		_ = os.RemoveAll(ws.HostDir)
		return
	}
	ws.removeEmptyOutputDir()
}

// removeEmptyOutputDir removes the run's output directory from the host
// working directory when nothing is in it, so a caller's directory shared
// by many runs does not gather one empty outputs-<id> per run. A directory
// with anything in it is kept (os.Remove removes only empty ones).
func (ws *Workspace) removeEmptyOutputDir() {
	if ws.OutputRel != "" {
		_ = os.Remove(filepath.Join(ws.HostDir, ws.OutputRel))
	}
}

// collect brings the output files back into the host working directory
// and lists them in res ([Files.Collect]), then tidies ([Files.Tidy]). It
// runs under ctx, and for at most [CollectGracePeriod] once ctx is done.
func (run *State) collect(ctx context.Context, res *runner.Result) error {
	ws := run.WS
	res.WorkingDir = ws.HostDir
	ctx, done := collectContext(ctx)
	defer done()
	// Collect comes before Tidy gives back what the container's user was
	// granted: that changes modes and change times, which a snapshot taken
	// after the grant would take for the script's.
	globbed, err := run.files.Collect(ctx, res)
	if err = errors.Join(err, run.files.Tidy(ctx, res)); err != nil {
		return err
	}
	ws.removeEmptyOutputDir()
	run.warnUnmatched(dropRemoved(ws, res, globbed), res)
	return nil
}

// collectContext returns the context collection runs under: it ends
// CollectGracePeriod after ctx is done, with ctx's cause. Call done when
// collection is over.
func collectContext(ctx context.Context) (cctx context.Context, done func()) {
	cctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	finished := false
	stopWatching := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return
		}
		timer = time.AfterFunc(CollectGracePeriod, func() {
			cancel(fmt.Errorf("collection of output files cut off %s after the run's end: %w", CollectGracePeriod, context.Cause(ctx)))
		})
	})
	return cctx, func() {
		stopWatching()
		mu.Lock()
		finished = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel(context.Canceled)
	}
}

// CollectError wraps err, an error met while collecting on cctx (the ctx
// of [Files.Collect]), with the cause of cctx when cctx is done, so a
// cut-off collection matches the run's cause.
func (run *State) CollectError(cctx context.Context, err error) error {
	if cause := context.Cause(cctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%s: collect output files: %w (%w)", run.opts.Name, cause, err)
	}
	return fmt.Errorf("%s: collect output files: %w", run.opts.Name, err)
}

// OutputLimits is what is left of the output limits.
type OutputLimits struct {
	Bytes int64
	Files int
}

// OutputLimits returns the configured output limits, defaults applied.
func (run *State) OutputLimits() OutputLimits {
	left := OutputLimits{Bytes: run.opts.MaxOutputBytes, Files: run.opts.MaxOutputFiles}
	if left.Bytes <= 0 {
		left.Bytes = files.DefaultMaxBytes
	}
	if left.Files <= 0 {
		left.Files = files.DefaultMaxFiles
	}
	return left
}

// dropRemoved takes out of res.OutputFiles, and of globbed, the files that
// are no longer regular files on the host: the hygiene step (Tidy) removes
// what it cannot make safe. It returns what is left of globbed.
func dropRemoved(ws *Workspace, res *runner.Result, globbed []string) []string {
	for key, p := range res.OutputFiles {
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			delete(res.OutputFiles, key)
		}
	}
	return slices.DeleteFunc(globbed, func(rel string) bool {
		fi, err := os.Lstat(ws.HostPath(rel))
		return err != nil || !fi.Mode().IsRegular()
	})
}

// warnUnmatched adds a warning for each output glob that matched none of
// globbed, the files the run produced.
func (run *State) warnUnmatched(globbed []string, res *runner.Result) {
	m := run.WS.Matcher
	patterns := m.Patterns()
	for _, i := range m.Unmatched(globbed) {
		glob := fmt.Sprintf("%q", run.Task.OutputFiles[i])
		if patterns[i] != run.Task.OutputFiles[i] {
			glob += fmt.Sprintf(" (%q)", patterns[i])
		}
		res.Warnings = append(res.Warnings, "output glob "+glob+" matched no file the run created or changed")
	}
}
