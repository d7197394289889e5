package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
)

// CollectGracePeriod is how long the collection of output files may go on
// once the run's context is done (the caller cancelled, or
// [runner.Task.Timeout] was reached), whether that happened while the
// script ran (a stopped run still gets the files it made up to then) or
// during the collection itself. Collection that is still going on then is
// cut off: what it had copied is removed and Run's error matches the
// context's cause. Before the context is done, collection is bounded by it
// alone.
const CollectGracePeriod = core.CollectGracePeriod

// changedPaths asks the engine which paths of the working directory the
// container's own file system holds (added or modified since the image),
// relative to the working directory; the output directory, a volume, is
// left out. ok is false when the engine cannot say (no such endpoint, an
// error, or a list that does not hold the working directory, which the
// engine made): the caller then copies the glob roots.
func (v *volumeFiles) changedPaths(ctx context.Context) (paths map[string]bool, ok bool) {
	run, ws := v.run, v.ws
	changes, err := run.changes(ctx)
	if err != nil {
		run.log.Debug("container changes unavailable; copying the glob roots", "error", err)
		return nil, false
	}
	paths = map[string]bool{}
	sawWork := false
	for _, c := range changes {
		if c.Kind == container.ChangeDelete {
			continue
		}
		if c.Path == run.c.WS.ContainerDir {
			sawWork = true
			continue
		}
		rel, under := strings.CutPrefix(c.Path, run.c.WS.ContainerDir+"/")
		if !under {
			continue
		}
		rel, valid := files.LocalPath(rel)
		if !valid || (ws.OutputRel != "" && (rel == ws.OutputRel || strings.HasPrefix(rel, ws.OutputRel+"/"))) {
			continue
		}
		paths[rel] = true
	}
	if !sawWork {
		return nil, false
	}
	return paths, true
}

// maxChangesBytes bounds the list of a container's changes lading reads:
// it is as long as the script made it (every path it changed, anywhere).
// Past it, collection copies the glob roots.
const maxChangesBytes = 32 << 20

// changes returns the container's changes under the working directory.
// On a unix socket it streams the list and keeps only those, so a script
// that changed millions of paths elsewhere costs no memory; elsewhere the
// client reads the list whole.
func (run *run) changes(ctx context.Context) ([]container.FilesystemChange, error) {
	sock, local := strings.CutPrefix(run.r.cli.DaemonHost(), "unix://")
	if !local {
		diff, err := run.r.cli.ContainerDiff(ctx, run.c.ContainerID, client.ContainerDiffOptions{})
		return diff.Changes, err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	u := "http://engine/containers/" + url.PathEscape(run.c.ContainerID) + "/changes"
	if v := run.r.cli.ClientVersion(); v != "" {
		u = "http://engine/v" + v + "/containers/" + url.PathEscape(run.c.ContainerID) + "/changes"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	body := &io.LimitedReader{R: resp.Body, N: maxChangesBytes + 1}
	dec := json.NewDecoder(body)
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if tok == nil {
		return nil, nil // null: no changes
	} else if tok != json.Delim('[') {
		return nil, fmt.Errorf("GET %s: not a list", req.URL.Path)
	}
	var out []container.FilesystemChange
	for dec.More() {
		var c container.FilesystemChange
		if err := dec.Decode(&c); err != nil {
			if body.N <= 0 {
				return nil, fmt.Errorf("the list of the container's changes is longer than %d bytes", maxChangesBytes)
			}
			return nil, err
		}
		if c.Path == run.c.WS.ContainerDir || strings.HasPrefix(c.Path, run.c.WS.ContainerDir+"/") {
			out = append(out, c)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// rootsWithoutLinks keeps the roots whose parents in the container are all
// real directories. The engine's archive follows symbolic links in the
// parent part of a path (only the last element is taken as it is), so a
// root under a link would bring back what the link points to; one stat per
// directory, from the working directory down, finds the links. A root under
// a link holds no match, since links are never followed.
func (run *run) rootsWithoutLinks(ctx context.Context, roots []string) []string {
	real := map[string]bool{}
	realDir := func(dir string) bool {
		ok, known := real[dir]
		if !known {
			st, err := run.r.cli.ContainerStatPath(ctx, run.c.ContainerID, client.ContainerStatPathOptions{Path: path.Join(run.c.WS.ContainerDir, dir)})
			ok = err == nil && st.Stat.Mode.IsDir() && st.Stat.LinkTarget == ""
			real[dir] = ok
		}
		return ok
	}
	var out []string
	for _, root := range roots {
		if root == "" { // the working directory itself is taken as it is
			out = append(out, root)
			continue
		}
		ok := realDir("")
		if parent := path.Dir(root); ok && parent != "." {
			d := ""
			for _, part := range strings.Split(parent, "/") {
				if d = path.Join(d, part); !realDir(d) {
					ok = false
					break
				}
			}
		}
		if ok {
			out = append(out, root)
		}
	}
	return out
}

// copyRoot copies one path of the working directory (rel, "" for all of
// it) out of the container into the host working directory.
// stop, when set, ends the copy early ([files.ExtractOptions.Stop]).
func (v *volumeFiles) copyRoot(ctx context.Context, rel string, changed map[string]bool, decide func(string, *tar.Header) files.Decision,
	stop func(string) bool, left *core.OutputLimits, res *runner.Result, sawOutput *bool) (*files.Extraction, []string, error) {
	ws := v.ws
	opts := files.ExtractOptions{Decide: decide, Stop: stop, Filter: func(p string) bool {
		if ws.OutputRel != "" && strings.HasPrefix(p, ws.OutputRel+"/") {
			*sawOutput = true
			return rel == "" // the output volume inside a copy of the whole working directory (Docker)
		}
		if rel != "" && p != rel && !strings.HasPrefix(p, rel+"/") {
			return false
		}
		if changed != nil && !changed[p] {
			return false
		}
		return ws.Matcher.Match(p)
	}}
	src := v.ws.ContainerDir
	if rel == "" {
		opts.StripPrefix = path.Base(v.ws.ContainerDir) + "/"
	} else {
		src += "/" + rel
		if under := path.Dir(rel); under != "." {
			opts.Under = under
		}
	}
	return v.extract(ctx, src, ws.HostDir, opts, left, res)
}

// isNotFound reports whether err is the engine's answer for a path that is
// not in the container.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

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
func (v *volumeFiles) copyOut(ctx context.Context, res *runner.Result) (err error) {
	run, ws := v.run, v.ws
	globs := !ws.Matcher.Empty()
	wantOutput := ws.OutputRel != "" && v.outputDirWritten(ctx)
	if !globs && !wantOutput {
		return nil
	}
	run.event(runner.StageCollecting, ws.HostDir)
	left := run.c.OutputLimits()
	hostRoot, err := os.OpenRoot(ws.HostDir)
	if err != nil {
		return fmt.Errorf("docker: collect output files: %w", err)
	}
	defer hostRoot.Close()
	decide := v.staging.Decide(hostRoot, ws.OutputRel)

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
		changed, ok := v.changedPaths(ctx)
		if ok {
			roots, want = core.PlanCopies(changed, ws.Matcher), core.WantedLeaves(changed, ws.Matcher)
		} else {
			roots = run.rootsWithoutLinks(ctx, ws.Matcher.Roots())
		}
		for _, rel := range roots {
			var stop func(string) bool
			if want != nil && (rel != "" || !wantOutput) {
				// (A copy of the whole working directory may carry the
				// output directory's files, which the list leaves out.)
				stop = core.StopWhenDone(rel, want)
			}
			x, paths, err := v.copyRoot(ctx, rel, changed, decide, stop, &left, res, &sawOutput)
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
		x, paths, err := v.extract(ctx, ws.OutputDir()+"/.", ws.HostDir, files.ExtractOptions{Under: ws.OutputRel}, &left, res)
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
	v.staging.Record(ws, written)
	return nil
}

// extract copies src out of the container into dest within the limits
// left ([core.State.Extract]).
func (v *volumeFiles) extract(ctx context.Context, src, dest string, opts files.ExtractOptions, left *core.OutputLimits, res *runner.Result) (*files.Extraction, []string, error) {
	run := v.run
	return run.c.Extract(ctx, src, func() (io.ReadCloser, error) {
		copied, err := run.r.cli.CopyFromContainer(ctx, run.c.ContainerID, client.CopyFromContainerOptions{SourcePath: src})
		if isNotFound(err) {
			return nil, nil // a glob root the script did not make
		}
		return copied.Content, err
	}, dest, opts, left, res)
}

// outputDirWritten reports whether the script may have written into the
// output directory: true unless the directory still has the modification
// time noted before the start (adding or removing an entry changes it, and
// the script starts long after the engine made the directory). Any doubt, an
// error included, answers true, so no output is ever skipped.
func (v *volumeFiles) outputDirWritten(ctx context.Context) bool {
	run, ws := v.run, v.ws
	if v.outputWritten != nil {
		return *v.outputWritten
	}
	if v.outputMod.IsZero() {
		return true
	}
	st, err := run.r.cli.ContainerStatPath(ctx, run.c.ContainerID, client.ContainerStatPathOptions{Path: ws.OutputDir()})
	return err != nil || !st.Stat.Mtime.Equal(v.outputMod)
}
