package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/template"
)

// workspace is a run's working directory on the host and in the pod.
type workspace struct {
	hostDir   string
	created   bool   // lading made hostDir: the caller owns it only if Run returns a result
	outputRel string // the output directory relative to hostDir, "" when disabled
	matcher   *files.Matcher
	script    []string // the rendered script's lines
	env       map[string]string
	upload    bool // the host directory holds something to copy in
}

func (ws *workspace) outputDir() string {
	if ws.outputRel == "" {
		return ""
	}
	return ContainerWorkingDir + "/" + ws.outputRel
}

// collects reports whether anything comes back: output globs or the
// output directory.
func (ws *workspace) collects() bool { return ws.outputRel != "" || !ws.matcher.Empty() }

// prepare renders the templated fields (unless DisableTemplates) and makes
// the host working directory; input files that are templates are rendered
// here, before anything is created.
func (run *run) prepare(ctx context.Context) (*workspace, error) {
	task := &run.task
	ws := &workspace{hostDir: task.WorkingDir, env: map[string]string{}}
	if !task.DisableOutputDir {
		ws.outputRel = "outputs-" + run.id
	}
	vars := map[string]any{"workingDir": ContainerWorkingDir}
	maps.Copy(vars, task.Vars)
	if ws.outputRel != "" {
		vars["outputDir"] = ws.outputDir()
	}
	tpl := template.New(vars, template.Options{Secrets: task.Secrets})
	renderList := func(field string, items []string) ([]string, error) {
		if task.DisableTemplates {
			return items, nil
		}
		return tpl.RenderList(ctx, field, items)
	}
	before, err := renderList("beforeCommands", task.BeforeCommands)
	if err != nil {
		return nil, err
	}
	commands, err := renderList("commands", task.Commands)
	if err != nil {
		return nil, err
	}
	ws.script = runner.ScriptLines(task.FailFast(), before, commands)
	globs, err := renderList("outputFiles", task.OutputFiles)
	if err != nil {
		return nil, err
	}
	if ws.matcher, err = files.NewMatcher(globs); err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(task.Env)) {
		v := task.Env[k]
		if !task.DisableTemplates {
			if v, err = tpl.Render(ctx, "env."+k, v); err != nil {
				return nil, err
			}
		}
		ws.env[k] = v
	}
	if err := core.RenderInputs(ctx, &run.task, vars); err != nil {
		return nil, err
	}
	ws.env["WORKING_DIR"] = ContainerWorkingDir
	if ws.outputRel != "" {
		ws.env["OUTPUT_DIR"] = ws.outputDir()
	}
	if ws.hostDir == "" {
		if ws.hostDir, err = os.MkdirTemp("", "lading-"); err != nil {
			return nil, fmt.Errorf("kubernetes: make a working directory: %w", err)
		}
		ws.created = true
	} else if err := os.MkdirAll(ws.hostDir, 0o755); err != nil {
		return nil, fmt.Errorf("kubernetes: working directory: %w", err)
	}
	if ws.hostDir, err = filepath.Abs(ws.hostDir); err != nil {
		return nil, err
	}
	return ws, nil
}

// stage writes the input files into the host working directory; whatever
// the directory then holds is copied into the pod.
func (run *run) stage(ctx context.Context, ws *workspace) error {
	if err := files.Stage(ctx, ws.hostDir, run.task.InputFiles); err != nil {
		return err
	}
	entries, err := os.ReadDir(ws.hostDir)
	ws.upload = err != nil || len(entries) > 0
	return nil
}

// discard removes a working directory lading made, when the run ends
// without a result to hand it over in.
func (ws *workspace) discard() {
	if ws.created {
		_ = os.RemoveAll(ws.hostDir)
		return
	}
	ws.removeEmptyOutputDir()
}

// removeEmptyOutputDir removes the run's output directory from the host
// working directory when nothing is in it.
func (ws *workspace) removeEmptyOutputDir() {
	if ws.outputRel != "" {
		_ = os.Remove(filepath.Join(ws.hostDir, ws.outputRel))
	}
}
