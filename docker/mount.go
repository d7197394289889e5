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

	"github.com/moby/moby/client"

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

// shareMount prepares the MOUNT working directory once the container is
// created, before the start: a caller's directory is recorded as used by
// this run (so that the last run using it makes it safe: acquireLease), and
// a non-root container user is given what it must write, or, when lading
// cannot change owners, what lading made is opened to all for the run.
func (run *run) shareMount(ctx context.Context, ws *workspace) error {
	g := &grant{}
	ws.grant = g
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
	root, err := os.OpenRoot(ws.hostDir)
	if err != nil {
		return fmt.Errorf("docker: working directory: %w", err)
	}
	defer root.Close()
	var rels []string
	if ws.outputRel != "" {
		rels = append(rels, ws.outputRel)
	}
	rels = append(rels, ws.made...)

	topGiven, topHandled := false, false
	if !ws.created {
		want := -1
		if nonRoot && uerr == nil {
			want = uid
		}
		l, given, err := acquireLease(ctx, ws.hostDir, run.id, run.r.owner, want, gid)
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
	if top, err := os.Stat(ws.hostDir); uerr == nil && err == nil {
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
	if !ws.created && !topGiven {
		fi, err := os.Stat(ws.hostDir)
		if err != nil {
			return fmt.Errorf("docker: working directory: %w", err)
		}
		if !writableBy(fi, uid, gid) {
			return &runner.FieldError{Field: "workingDir", Value: ws.hostDir,
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
	copied, err := run.r.cli.CopyFromContainer(ctx, run.containerID, client.CopyFromContainerOptions{SourcePath: "/etc/passwd"})
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

// tidy is the post-run hygiene step (MOUNT): it gives back what shareMount
// gave the container's user, then makes the tree safe (files.Sanitize),
// adding what it did to res.Warnings. It runs on a fresh context bounded
// like every cleanup, so that a cancelled or timed-out run is tidied too,
// and looks at no more than files.DefaultMaxSanitizeEntries entries. When
// it cannot finish, the working directory is left with mode 0700 (closed to
// everyone but its owner) and the error says so.
func (run *run) tidy(ctx context.Context, ws *workspace, res *runner.Result) error {
	if run.r.strategy() != FileHandlingMount {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	warnings, err := ws.release(ctx)
	res.Warnings = append(res.Warnings, warnings...)
	return err
}

// release gives the working directory back and makes it safe, returning
// the warnings to report. While other runs still use a caller's directory,
// only this run's output directory is made safe: the last run to finish
// does the rest. It is idempotent.
func (ws *workspace) release(ctx context.Context) ([]string, error) {
	var warnings []string
	var errs []error
	g := ws.grant
	ws.grant = nil
	last := true
	if g != nil {
		warnings = append(warnings, g.warnings...)
	}
	if !ws.created {
		var l *lease
		if g != nil {
			l = g.lease
		}
		var unlock func()
		var err error
		last, unlock, err = releaseLease(ctx, ws.hostDir, l)
		if err != nil {
			errs = append(errs, err)
		}
		defer unlock() // after the walk: no run starts while it goes on
	}
	if g != nil {
		if err := g.giveBack(ws.hostDir); err != nil {
			errs = append(errs, err)
		}
	}
	dir := ws.hostDir
	if !last {
		warnings = append(warnings, "working directory: other runs still use it; the last of them to finish makes it safe (this run's output directory is)")
		if ws.outputRel == "" {
			return warnings, errors.Join(errs...)
		}
		dir = filepath.Join(ws.hostDir, ws.outputRel)
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
