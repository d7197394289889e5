package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Ignore files, looked for at the top of the context in this order: the
// first present is read, the other is an ordinary file.
const (
	ContainerIgnore = ".containerignore"
	DockerIgnore    = ".dockerignore"
)

// maxSmallFile caps what is read whole: an ignore file, a Containerfile.
const maxSmallFile = 4 << 20

// Context is a build context opened from a [Spec]: its directory, the
// Containerfile and the ignore patterns. Open it with [Open], close it with
// Close. Its methods walk the directory anew on each call, so a file
// changed between two calls is seen by the second; it is safe for
// concurrent use.
//
// # What is sent
//
// Every file, directory and symbolic link under the directory that the
// ignore file (.containerignore, else .dockerignore) does not exclude,
// with the patterns, `!` exceptions and pruning of
// github.com/moby/patternmatcher exactly as the docker CLI applies them
// (`docker build`'s context walk): an excluded directory is not entered
// unless an exception names a path under it; its files that an exception
// re-includes are sent without the directory's own entry. As the CLI does,
// the Containerfile and the ignore file are always sent even when
// excluded; the engine needs them (and the Docker engine itself hides them
// from COPY when .dockerignore excludes them).
//
// Files are sent owned by 0:0 with their permission bits and
// modification time, as the CLI sends them; symbolic links are sent as
// links with their target as written and never followed, so nothing
// outside the directory is read, whatever a link points at (the directory
// is opened as an [os.Root]). Sockets are skipped, as the CLI does; a
// device or named pipe is refused. Hard links are sent as separate files.
type Context struct {
	spec          Spec
	dir           string
	root          *os.Root
	containerfile string // slash path, relative to dir
	ignoreFile    string // ContainerIgnore, DockerIgnore or ""
	pm            *patternmatcher.PatternMatcher
}

// Open resolves spec's context directory, finds its Containerfile and reads
// its ignore file. spec should be valid ([Spec.Validate]); the problems
// found on the disk are [*runner.FieldError]s matching [ErrInvalidSpec].
func Open(spec Spec) (*Context, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(spec.Context)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return nil, invalid("context", spec.Context, "cannot be resolved: "+pathProblem(err))
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, invalid("context", spec.Context, "is not a directory")
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, invalid("context", spec.Context, "cannot be opened: "+pathProblem(err))
	}
	c := &Context{spec: spec, dir: dir, root: root}
	if err := c.findContainerfile(); err != nil {
		root.Close()
		return nil, err
	}
	if err := c.readIgnore(); err != nil {
		root.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the directory.
func (c *Context) Close() error { return c.root.Close() }

// Dir returns the context's directory, absolute and with links resolved.
func (c *Context) Dir() string { return c.dir }

// Containerfile returns the build file's path relative to the directory,
// with slashes: what the engine is told to read.
func (c *Context) Containerfile() string { return c.containerfile }

// IgnoreFile returns the name of the ignore file read, or "".
func (c *Context) IgnoreFile() string { return c.ignoreFile }

func (c *Context) findContainerfile() error {
	if c.spec.Containerfile == "" {
		for _, name := range []string{"Containerfile", "Dockerfile"} {
			if fi, err := c.root.Stat(name); err == nil && fi.Mode().IsRegular() {
				c.containerfile = name
				return nil
			}
		}
		return invalid("containerfile", "", "no Containerfile or Dockerfile at the top of the context "+c.dir)
	}
	name := path.Clean(filepath.ToSlash(c.spec.Containerfile))
	fi, err := c.root.Stat(name)
	switch {
	case err != nil:
		return invalid("containerfile", c.spec.Containerfile, "cannot be read in the context: "+pathProblem(err))
	case !fi.Mode().IsRegular():
		return invalid("containerfile", c.spec.Containerfile, "is not a regular file")
	}
	c.containerfile = name
	return nil
}

func (c *Context) readIgnore() error {
	var patterns []string
	for _, name := range []string{ContainerIgnore, DockerIgnore} {
		data, err := c.readSmall(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return invalid("context", c.spec.Context, name+" cannot be read: "+pathProblem(err))
		}
		if patterns, err = ignorefile.ReadAll(bytes.NewReader(data)); err != nil {
			return invalid("context", c.spec.Context, name+": "+err.Error())
		}
		c.ignoreFile = name
		break
	}
	if len(patterns) == 0 {
		return nil
	}
	// As the docker CLI does (TrimBuildFilesFromExcludes): the ignore file
	// and the Containerfile are sent even when the patterns exclude them.
	for _, keep := range []string{c.ignoreFile, c.containerfile} {
		if excluded, _ := patternmatcher.Matches(keep, patterns); excluded {
			patterns = append(patterns, "!"+keep)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return invalid("context", c.spec.Context, c.ignoreFile+": "+err.Error())
	}
	c.pm = pm
	return nil
}

// readSmall reads a file of the context whole, up to maxSmallFile,
// following links only inside the context.
func (c *Context) readSmall(name string) ([]byte, error) {
	f, err := c.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err == nil && len(data) > maxSmallFile {
		err = fmt.Errorf("larger than %d MiB", maxSmallFile>>20)
	}
	return data, err
}

// ReadContainerfile returns the Containerfile's content (at most 4 MiB).
func (c *Context) ReadContainerfile() ([]byte, error) {
	data, err := c.readSmall(c.containerfile)
	if err != nil {
		return nil, fmt.Errorf("build: read %s: %w", c.containerfile, err)
	}
	return data, nil
}

// Digest returns the digest of what decides the build, "sha256:<hex>":
// every entry that [Context.WriteTar] sends (type, path, permission bits,
// size, link target and content; not modification times or owners), the
// Containerfile's path, the args (secret args by name only), the target,
// the platform and the labels. It reads every file sent, without keeping
// any in memory. Two contexts with the same digest build the same image
// from the same base images; the pull policy and NoCache are not part of it.
func (c *Context) Digest(ctx context.Context) (string, error) {
	return c.walk(ctx, nil)
}

// WriteTar writes the context to w as an uncompressed tar stream, one file
// at a time, and returns the same digest as [Context.Digest] computed on
// what it wrote (so a caller who computed the digest first can tell whether
// the directory changed in between). It stops when ctx is done.
func (c *Context) WriteTar(ctx context.Context, w io.Writer) (string, error) {
	tw := tar.NewWriter(w)
	digest, err := c.walk(ctx, tw)
	if err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("build: send context: %w", err)
	}
	return digest, nil
}

// Files returns the paths WriteTar sends, in order, with a "/" after a
// directory's.
func (c *Context) Files(ctx context.Context) ([]string, error) {
	var names []string
	w := &walker{c: c, ctx: ctx, h: sha256.New(), onEntry: func(h *tar.Header) { names = append(names, h.Name) }}
	if err := w.dir(".", patternmatcher.MatchInfo{}); err != nil {
		return nil, err
	}
	return names, nil
}

func (c *Context) walk(ctx context.Context, tw *tar.Writer) (string, error) {
	h := sha256.New()
	io.WriteString(h, "lading-build v1\n")
	w := &walker{c: c, ctx: ctx, tw: tw, h: h, buf: make([]byte, 64<<10)}
	if err := w.dir(".", patternmatcher.MatchInfo{}); err != nil {
		return "", err
	}
	secretNames := make([]string, 0, len(c.spec.SecretArgs))
	for k := range c.spec.SecretArgs {
		secretNames = append(secretNames, k)
	}
	slices.Sort(secretNames)
	tail, err := json.Marshal(struct {
		Containerfile string            `json:"containerfile"`
		Args          map[string]string `json:"args"`
		SecretArgs    []string          `json:"secretArgs"`
		Target        string            `json:"target"`
		Platform      string            `json:"platform"`
		Labels        map[string]string `json:"labels"`
	}{c.containerfile, c.spec.Args, secretNames, c.spec.Target, strings.ToLower(c.spec.Platform), c.spec.Labels})
	if err != nil {
		return "", err
	}
	io.WriteString(h, "spec ")
	h.Write(tail)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// walker is one walk of a context.
type walker struct {
	c       *Context
	ctx     context.Context
	tw      *tar.Writer // nil: digest only
	h       hash.Hash
	buf     []byte
	onEntry func(*tar.Header) // for Files: no content is read
}

// dir walks the directory rel (slash path, "." for the top), whose own
// match result is parent, in lexical order as filepath.WalkDir does.
func (w *walker) dir(rel string, parent patternmatcher.MatchInfo) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	f, err := w.c.root.Open(rel)
	if err != nil {
		return w.fail(rel, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return w.fail(rel, err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		name := e.Name()
		if rel != "." {
			name = rel + "/" + name
		}
		skip, info := false, patternmatcher.MatchInfo{}
		if w.c.pm != nil {
			skip, info, err = w.c.pm.MatchesUsingParentResults(name, parent)
			if err != nil {
				return fmt.Errorf("build: match %s against %s: %w", name, w.c.ignoreFile, err)
			}
		}
		isDir := e.IsDir()
		if skip {
			if !isDir || !w.mayReinclude(name) {
				continue
			}
			// Excluded, but an exception may name something under it:
			// walk it without sending the directory itself, as the CLI.
			if err := w.dir(name, info); err != nil {
				return err
			}
			continue
		}
		if err := w.entry(name); err != nil {
			return err
		}
		if isDir {
			if err := w.dir(name, info); err != nil {
				return err
			}
		}
	}
	return nil
}

// mayReinclude reports whether an exception pattern starts with dir, the
// CLI's test for walking an excluded directory.
func (w *walker) mayReinclude(dir string) bool {
	if !w.c.pm.Exclusions() {
		return false
	}
	for _, p := range w.c.pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dir+"/") {
			return true
		}
	}
	return false
}

// entry sends one entry.
func (w *walker) entry(name string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	fi, err := w.c.root.Lstat(name)
	if err != nil {
		return w.fail(name, err)
	}
	hdr := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime().Truncate(time.Second)}
	if fi.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	kind := byte('f')
	switch m := fi.Mode(); {
	case m.IsDir():
		kind, hdr.Typeflag, hdr.Name = 'd', tar.TypeDir, name+"/"
	case m&fs.ModeSymlink != 0:
		target, err := w.c.root.Readlink(name)
		if err != nil {
			return w.fail(name, err)
		}
		kind, hdr.Typeflag, hdr.Linkname = 'l', tar.TypeSymlink, target
	case m.IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case m&fs.ModeSocket != 0:
		return nil // the CLI skips sockets too
	default:
		return fmt.Errorf("build: context: %s is a %s, which a build context cannot hold", name, kindOf(m))
	}
	if w.onEntry != nil {
		w.onEntry(hdr)
		return nil
	}
	fmt.Fprintf(w.h, "%c %q %o %d %q\n", kind, name, hdr.Mode, hdr.Size, hdr.Linkname)
	if w.tw != nil {
		if err := w.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("build: send context: %w", err)
		}
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	return w.content(name, hdr.Size)
}

// content sends a regular file's size bytes.
func (w *walker) content(name string, size int64) error {
	f, err := w.c.root.Open(name)
	if err != nil {
		return w.fail(name, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("build: context: %s changed while being read", name)
	}
	var out io.Writer = w.h
	if w.tw != nil {
		out = io.MultiWriter(w.tw, w.h)
	}
	n, err := io.CopyBuffer(out, &ctxReader{ctx: w.ctx, r: io.LimitReader(f, size)}, w.buf)
	switch {
	case err != nil && w.ctx.Err() != nil:
		return w.ctx.Err()
	case err != nil:
		return w.fail(name, err)
	case n < size:
		return fmt.Errorf("build: context: %s shrank while being read (%d of %d bytes)", name, n, size)
	}
	return nil
}

func (w *walker) fail(name string, err error) error {
	if ctxErr := w.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return fmt.Errorf("build: context: %s: %s", name, pathProblem(err))
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file (" + m.String() + ")"
}

// pathProblem says what is wrong with a path without repeating the
// absolute path the caller already names.
func pathProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// BaseImages returns the images a Containerfile's FROM lines name, in
// order and without repeats, leaving out "scratch", earlier stages named
// with AS, and references holding a variable ("$"), which only the engine
// can expand. The engine is given registry credentials for these.
func BaseImages(containerfile []byte) []string {
	var images []string
	stages := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(containerfile))
	sc.Buffer(make([]byte, 64<<10), maxSmallFile)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.EqualFold(fields[0], "FROM") {
			continue
		}
		args := fields[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		if len(args) == 0 {
			continue
		}
		image := args[0]
		if !strings.Contains(image, "$") && !strings.EqualFold(image, "scratch") && !stages[strings.ToLower(image)] && !slices.Contains(images, image) {
			images = append(images, image)
		}
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
	}
	return images
}
