package docker

import (
	"context"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
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

// fileStrategy is a [FileHandlingStrategy] for one run: how its files reach
// the container ([core.Files]) and the mounts that takes.
type fileStrategy interface {
	core.Files
	// mounts returns the container's mounts for the working directory;
	// labels are the container's.
	mounts(labels map[string]string) []mount.Mount
}

func (r *Runner) strategy() FileHandlingStrategy {
	if r.cfg.FileHandlingStrategy == "" {
		return FileHandlingVolume
	}
	return r.cfg.FileHandlingStrategy
}

// Files returns the run's file strategy, as the configuration says.
func (run *run) Files() core.Files {
	if run.r.strategy() == FileHandlingMount {
		run.files = &mountFiles{run: run, ws: run.c.WS}
	} else {
		run.files = &volumeFiles{run: run, ws: run.c.WS}
	}
	return run.files
}

// mounts returns the container's mounts: the strategy's for the working
// directory, and the configured extra volumes.
func (run *run) mounts(labels map[string]string) ([]mount.Mount, error) {
	ms := run.files.mounts(labels)
	work := run.c.WS.ContainerDir
	for _, v := range run.r.cfg.Volumes {
		m, err := parseVolume(v)
		if err != nil {
			return nil, err
		}
		if t := path.Clean(m.Target); t == work || strings.HasPrefix(t, work+"/") {
			// The host paths are the same in the container: a volume of the
			// host's working directory, or of a directory under it, is not
			// one a block may add.
			return nil, invalidConfig("volumes", v, "must not mount over the working directory "+work)
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

// volumeFiles is the VOLUME strategy: the working directory is in the
// container's own file system (the engine makes it, as the container's
// working directory), and the output directory is an anonymous volume,
// labelled like the container and removed with it: the engine makes both
// with the container, so a task with nothing to copy in needs no archive
// call (tens of milliseconds each) before it starts. Files are copied in
// while the container is only created, and out after it has exited.
type volumeFiles struct {
	run       *run
	ws        *core.Workspace
	outputMod time.Time // the output directory's modification time before the start, zero if unknown
	// outputWritten, when set, says whether the script wrote into the
	// output directory (the warm pool knows it from the changes).
	outputWritten *bool
	staging       core.Staging // what was copied in and what came back
}

func (v *volumeFiles) mounts(labels map[string]string) []mount.Mount {
	if v.ws.OutputRel == "" {
		return nil
	}
	return []mount.Mount{{Type: mount.TypeVolume, Target: v.ws.OutputDir(), VolumeOptions: &mount.VolumeOptions{Labels: labels}}}
}

// Stage writes the task's input files into the host working directory.
func (v *volumeFiles) Stage(ctx context.Context) error {
	return v.ws.Stage(ctx, v.run.c.Task.InputFiles)
}

// CopyIn copies the host working directory into the created container,
// then notes the output directory's modification time. The engine writes
// the files as root; when the script runs as another user, directories are
// made writable by all and files readable and writable by all, so that user
// can work there (the engine's own ownership mapping only knows user names
// in the image's passwd file, not "uid:gid"). A root script with nothing to
// copy in skips the copy: the engine made both directories, owned by root.
// It records what it sent of each file, so that collection brings back only
// what the container changed.
func (v *volumeFiles) CopyIn(ctx context.Context) error {
	run, ws := v.run, v.ws
	root := run.runsAsRoot()
	v.staging.Known = true
	v.staging.Files = map[string]files.StagedFile{}
	if !ws.Empty || !root {
		run.event(runner.StageStaging, ws.HostDir)
		pr, pw := io.Pipe()
		written := make(chan struct{})
		go func() {
			defer close(written)
			var extra []string
			if ws.OutputRel != "" {
				extra = []string{ws.OutputRel}
			}
			pw.CloseWithError(files.WriteTar(ctx, pw, ws.HostDir, files.TarOptions{
				Prefix: path.Base(ws.ContainerDir) + "/", ExtraDirs: extra, Shared: !root,
				OnFile: func(rel string, f files.StagedFile) { v.staging.Files[rel] = f },
			}))
		}()
		_, err := run.r.cli.CopyToContainer(ctx, run.c.ContainerID, client.CopyToContainerOptions{
			DestinationPath: path.Dir(ws.ContainerDir),
			Content:         pr,
		})
		pr.CloseWithError(err) // unblocks the writer if the engine stopped reading
		<-written
		if err != nil {
			return engineError(run.r, "copy input files into the container", err)
		}
	}
	if ws.OutputRel != "" {
		// Compared after the run to skip copying back an untouched output
		// directory; without it the directory is always copied.
		if st, err := run.r.cli.ContainerStatPath(ctx, run.c.ContainerID, client.ContainerStatPathOptions{Path: ws.OutputDir()}); err == nil {
			v.outputMod = st.Stat.Mtime
		}
	}
	return nil
}

// Collect copies the output files back ([volumeFiles.copyOut]) and lists
// what it wrote.
func (v *volumeFiles) Collect(ctx context.Context, res *runner.Result) ([]string, error) {
	if err := v.copyOut(ctx, res); err != nil {
		return nil, err
	}
	return v.staging.Fill(res), nil
}

// Tidy has nothing to undo: the container never saw the host directory.
func (v *volumeFiles) Tidy(context.Context, *runner.Result) error { return nil }

// Discard has nothing to undo.
func (v *volumeFiles) Discard() {}

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
