package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/template"
)

// FileHandlingStrategy says how files reach the container and come back.
type FileHandlingStrategy string

const (
	// FileHandlingVolume copies the working directory into the container
	// while it is only created, and copies outputs back after it has
	// exited; the output directory is a labelled anonymous volume removed
	// with the container. It works with remote engines. It is the default.
	FileHandlingVolume FileHandlingStrategy = "VOLUME"
	// FileHandlingMount bind-mounts the host working directory: no copies,
	// but the engine must see the host's file system.
	FileHandlingMount FileHandlingStrategy = "MOUNT"
)

// ContainerWorkingDir is where the working directory is inside the
// container; {{ workingDir }} and WORKING_DIR name it.
const ContainerWorkingDir = "/lading/work"

// workspace is a run's working directory on the host and in the container.
type workspace struct {
	hostDir   string
	created   bool   // lading made hostDir: the caller owns it only if Run returns a result
	outputRel string // the output directory relative to hostDir, "" when disabled
	matcher   *files.Matcher
	commands  []string
	env       []string
	empty     bool      // nothing to copy in: no inputs, and hostDir held nothing
	outputMod time.Time // the output directory's modification time before the start (VOLUME), zero if unknown
	made      []string  // what staging made, for a non-root user under MOUNT (see mount.go)
	grant     *grant    // what the container's user was given under MOUNT, until given back

	staging     staging         // what was copied in and what came back (VOLUME)
	snapshot    *files.Snapshot // the files the globs can match before the start (MOUNT), nil without globs
	snapshotErr error           // why there is no snapshot (MOUNT)
}

func (ws *workspace) outputDir() string {
	if ws.outputRel == "" {
		return ""
	}
	return ContainerWorkingDir + "/" + ws.outputRel
}

// prepare renders the templated fields and makes the host working
// directory. The script is Kestra's: "set -e" for a shell unless
// DisableFailFast, the before commands, the commands (runner.ScriptLines).
// Input files that are templates are rendered here, before anything is
// pulled or created, and replaced in the run's copy of the task by their
// rendered text; with DisableTemplates nothing is rendered.
func (run *run) prepare(ctx context.Context) (*workspace, error) {
	task := &run.task
	ws := &workspace{hostDir: task.WorkingDir}
	if !task.DisableOutputDir {
		ws.outputRel = "outputs-" + run.id
	}
	vars := map[string]any{"workingDir": ContainerWorkingDir}
	for k, v := range task.Vars {
		vars[k] = v
	}
	if ws.outputRel != "" {
		vars["outputDir"] = ws.outputDir()
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
		return nil, err
	}
	commands, err := renderList("commands", task.Commands)
	if err != nil {
		return nil, err
	}
	ws.commands = runner.ScriptLines(task.FailFast(), before, commands)
	globs, err := renderList("outputFiles", task.OutputFiles)
	if err != nil {
		return nil, err
	}
	if ws.matcher, err = files.NewMatcher(globs); err != nil {
		return nil, err
	}
	for k, v := range task.Env {
		rendered, err := render("env."+k, v)
		if err != nil {
			return nil, err
		}
		ws.env = append(ws.env, k+"="+rendered)
	}
	if err := run.renderInputs(ctx, vars); err != nil {
		return nil, err
	}
	for k, v := range task.Secrets {
		ws.env = append(ws.env, k+"="+v)
	}
	ws.env = append(ws.env, "WORKING_DIR="+ContainerWorkingDir)
	if ws.outputRel != "" {
		ws.env = append(ws.env, "OUTPUT_DIR="+ws.outputDir())
	}

	if ws.hostDir == "" {
		if ws.hostDir, err = os.MkdirTemp("", "lading-"); err != nil {
			return nil, fmt.Errorf("docker: make a working directory: %w", err)
		}
		ws.created = true
	} else if err := os.MkdirAll(ws.hostDir, 0o755); err != nil {
		return nil, fmt.Errorf("docker: working directory: %w", err)
	}
	if ws.hostDir, err = filepath.Abs(ws.hostDir); err != nil {
		return nil, err
	}
	return ws, nil
}

// renderInputs replaces, in the run's copy of the task, each input file
// that is a runner.TemplateSource by its rendered text (its template text
// with DisableTemplates), in the order of the names. The caller's map is
// not modified.
func (run *run) renderInputs(ctx context.Context, vars map[string]any) error {
	task := &run.task
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

// stage writes the task's input files into the host working directory and,
// under MOUNT, makes the output directory there. It runs once the image is
// known; under MOUNT with a non-root user it notes what it makes, which the
// user is given once the container exists (checkMount).
func (run *run) stage(ctx context.Context, ws *workspace) error {
	mount := run.r.strategy() == FileHandlingMount
	if mount && !run.runsAsRoot() {
		ws.made = madeByStage(ws.hostDir, run.task.InputFiles)
	}
	if err := files.Stage(ctx, ws.hostDir, run.task.InputFiles); err != nil {
		return err
	}
	ws.empty = dirEmpty(ws.hostDir)
	if mount && ws.outputRel != "" {
		if err := os.Mkdir(filepath.Join(ws.hostDir, ws.outputRel), 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("docker: output directory: %w", err)
		}
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
// without a result to hand it over in; a caller's gets back what MOUNT gave
// the container's user, and is made safe.
func (ws *workspace) discard() {
	if ws.grant != nil && !ws.created {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_, _ = ws.release(ctx)
	}
	if ws.created {
		_ = os.RemoveAll(ws.hostDir)
		return
	}
	ws.removeEmptyOutputDir()
}

// removeEmptyOutputDir removes the run's output directory from the host
// working directory when nothing is in it, so a caller's directory shared
// by many runs does not gather one empty outputs-<id> per run. A directory
// with anything in it is kept (os.Remove removes only empty ones).
func (ws *workspace) removeEmptyOutputDir() {
	if ws.outputRel != "" {
		_ = os.Remove(filepath.Join(ws.hostDir, ws.outputRel))
	}
}

func (r *Runner) strategy() FileHandlingStrategy {
	if r.cfg.FileHandlingStrategy == "" {
		return FileHandlingVolume
	}
	return r.cfg.FileHandlingStrategy
}

// mounts returns the container's mounts and the configured extra volumes.
// Under MOUNT the host working directory is bind-mounted. Under VOLUME the
// working directory is in the container's own file system (the engine makes
// it, as the container's working directory), and the output directory is
// an anonymous volume, labelled like the container and removed with it: the
// engine makes both with the container, so a task with nothing to copy in
// needs no archive call (tens of milliseconds each) before it starts.
func (run *run) mounts(ws *workspace, labels map[string]string) ([]mount.Mount, error) {
	var ms []mount.Mount
	if run.r.strategy() == FileHandlingMount {
		ms = append(ms, mount.Mount{Type: mount.TypeBind, Source: ws.hostDir, Target: ContainerWorkingDir})
	} else if ws.outputRel != "" {
		ms = append(ms, mount.Mount{Type: mount.TypeVolume, Target: ws.outputDir(), VolumeOptions: &mount.VolumeOptions{Labels: labels}})
	}
	for _, v := range run.r.cfg.Volumes {
		m, err := parseVolume(v)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// parseVolume parses "/host/path:/container/path[:ro|rw]".
func parseVolume(v string) (mount.Mount, error) {
	parts := strings.Split(v, ":")
	bad := func(problem string) (mount.Mount, error) {
		return mount.Mount{}, invalidConfig("volumes", v, problem)
	}
	if len(parts) < 2 || len(parts) > 3 {
		return bad(`must be "/host/path:/container/path" with an optional ":ro" or ":rw"`)
	}
	if !filepath.IsAbs(parts[0]) || !path.IsAbs(parts[1]) {
		return bad("both paths must be absolute")
	}
	if path.Clean(parts[1]) == ContainerWorkingDir || strings.HasPrefix(path.Clean(parts[1])+"/", ContainerWorkingDir+"/") {
		return bad("must not mount over the working directory " + ContainerWorkingDir)
	}
	m := mount.Mount{Type: mount.TypeBind, Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return bad(`the mode must be "ro" or "rw"`)
		}
	}
	return m, nil
}

// copyIn copies the host working directory into the created container
// (VOLUME strategy), then notes the output directory's
// modification time. The engine writes the files as root; when the script
// runs as another user, directories are made writable by all and files
// readable and writable by all, so that user can work there (the engine's
// own ownership mapping only knows user names in the image's passwd file,
// not "uid:gid"). A root script with nothing to copy in skips the copy: the
// engine made both directories, owned by root. It records what it sent of
// each file, so that collection brings back only what the container
// changed. With MOUNT it checks instead that the engine sees the host
// directory, and notes the files the output globs can match, so that those
// there before the start are not taken for the run's.
func (run *run) copyIn(ctx context.Context, ws *workspace) error {
	if run.r.strategy() == FileHandlingMount {
		if err := run.checkMount(ctx, ws); err != nil {
			return err
		}
		if !ws.matcher.Empty() {
			// What is there before the start is not the run's output.
			ws.snapshot, ws.snapshotErr = files.TakeSnapshot(ctx, ws.hostDir, ws.matcher)
		}
		return nil
	}
	root := run.runsAsRoot()
	ws.staging.known = true
	ws.staging.files = map[string]files.StagedFile{}
	if !ws.empty || !root {
		run.event(runner.StageStaging, ws.hostDir)
		pr, pw := io.Pipe()
		written := make(chan struct{})
		go func() {
			defer close(written)
			var extra []string
			if ws.outputRel != "" {
				extra = []string{ws.outputRel}
			}
			pw.CloseWithError(files.WriteTar(ctx, pw, ws.hostDir, files.TarOptions{
				Prefix: path.Base(ContainerWorkingDir) + "/", ExtraDirs: extra, Shared: !root,
				OnFile: func(rel string, f files.StagedFile) { ws.staging.files[rel] = f },
			}))
		}()
		_, err := run.r.cli.CopyToContainer(ctx, run.containerID, client.CopyToContainerOptions{
			DestinationPath: path.Dir(ContainerWorkingDir),
			Content:         pr,
		})
		pr.CloseWithError(err) // unblocks the writer if the engine stopped reading
		<-written
		if err != nil {
			return engineError(run.r, "copy input files into the container", err)
		}
	}
	if ws.outputRel != "" {
		// Compared after the run to skip copying back an untouched output
		// directory; without it the directory is always copied.
		if st, err := run.r.cli.ContainerStatPath(ctx, run.containerID, client.ContainerStatPathOptions{Path: ws.outputDir()}); err == nil {
			ws.outputMod = st.Stat.Mtime
		}
	}
	return nil
}

// runsAsRoot reports whether the script surely runs as root: the configured
// user, or else the image's, is empty, "root" or uid 0. An image whose user
// is unknown counts as not root.
func (run *run) runsAsRoot() bool {
	user := run.r.cfg.User
	if user == "" {
		if !run.imageUserKnown {
			return false
		}
		user = run.imageUser
	}
	name, _, _ := strings.Cut(user, ":")
	return name == "" || name == "root" || name == "0"
}

// checkMount fails clearly when the engine cannot see the host working
// directory (a remote engine, or one in another mount namespace): a marker
// file written on the host must show in the created container. Then it
// shares the directory with the run (shareMount): a caller's directory is
// registered as in use, and a script that does not run as root is given
// what it must write.
func (run *run) checkMount(ctx context.Context, ws *workspace) error {
	marker := ".lading-mount-" + run.id
	if err := os.WriteFile(filepath.Join(ws.hostDir, marker), nil, 0o644); err != nil {
		return fmt.Errorf("docker: MOUNT check: %w", err)
	}
	defer os.Remove(filepath.Join(ws.hostDir, marker))
	_, err := run.r.cli.ContainerStatPath(ctx, run.containerID, client.ContainerStatPathOptions{Path: ContainerWorkingDir + "/" + marker})
	if cerrdefs.IsNotFound(err) {
		return &runner.FieldError{Field: "fileHandlingStrategy", Value: string(FileHandlingMount),
			Problem: fmt.Sprintf("the engine does not see the host directory %s (is it remote, or in another mount namespace?); use VOLUME", ws.hostDir),
			Err:     runner.ErrInvalidConfig}
	}
	if err != nil {
		return engineError(run.r, "check the mounted working directory", err)
	}
	return run.shareMount(ctx, ws)
}

// collect brings the output files back into the host working directory
// (VOLUME) and lists them in res. It copies only what was asked: the output
// directory, and what the globs match among the paths the container
// created or changed. It runs under ctx, and for at most
// [CollectGracePeriod] once ctx is done.
func (run *run) collect(ctx context.Context, ws *workspace, res *runner.Result) error {
	res.WorkingDir = ws.hostDir
	ctx, done := collectContext(ctx)
	defer done()
	var err error
	var globbed []string
	if run.r.strategy() == FileHandlingVolume {
		err = run.copyOut(ctx, ws, res)
	}
	if err == nil {
		// Under MOUNT, before tidy gives back what the container's user
		// was granted: that changes modes and change times, which the
		// snapshot taken after the grant would take for the script's.
		globbed, err = run.listOutputs(ctx, ws, res)
	}
	if err = errors.Join(err, run.tidy(ctx, ws, res)); err != nil {
		return err
	}
	ws.removeEmptyOutputDir()
	run.warnUnmatched(ws, dropRemoved(ws, res, globbed), res)
	return nil
}

// copyOut copies back into the host directory (VOLUME) the files the globs
// match among those the container created or changed and, when the script
// wrote into it, the output directory. The engine's list of changes
// ([changedPaths]) says which paths to ask for, so files nobody asked for
// are not read; without it, the roots of the globs are copied. A copy of
// the whole working directory also brings the output directory on engines
// whose archives take in the output volume mounted inside it (Docker); when
// none did (Podman leaves mounts out), another copy takes the output
// directory itself. The output limits hold for all copies together, and
// they succeed or fail together: on error, nothing they wrote is left.
func (run *run) copyOut(ctx context.Context, ws *workspace, res *runner.Result) (err error) {
	globs := !ws.matcher.Empty()
	wantOutput := ws.outputRel != "" && run.outputDirWritten(ctx, ws)
	if !globs && !wantOutput {
		return nil
	}
	run.event(runner.StageCollecting, ws.hostDir)
	left := run.outputLimits()
	hostRoot, err := os.OpenRoot(ws.hostDir)
	if err != nil {
		return fmt.Errorf("docker: collect output files: %w", err)
	}
	defer hostRoot.Close()
	decide := ws.staging.decide(hostRoot, ws.outputRel)

	var done []*files.Extraction
	var written []string // host paths relative to the working directory
	defer func() {
		if err != nil {
			for i := len(done) - 1; i >= 0; i-- {
				err = errors.Join(err, done[i].Rollback())
			}
		}
	}()
	sawOutput := false
	if globs {
		var roots []string
		var want map[string]bool
		changed, ok := run.changedPaths(ctx, ws)
		if ok {
			roots, want = planCopies(changed, ws.matcher), wantedLeaves(changed, ws.matcher)
		} else {
			roots = run.rootsWithoutLinks(ctx, ws.matcher.Roots())
		}
		for _, rel := range roots {
			var stop func(string) bool
			if want != nil && (rel != "" || !wantOutput) {
				// (A copy of the whole working directory may carry the
				// output directory's files, which the list leaves out.)
				stop = stopWhenDone(rel, want)
			}
			x, paths, err := run.copyRoot(ctx, ws, rel, changed, decide, stop, &left, res, &sawOutput)
			if err != nil {
				return err
			}
			if x != nil {
				done = append(done, x)
				written = append(written, paths...)
			}
		}
	}
	if wantOutput && !sawOutput {
		// "dir/." gives entries relative to dir on every engine; "dir"
		// gives absolute names on Podman when dir is a mount.
		x, paths, err := run.extract(ctx, ws.outputDir()+"/.", ws.hostDir, files.ExtractOptions{Under: ws.outputRel}, &left, res)
		if err != nil {
			return err
		}
		if x != nil {
			done = append(done, x)
			written = append(written, paths...)
		}
	}
	var errs []error
	for _, x := range done {
		errs = append(errs, x.Commit())
	}
	done = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("docker: collect output files: %w", err)
	}
	outputs := map[string]string{}
	fromOutput := map[string]bool{}
	for _, rel := range written {
		if key, ok := strings.CutPrefix(rel, ws.outputRel+"/"); ws.outputRel != "" && ok {
			outputs[key], fromOutput[key] = ws.hostPath(rel), true
			continue
		}
		ws.staging.globbed = append(ws.staging.globbed, rel)
		if !fromOutput[rel] {
			outputs[rel] = ws.hostPath(rel)
		}
	}
	ws.staging.outputs = outputs
	return nil
}

// outputLimits is what is left of the output limits.
type outputLimits struct {
	bytes int64
	files int
}

// extract copies src out of the container into dest within the limits
// left, and takes what it wrote off them. It returns the pending
// extraction (nil when src is not in the container) and the paths it
// wrote, relative to dest.
func (run *run) extract(ctx context.Context, src, dest string, opts files.ExtractOptions, left *outputLimits, res *runner.Result) (*files.Extraction, []string, error) {
	if left.bytes <= 0 || left.files <= 0 {
		return nil, nil, fmt.Errorf("docker: collect output files: %w: nothing left for %s", files.ErrLimit, src)
	}
	opts.Overwrite = true // inputs the script changed come back over the staged ones (Decide says which)
	opts.MaxBytes, opts.MaxFiles = left.bytes, left.files
	copied, err := run.r.cli.CopyFromContainer(ctx, run.containerID, client.CopyFromContainerOptions{SourcePath: src})
	if isNotFound(err) {
		return nil, nil, nil // a glob root the script did not make
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, collectError(ctx, err)
		}
		return nil, nil, engineError(run.r, "copy output files from the container", err)
	}
	x, stats, err := files.ExtractPending(ctx, copied.Content, dest, opts)
	copied.Content.Close()
	left.bytes -= stats.Bytes
	left.files -= len(stats.Files)
	for _, s := range stats.Skipped {
		res.Warnings = append(res.Warnings, "output "+s)
	}
	if err != nil {
		return nil, nil, collectError(ctx, err)
	}
	return x, stats.Files, nil
}

// outputDirWritten reports whether the script may have written into the
// output directory: true unless the directory still has the modification
// time noted before the start (adding or removing an entry changes it, and
// the script starts long after the engine made the directory). Any doubt, an
// error included, answers true, so no output is ever skipped.
func (run *run) outputDirWritten(ctx context.Context, ws *workspace) bool {
	if ws.outputMod.IsZero() {
		return true
	}
	st, err := run.r.cli.ContainerStatPath(ctx, run.containerID, client.ContainerStatPathOptions{Path: ws.outputDir()})
	return err != nil || !st.Stat.Mtime.Equal(ws.outputMod)
}
