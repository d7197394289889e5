package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/files"
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
const CollectGracePeriod = 10 * time.Second

// maxCopies bounds the archive calls of one collection (each costs tens of
// milliseconds whatever it carries): past it, paths that share a directory
// are copied as that directory, and the entries of it that are not wanted
// are read and dropped.
const maxCopies = 8

// maxConflictWarnings bounds the warnings about files changed on the host
// while the run ran; the rest are counted.
const maxConflictWarnings = 100

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

// collectError wraps err, an error met while collecting, with the cause of
// cctx when cctx is done, so a cut-off collection matches the run's cause.
func collectError(cctx context.Context, err error) error {
	if cause := context.Cause(cctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("docker: collect output files: %w (%w)", cause, err)
	}
	return fmt.Errorf("docker: collect output files: %w", err)
}

// changedPaths asks the engine which paths of the working directory the
// container's own file system holds (added or modified since the image),
// relative to the working directory; the output directory, a volume, is
// left out. ok is false when the engine cannot say (no such endpoint, an
// error, or a list that does not hold the working directory, which the
// engine made): the caller then copies the glob roots.
func (run *run) changedPaths(ctx context.Context, ws *workspace) (paths map[string]bool, ok bool) {
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
		if c.Path == ContainerWorkingDir {
			sawWork = true
			continue
		}
		rel, under := strings.CutPrefix(c.Path, ContainerWorkingDir+"/")
		if !under {
			continue
		}
		rel, valid := files.LocalPath(rel)
		if !valid || (ws.outputRel != "" && (rel == ws.outputRel || strings.HasPrefix(rel, ws.outputRel+"/"))) {
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
		diff, err := run.r.cli.ContainerDiff(ctx, run.containerID, client.ContainerDiffOptions{})
		return diff.Changes, err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	u := "http://engine/containers/" + url.PathEscape(run.containerID) + "/changes"
	if v := run.r.cli.ClientVersion(); v != "" {
		u = "http://engine/v" + v + "/containers/" + url.PathEscape(run.containerID) + "/changes"
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
		if c.Path == ContainerWorkingDir || strings.HasPrefix(c.Path, ContainerWorkingDir+"/") {
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
			st, err := run.r.cli.ContainerStatPath(ctx, run.containerID, client.ContainerStatPathOptions{Path: path.Join(ContainerWorkingDir, dir)})
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

// wantedLeaves returns the changed paths that are not directories (no other
// changed path is under them) and that m matches: the files a collection
// expects.
func wantedLeaves(changed map[string]bool, m *files.Matcher) map[string]bool {
	dirs := map[string]bool{}
	for p := range changed {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	want := map[string]bool{}
	for p := range changed {
		if !dirs[p] && m.Match(p) {
			want[p] = true
		}
	}
	return want
}

// stopWhenDone returns an [files.ExtractOptions.Stop] for a copy of root
// ("" for the whole working directory) that ends it once every path of
// want under root has gone by: the rest of the stream holds nothing wanted.
func stopWhenDone(root string, want map[string]bool) func(string) bool {
	expected := 0
	for p := range want {
		if root == "" || p == root || strings.HasPrefix(p, root+"/") {
			expected++
		}
	}
	seen := 0
	return func(rel string) bool {
		if want[rel] {
			seen++
			return false
		}
		return seen >= expected
	}
}

// planCopies returns the paths of the working directory to copy out so
// that every changed path the matcher wants comes back and, as far as
// maxCopies allows, nothing else is read: a directory whose changed
// entries are all wanted is copied whole, one with an unwanted entry is
// split. "" is the whole working directory.
func planCopies(changed map[string]bool, m *files.Matcher) []string {
	dirs := map[string]bool{}
	for p := range changed {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirty, wanted := map[string]bool{}, map[string]bool{}
	mark := func(set map[string]bool, p string) {
		for set[p] = true; p != ""; {
			if p = path.Dir(p); p == "." {
				p = ""
			}
			set[p] = true
		}
	}
	for p := range changed {
		if dirs[p] {
			continue
		}
		if m.Match(p) {
			mark(wanted, p)
		} else {
			mark(dirty, p)
		}
	}
	if !wanted[""] {
		return nil
	}
	if !dirty[""] {
		return []string{""}
	}
	var roots []string
	for p := range wanted {
		parent := path.Dir(p)
		if parent == "." {
			parent = ""
		}
		if p != "" && !dirty[p] && dirty[parent] {
			roots = append(roots, p)
		}
	}
	slices.Sort(roots)
	for len(roots) > maxCopies {
		// Merge the roots of the parent that has the most of them.
		count := map[string]int{}
		best := ""
		for _, r := range roots {
			parent := path.Dir(r)
			if parent == "." {
				parent = ""
			}
			count[parent]++
			if count[parent] > count[best] || (count[parent] == count[best] && len(parent) > len(best)) {
				best = parent
			}
		}
		merged := []string{best}
		for _, r := range roots {
			if best != "" && r != best && !strings.HasPrefix(r, best+"/") {
				merged = append(merged, r)
			}
		}
		slices.Sort(merged)
		roots = merged
	}
	return roots
}

// staging is what the run sent into the container and what collection
// brings back (VOLUME).
type staging struct {
	known    bool                        // the run staged what is in files (false for a resumed run)
	files    map[string]files.StagedFile // path relative to the working directory -> what was sent
	outputs  map[string]string           // key -> host path, what the collection wrote
	globbed  []string                    // paths (relative to the working directory) written for the globs
	warnings []string
	more     int // conflict warnings not listed
}

func (s *staging) conflict(rel, what string) {
	if len(s.warnings) < maxConflictWarnings {
		s.warnings = append(s.warnings, fmt.Sprintf("output %s: %s while the run ran (another run on the same working directory?); the host's file is kept and this run's is not collected", rel, what))
	} else {
		s.more++
	}
}

// decide returns the [files.ExtractOptions.Decide] of a VOLUME collection:
// a file comes back only when the container created or changed it, and
// never over a host file that changed since it was staged. The output
// directory is the run's own: everything in it comes back. hostRoot is the
// host working directory.
func (s *staging) decide(hostRoot *os.Root, outputRel string) func(rel string, hdr *tar.Header) files.Decision {
	return func(rel string, hdr *tar.Header) files.Decision {
		if !s.known || (outputRel != "" && strings.HasPrefix(rel, outputRel+"/")) {
			return files.Write
		}
		sent, wasStaged := s.files[rel]
		host, err := hostRoot.Lstat(rel)
		if !wasStaged {
			if errors.Is(err, fs.ErrNotExist) {
				return files.Write // the container made it, and the host has none
			}
			s.conflict(rel, "a file was created on the host")
			return files.Skip
		}
		hostSame := err == nil && host.Mode().IsRegular() && host.Size() == sent.Size && host.ModTime().Equal(sent.ModTime)
		// The tar carries whole seconds: a time within a second of the one
		// sent is the one sent, and the content decides.
		entrySame := hdr.Size == sent.Size && hdr.ModTime.Sub(sent.ModTime).Abs() < time.Second &&
			fs.FileMode(hdr.Mode).Perm() == sent.Mode
		switch {
		case !hostSame && entrySame:
			return files.Skip // the container left it as staged; the host's is newer
		case !hostSame && errors.Is(err, fs.ErrNotExist):
			s.conflict(rel, "the file was removed from the host")
			return files.Skip
		case !hostSame:
			s.conflict(rel, "the file was also changed on the host")
			return files.Skip
		case entrySame:
			return files.WriteIfChanged
		}
		return files.Write
	}
}

// copyRoot copies one path of the working directory (rel, "" for all of
// it) out of the container into the host working directory.
// stop, when set, ends the copy early ([files.ExtractOptions.Stop]).
func (run *run) copyRoot(ctx context.Context, ws *workspace, rel string, changed map[string]bool, decide func(string, *tar.Header) files.Decision,
	stop func(string) bool, left *outputLimits, res *runner.Result, sawOutput *bool) (*files.Extraction, []string, error) {
	opts := files.ExtractOptions{Decide: decide, Stop: stop, Filter: func(p string) bool {
		if ws.outputRel != "" && strings.HasPrefix(p, ws.outputRel+"/") {
			*sawOutput = true
			return rel == "" // the output volume inside a copy of the whole working directory (Docker)
		}
		if rel != "" && p != rel && !strings.HasPrefix(p, rel+"/") {
			return false
		}
		if changed != nil && !changed[p] {
			return false
		}
		return ws.matcher.Match(p)
	}}
	src := ContainerWorkingDir
	if rel == "" {
		opts.StripPrefix = path.Base(ContainerWorkingDir) + "/"
	} else {
		src += "/" + rel
		if under := path.Dir(rel); under != "." {
			opts.Under = under
		}
	}
	return run.extract(ctx, src, ws.hostDir, opts, left, res)
}

// listOutputs fills res.OutputFiles with what the run produced: under
// VOLUME what the collection wrote, under MOUNT what the snapshot taken
// before the start says was created or changed, within the output limits.
// It returns the paths (relative to the working directory) that came from
// the globs.
func (run *run) listOutputs(ctx context.Context, ws *workspace, res *runner.Result) (globbed []string, err error) {
	if run.r.strategy() == FileHandlingVolume {
		res.OutputFiles = ws.staging.outputs
		if res.OutputFiles == nil {
			res.OutputFiles = map[string]string{}
		}
		globbed = ws.staging.globbed
		res.Warnings = append(res.Warnings, ws.staging.warnings...)
		if ws.staging.more > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%d more output files changed on the host while the run ran were not collected", ws.staging.more))
		}
	} else {
		if ws.snapshotErr != nil {
			res.Warnings = append(res.Warnings, "no snapshot of the working directory before the start ("+ws.snapshotErr.Error()+"): every file the globs match counts as the run's")
		}
		left := run.outputLimits()
		c, err := files.CollectChanged(ctx, ws.hostDir, ws.matcher, files.CollectOptions{
			Under: []string{ws.outputRel}, Since: ws.snapshot, MaxBytes: left.bytes, MaxFiles: left.files})
		if errors.Is(err, files.ErrLimit) {
			return nil, collectError(ctx, errors.Join(err, run.removeOverLimit(ws, c)))
		}
		if err != nil {
			return nil, collectError(ctx, err)
		}
		res.OutputFiles, globbed = c.Files, c.Globbed
	}
	return globbed, nil
}

// dropRemoved takes out of res.OutputFiles, and of globbed, the files that
// are no longer regular files on the host: the hygiene step (tidy) removes
// what it cannot make safe. It returns what is left of globbed.
func dropRemoved(ws *workspace, res *runner.Result, globbed []string) []string {
	for key, p := range res.OutputFiles {
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			delete(res.OutputFiles, key)
		}
	}
	return slices.DeleteFunc(globbed, func(rel string) bool {
		fi, err := os.Lstat(ws.hostPath(rel))
		return err != nil || !fi.Mode().IsRegular()
	})
}

// warnUnmatched adds a warning for each output glob that matched none of
// globbed, the files the run produced.
func (run *run) warnUnmatched(ws *workspace, globbed []string, res *runner.Result) {
	patterns := ws.matcher.Patterns()
	for _, i := range ws.matcher.Unmatched(globbed) {
		glob := fmt.Sprintf("%q", run.task.OutputFiles[i])
		if patterns[i] != run.task.OutputFiles[i] {
			glob += fmt.Sprintf(" (%q)", patterns[i])
		}
		res.Warnings = append(res.Warnings, "output glob "+glob+" matched no file the run created or changed")
	}
}

// removeOverLimit removes, under MOUNT, what a collection over the output
// limits would have handed back and the run created: the output directory
// and the new files the globs match. Files that were there before the run
// and were changed in place are left: removing them would destroy the
// caller's files.
func (run *run) removeOverLimit(ws *workspace, c files.Collected) error {
	root, err := os.OpenRoot(ws.hostDir)
	if err != nil {
		return err
	}
	defer root.Close()
	var errs []error
	for _, rel := range c.Created {
		if ws.outputRel != "" && strings.HasPrefix(rel, ws.outputRel+"/") {
			continue
		}
		if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if ws.outputRel != "" {
		if err := root.RemoveAll(ws.outputRel); err != nil {
			errs = append(errs, err)
		}
	}
	if kept := len(c.Files) - len(c.Created); kept > 0 {
		errs = append(errs, fmt.Errorf("removed the files the run created; left as the script left them, files that existed before the run and were changed in place: %d", kept))
	}
	return errors.Join(errs...)
}

// outputLimits returns the configured output limits, defaults applied.
func (run *run) outputLimits() outputLimits {
	left := outputLimits{bytes: run.r.cfg.MaxOutputBytes, files: run.r.cfg.MaxOutputFiles}
	if left.bytes <= 0 {
		left.bytes = files.DefaultMaxBytes
	}
	if left.files <= 0 {
		left.files = files.DefaultMaxFiles
	}
	return left
}

// isNotFound reports whether err is the engine's answer for a path that is
// not in the container.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// hostPath is the host path of rel, a path relative to the working
// directory.
func (ws *workspace) hostPath(rel string) string {
	return filepath.Join(ws.hostDir, filepath.FromSlash(rel))
}
