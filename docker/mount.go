package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/core"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// Under MOUNT the container writes straight into the host working directory.
// Two things follow, both handled here:
//
//   - A script that does not run as root must be able to write there. For
//     the run, lading gives the container's user (its numeric uid, read
//     from the image's /etc/passwd for a user name) the working directory,
//     the output directory and what it staged (files, and the directories
//     it made for them); when Run returns they have their old owner and
//     mode back, a caller's directory exactly. When lading cannot change
//     owners (it does not run as root), it opens what it made to all
//     (0o777, files 0o666) for the run instead, with a warning, and closes
//     it again after; a caller's directory the user cannot write is then an
//     error before the start.
//   - When Run returns, nothing the container left under the working
//     directory is a device, FIFO or socket (removed), setuid or setgid,
//     sticky, or writable by group or others (bits cleared), or, when lading
//     runs as root, owned by a user other than root and the directory's
//     owner (given to the directory's owner): see [files.Sanitize].
//
// Runs may share a caller's working directory. Lading running as root keeps
// a record of the runs using it in the directory's trusted.lading.runs
// extended attribute (which a container cannot write), under a flock: the
// first run notes the directory's own owner and mode, and the last one to
// finish puts them back and walks the whole tree; the others make only
// their own output directory safe. Runs sharing a directory must then run
// as the same user. Without the record (lading not root, or a file system
// without extended attributes), each run handles the directory as its own.

// grantWarnLimit bounds the warnings of each kind the hygiene step adds.
const grantWarnLimit = 10

// grant is what lading changed so that the container's user can write the
// working directory, and what to put back.
type grant struct {
	entries  []granted // the run's own: what lading made (the top too, when it made it)
	chowned  bool      // given to the user; else opened to all
	warnings []string  // for the Result
	lease    *lease    // a caller's directory, shared with the other runs using it; nil when not recorded
}

// granted is one entry of a grant, as it was before.
type granted struct {
	rel      string
	dev, ino uint64
	uid, gid int
	mode     fs.FileMode
}

// madeByStage returns the paths (relative to dir, slash-separated) that
// staging inputs will create: the input files, and their parent
// directories that do not exist yet.
func madeByStage(dir string, inputs map[string]runner.Source) []string {
	var made []string
	seen := map[string]bool{}
	for key := range inputs {
		rel, ok := files.LocalPath(key)
		if !ok {
			continue // Stage refuses it
		}
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if seen[d] {
				break
			}
			if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(d))); err == nil {
				break
			}
			seen[d] = true
			made = append(made, d)
		}
		if !seen[rel] {
			seen[rel] = true
			made = append(made, rel)
		}
	}
	return made
}

// mountFiles is the MOUNT strategy: the host working directory is
// bind-mounted, so nothing is copied; the engine must see the host's file
// system.
type mountFiles struct {
	run         *run
	ws          *core.Workspace
	made        []string        // what staging made, for a non-root user
	grant       *grant          // what the container's user was given, until given back
	snapshot    *files.Snapshot // the files the globs can match before the start, nil without globs
	snapshotErr error           // why there is no snapshot
}

func (m *mountFiles) mounts(map[string]string) []mount.Mount {
	return []mount.Mount{{Type: mount.TypeBind, Source: m.ws.HostDir, Target: m.ws.ContainerDir}}
}

// Stage writes the task's input files into the host working directory and
// makes the output directory there. With a non-root user it notes what it
// makes, which the user is given once the container exists (shareMount).
func (m *mountFiles) Stage(ctx context.Context) error {
	inputs := m.run.c.Task.InputFiles
	if !m.run.runsAsRoot() {
		m.made = madeByStage(m.ws.HostDir, inputs)
	}
	if err := m.ws.Stage(ctx, inputs); err != nil {
		return err
	}
	return m.ws.MakeOutputDir()
}

// CopyIn checks that the engine sees the host directory, shares it with
// the run, and notes the files the output globs can match, so that those
// there before the start are not taken for the run's.
func (m *mountFiles) CopyIn(ctx context.Context) error {
	if err := m.checkMount(ctx); err != nil {
		return err
	}
	if !m.ws.Matcher.Empty() {
		// What is there before the start is not the run's output.
		m.snapshot, m.snapshotErr = files.TakeSnapshot(ctx, m.ws.HostDir, m.ws.Matcher)
	}
	return nil
}

// Collect lists in res.OutputFiles what the snapshot taken before the start
// says was created or changed, within the output limits.
func (m *mountFiles) Collect(ctx context.Context, res *runner.Result) ([]string, error) {
	ws := m.ws
	if m.snapshotErr != nil {
		res.Warnings = append(res.Warnings, "no snapshot of the working directory before the start ("+m.snapshotErr.Error()+"): every file the globs match counts as the run's")
	}
	left := m.run.c.OutputLimits()
	c, err := files.CollectChanged(ctx, ws.HostDir, ws.Matcher, files.CollectOptions{
		Under: []string{ws.OutputRel}, Since: m.snapshot, MaxBytes: left.Bytes, MaxFiles: left.Files})
	if errors.Is(err, files.ErrLimit) {
		return nil, m.run.c.CollectError(ctx, errors.Join(err, m.removeOverLimit(c)))
	}
	if err != nil {
		return nil, m.run.c.CollectError(ctx, err)
	}
	res.OutputFiles = c.Files
	return c.Globbed, nil
}

// Discard gives a caller's directory back what the container's user was
// given, and makes it safe, for a run without a result.
func (m *mountFiles) Discard() {
	if m.grant != nil && !m.ws.Created {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_, _ = m.release(ctx)
	}
}

// checkMount fails clearly when the engine cannot see the host working
// directory (a remote engine, or one in another mount namespace): a marker
// file written on the host must show in the created container. Then it
// shares the directory with the run (shareMount): a caller's directory is
// registered as in use, and a script that does not run as root is given
// what it must write.
func (m *mountFiles) checkMount(ctx context.Context) error {
	run, ws := m.run, m.ws
	marker := ".lading-mount-" + run.c.ID
	if err := os.WriteFile(filepath.Join(ws.HostDir, marker), nil, 0o644); err != nil {
		return fmt.Errorf("docker: MOUNT check: %w", err)
	}
	defer os.Remove(filepath.Join(ws.HostDir, marker))
	_, err := run.r.cli.ContainerStatPath(ctx, run.c.ContainerID, client.ContainerStatPathOptions{Path: run.c.WS.ContainerDir + "/" + marker})
	if cerrdefs.IsNotFound(err) {
		return &runner.FieldError{Field: "fileHandlingStrategy", Value: string(FileHandlingMount),
			Problem: fmt.Sprintf("the engine does not see the host directory %s (is it remote, or in another mount namespace?); use VOLUME", ws.HostDir),
			Err:     runner.ErrInvalidConfig}
	}
	if err != nil {
		return engineError(run.r, "check the mounted working directory", err)
	}
	return m.shareMount(ctx)
}

// removeOverLimit removes, under MOUNT, what a collection over the output
// limits would have handed back and the run created: the output directory
// and the new files the globs match. Files that were there before the run
// and were changed in place are left: removing them would destroy the
// caller's files.
func (m *mountFiles) removeOverLimit(c files.Collected) error {
	ws := m.ws
	root, err := os.OpenRoot(ws.HostDir)
	if err != nil {
		return err
	}
	defer root.Close()
	var errs []error
	for _, rel := range c.Created {
		if ws.OutputRel != "" && strings.HasPrefix(rel, ws.OutputRel+"/") {
			continue
		}
		if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if ws.OutputRel != "" {
		if err := root.RemoveAll(ws.OutputRel); err != nil {
			errs = append(errs, err)
		}
	}
	if kept := len(c.Files) - len(c.Created); kept > 0 {
		errs = append(errs, fmt.Errorf("removed the files the run created; left as the script left them, files that existed before the run and were changed in place: %d", kept))
	}
	return errors.Join(errs...)
}

// shareMount prepares the MOUNT working directory once the container is
// created, before the start: a caller's directory is recorded as used by
// this run (so that the last run using it makes it safe: acquireLease), and
// a non-root container user is given what it must write, or, when lading
// cannot change owners, what lading made is opened to all for the run.
func (m *mountFiles) shareMount(ctx context.Context) error {
	run, ws := m.run, m.ws
	g := &grant{}
	m.grant = g
	uid, gid := -1, -1
	var uerr error
	user := run.r.cfg.User
	if user == "" {
		user = run.imageUser
	}
	nonRoot := !run.runsAsRoot()
	if nonRoot {
		uid, gid, uerr = run.containerUser(ctx, user)
	}
	root, err := os.OpenRoot(ws.HostDir)
	if err != nil {
		return fmt.Errorf("docker: working directory: %w", err)
	}
	defer root.Close()
	var rels []string
	if ws.OutputRel != "" {
		rels = append(rels, ws.OutputRel)
	}
	rels = append(rels, m.made...)

	topGiven, topHandled := false, false
	if !ws.Created {
		want := -1
		if nonRoot && uerr == nil {
			want = uid
		}
		l, given, err := acquireLease(ctx, ws.HostDir, run.c.ID, run.r.owner, want, gid)
		if err != nil {
			return err
		}
		if l != nil {
			g.lease, topGiven, topHandled = l, given, true
		}
	}
	if !topHandled {
		rels = append([]string{"."}, rels...)
	}
	for _, rel := range rels {
		fi, err := root.Lstat(rel)
		if err != nil {
			continue // not made after all
		}
		e := granted{rel: rel, mode: fi.Mode()}
		var ok bool
		if e.uid, e.gid, e.dev, e.ino, ok = statOwner(fi); !ok {
			e.uid, e.gid = -1, -1
		}
		g.entries = append(g.entries, e)
	}
	if !nonRoot {
		return nil
	}
	if top, err := os.Stat(ws.HostDir); uerr == nil && err == nil {
		if _, _, _, _, known := statOwner(top); !known {
			uerr = errors.New("lading cannot read owners on this system")
		}
	}
	if uerr == nil {
		chown := func() error {
			for _, e := range g.entries {
				if err := root.Lchown(e.rel, uid, gid); err != nil {
					return err
				}
			}
			return nil
		}
		switch err := chown(); {
		case err == nil && (topGiven || !topHandled):
			g.chowned = true
			return nil
		case err == nil: // a caller's directory lading could not give away
			g.chowned = true
			uerr = errors.New("lading does not run as root, so it cannot change owners")
		case errors.Is(err, fs.ErrPermission):
			uerr = errors.New("lading does not run as root, so it cannot change owners")
		default:
			return fmt.Errorf("docker: give the working directory to the container's user %s: %w", user, err)
		}
	}
	if !ws.Created && !topGiven {
		fi, err := os.Stat(ws.HostDir)
		if err != nil {
			return fmt.Errorf("docker: working directory: %w", err)
		}
		if !writableBy(fi, uid, gid) {
			return &runner.FieldError{Field: "workingDir", Value: ws.HostDir,
				Problem: fmt.Sprintf("the container's user %s cannot write it (mode %v) and lading cannot give it to that user (%v): make it writable by that user, run the host program as root, or use fileHandlingStrategy VOLUME", user, fi.Mode(), uerr),
				Err:     runner.ErrInvalidTask}
		}
	}
	if g.chowned {
		return nil
	}
	// Fallback: open what lading made to all, for the run only.
	g.warnings = append(g.warnings, fmt.Sprintf("MOUNT: the container's user %s could not be given the working directory (%v), so what lading made there was open to every local user (mode 0777) while the task ran", user, uerr))
	for _, e := range g.entries {
		mode := fs.FileMode(0o777)
		if !e.mode.IsDir() {
			mode = e.mode.Perm() | 0o666
			if mode&0o100 != 0 {
				mode |= 0o111
			}
		}
		if err := root.Chmod(e.rel, mode); err != nil {
			return fmt.Errorf("docker: working directory: %w", err)
		}
	}
	return nil
}

// writableBy reports whether the user uid:gid (-1: unknown) may write the
// directory fi by its mode.
func writableBy(fi fs.FileInfo, uid, gid int) bool {
	m := fi.Mode().Perm()
	ouid, ogid, _, _, ok := statOwner(fi)
	switch {
	case ok && uid >= 0 && uid == ouid:
		return m&0o300 == 0o300
	case ok && gid >= 0 && gid == ogid:
		return m&0o030 == 0o030
	}
	return m&0o003 == 0o003
}

// containerUser returns the numeric uid and gid (-1 when not known) of
// user ("name", "uid", "name:group", "uid:gid"). A name is looked up in the
// created container's /etc/passwd, one copy from the container.
func (run *run) containerUser(ctx context.Context, user string) (uid, gid int, err error) {
	name, group, _ := strings.Cut(user, ":")
	gid = -1
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil && n >= 0 {
			gid = n
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, gid, nil
	}
	if name == "" {
		return -1, -1, errors.New("the image's user is not known")
	}
	uid, pgid, err := run.lookupPasswd(ctx, name)
	if err != nil {
		return -1, -1, err
	}
	if group == "" {
		gid = pgid
	}
	return uid, gid, nil
}

// maxPasswdSize bounds the /etc/passwd lading reads from an image.
const maxPasswdSize = 1 << 20

// lookupPasswd finds name in the container's /etc/passwd.
func (run *run) lookupPasswd(ctx context.Context, name string) (uid, gid int, err error) {
	copied, err := run.r.cli.CopyFromContainer(ctx, run.c.ContainerID, client.CopyFromContainerOptions{SourcePath: "/etc/passwd"})
	if err != nil {
		return -1, -1, fmt.Errorf("read the image's /etc/passwd: %w", err)
	}
	defer copied.Content.Close()
	tr := tar.NewReader(copied.Content)
	hdr, err := tr.Next()
	if err != nil {
		return -1, -1, fmt.Errorf("read the image's /etc/passwd: %w", err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size > maxPasswdSize {
		return -1, -1, errors.New("the image's /etc/passwd is not a regular file of at most 1 MiB")
	}
	sc := bufio.NewScanner(io.LimitReader(tr, maxPasswdSize))
	sc.Buffer(make([]byte, 0, 4096), maxPasswdSize)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || f[0] != name {
			continue
		}
		u, uerr := strconv.Atoi(f[2])
		g, gerr := strconv.Atoi(f[3])
		if uerr != nil || gerr != nil || u < 0 || g < 0 {
			return -1, -1, fmt.Errorf("the image's /etc/passwd has a bad entry for %s", name)
		}
		return u, g, nil
	}
	if err := sc.Err(); err != nil {
		return -1, -1, fmt.Errorf("read the image's /etc/passwd: %w", err)
	}
	return -1, -1, fmt.Errorf("user %s is not in the image's /etc/passwd", name)
}

// giveBack puts back the owner and mode of the run's own entries that
// shareMount changed, when each is still the same entry (same device and
// inode): directories get their old owner and mode exactly, files their old
// owner (and, when they were opened to all, their old mode).
func (g *grant) giveBack(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("docker: give the working directory back: %w", err)
	}
	defer root.Close()
	var errs []error
	for _, e := range g.entries {
		fi, err := root.Lstat(e.rel)
		if err != nil {
			continue
		}
		uid, gid, dev, ino, ok := statOwner(fi)
		if (ok && e.uid >= 0 && (dev != e.dev || ino != e.ino)) || fi.Mode().Type() != e.mode.Type() {
			continue // replaced by the container: the hygiene walk sees to it
		}
		if ok && e.uid >= 0 && (uid != e.uid || gid != e.gid) {
			if err := root.Lchown(e.rel, e.uid, e.gid); err != nil {
				errs = append(errs, err)
			}
		}
		if e.mode.IsDir() || !g.chowned {
			if err := root.Chmod(e.rel, e.mode); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("docker: give the working directory back: %w", err)
	}
	return nil
}

// Tidy is the post-run hygiene step: it gives back what shareMount
// gave the container's user, then makes the tree safe (files.Sanitize),
// adding what it did to res.Warnings. It runs on a fresh context bounded
// like every cleanup, so that a cancelled or timed-out run is tidied too,
// and looks at no more than files.DefaultMaxSanitizeEntries entries. When
// it cannot finish, the working directory is left with mode 0700 (closed to
// everyone but its owner) and the error says so.
func (m *mountFiles) Tidy(ctx context.Context, res *runner.Result) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	warnings, err := m.release(ctx)
	res.Warnings = append(res.Warnings, warnings...)
	return err
}

// release gives the working directory back and makes it safe, returning
// the warnings to report. While other runs still use a caller's directory,
// only this run's output directory is made safe: the last run to finish
// does the rest. It is idempotent.
func (m *mountFiles) release(ctx context.Context) ([]string, error) {
	ws := m.ws
	var warnings []string
	var errs []error
	g := m.grant
	m.grant = nil
	last := true
	if g != nil {
		warnings = append(warnings, g.warnings...)
	}
	if !ws.Created {
		var l *lease
		if g != nil {
			l = g.lease
		}
		var unlock func()
		var err error
		last, unlock, err = releaseLease(ctx, ws.HostDir, l)
		if err != nil {
			errs = append(errs, err)
		}
		defer unlock() // after the walk: no run starts while it goes on
	}
	if g != nil {
		if err := g.giveBack(ws.HostDir); err != nil {
			errs = append(errs, err)
		}
	}
	dir := ws.HostDir
	if !last {
		warnings = append(warnings, "working directory: other runs still use it; the last of them to finish makes it safe (this run's output directory is)")
		if ws.OutputRel == "" {
			return warnings, errors.Join(errs...)
		}
		dir = filepath.Join(ws.HostDir, ws.OutputRel)
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			return warnings, errors.Join(errs...)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return warnings, errors.Join(append(errs, fmt.Errorf("docker: working directory: %w", err))...)
	}
	uid, gid, _, _, known := statOwner(fi)
	st, serr := files.Sanitize(ctx, dir, files.SanitizeOptions{Owner: known && os.Geteuid() == 0, UID: uid, GID: gid})
	warnings = append(warnings, listed("removed %q, a device, FIFO or socket the task left", st.Removed)...)
	warnings = append(warnings, listed("cleared the setuid and setgid bits of %q", st.Cleared)...)
	if st.Restricted > 0 {
		warnings = append(warnings, fmt.Sprintf("working directory: removed the group and other write permission (and sticky bit) from %d entries", st.Restricted))
	}
	if len(st.Failed) > 0 {
		serr = errors.Join(serr, fmt.Errorf("%d entries could not be made safe: %s", len(st.Failed), strings.Join(st.Failed[:min(len(st.Failed), grantWarnLimit)], "; ")))
	}
	if serr != nil {
		if lockErr := os.Chmod(dir, 0o700); lockErr != nil {
			serr = errors.Join(serr, lockErr)
		}
		errs = append(errs, fmt.Errorf("docker: working directory %s: %w; it is left with mode 0700, closed to other users", dir, serr))
	}
	return warnings, errors.Join(errs...)
}

// listed returns one warning per path, at most grantWarnLimit, and a count
// of the rest.
func listed(format string, paths []string) []string {
	var out []string
	for i, p := range paths {
		if i == grantWarnLimit {
			out = append(out, fmt.Sprintf("working directory: and %d more like that", len(paths)-i))
			break
		}
		out = append(out, "working directory: "+fmt.Sprintf(format, p))
	}
	return out
}
