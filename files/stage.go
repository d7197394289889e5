package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lading-dev/lading/runner"
)

// copyBufferSize is the size of the one buffer each call copies through:
// large enough to keep a disk or a socket busy, small enough to stay far
// below any memory budget.
const copyBufferSize = 1 << 20

// maxNameLen bounds the length of a path Stage or Extract accepts (Linux's
// PATH_MAX), so that a hostile name cannot make thousands of directories.
const maxNameLen = 4096

// LocalPath cleans name, a relative path given by a user or a tar entry, and
// reports whether it is safe to use inside a directory: not empty, not
// absolute, no ".." element (split at "/" and at "\", so "..\x" is refused on
// every platform), no NUL, at most 4096 bytes, and local by
// [filepath.IsLocal] once cleaned. It returns the cleaned path with forward
// slashes ("./a//b" gives "a/b").
func LocalPath(name string) (string, bool) {
	if name == "" || len(name) > maxNameLen || strings.ContainsRune(name, 0) || name[0] == '/' || name[0] == '\\' {
		return "", false
	}
	for part := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return "", false
		}
	}
	clean := path.Clean(name)
	if clean == "." || !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", false
	}
	return clean, true
}

// StageOptions changes how [Stage] writes. The zero value is the default.
type StageOptions struct {
	// Shared makes the directories Stage creates writable by all (0o777)
	// and the files it writes readable and writable by all (their mode |
	// 0o666, and executable by all when the owner may execute them), for a
	// container user who does not own them. Otherwise directories are
	// 0o755 less the umask, and files get their mode (see [Stage]).
	Shared bool
}

// Stage writes each input into the host directory dir, which must exist.
// Keys are paths relative to dir with forward slashes ("a.txt",
// "test/application.yml"); nested directories are created. A file or
// symbolic link already at a key is removed and the file created anew
// (never written through), so two runs can share a working directory.
//
// Every key is checked before anything is written. A key that is empty,
// absolute, ends in "/", contains a ".." element or NUL, is not
// [filepath.IsLocal], names the same file as another key (as "a" and "./a"
// do), or is a file that another key puts a file under, is refused with a
// [*runner.FieldError] for "inputFiles" with the key as Value, matching
// [runner.ErrInvalidTask]. So is a key that leads through a symbolic link
// out of dir, or names a directory there; all writes go through an
// [os.Root] opened on dir, so nothing is ever written outside it.
//
// A file gets its source's permission bits when the source is a
// [runner.ModeSource] ([HostFile], [WithMode]), exactly (not filtered by the
// umask) but without the group and other write bits, so that no other local
// user may change an input; a mode with bits outside 0o777 (setuid, setgid,
// sticky, a type) is refused like a bad key. Other sources give 0o644 less
// the umask.
//
// Inputs are written in the order of their keys, each streamed through one
// 1 MiB buffer; ctx is checked between files and during each copy. On error,
// the inputs already written stay (and a partly written one is removed).
// opts is optional: at most one StageOptions.
func Stage(ctx context.Context, dir string, inputs map[string]Source, opts ...StageOptions) error {
	var o StageOptions
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		return errors.New("files: Stage takes at most one StageOptions")
	}
	if len(inputs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(inputs))
	for key := range inputs {
		keys = append(keys, key)
	}
	slices.Sort(keys)

	rels := make(map[string]string, len(keys)) // cleaned path -> key
	modes := make(map[string]fs.FileMode, len(keys))
	for _, key := range keys {
		rel, problem := stageKey(key)
		if problem == "" && inputs[key] == nil {
			problem = "has no source"
		}
		if ms, ok := inputs[key].(runner.ModeSource); ok && problem == "" {
			mode := ms.Mode()
			if mode&^fs.ModePerm != 0 {
				problem = fmt.Sprintf("has mode %v: only the permission bits 0o777 may be set, never setuid, setgid or sticky", mode)
			}
			modes[key] = mode & 0o755
		}
		if other, dup := rels[rel]; problem == "" && dup {
			problem = fmt.Sprintf("names the same file as %q", other)
		}
		if problem != "" {
			return invalidInput(key, problem)
		}
		rels[rel] = key
	}
	for _, key := range keys {
		rel, _ := LocalPath(key)
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if other, ok := rels[d]; ok {
				return invalidInput(other, fmt.Sprintf("is a file, but %q puts a file under it", key))
			}
		}
	}

	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("files: open working directory: %w", err)
	}
	defer root.Close()
	buf := make([]byte, copyBufferSize)
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := LocalPath(key)
		mode, exact := modes[key]
		if !exact {
			mode = 0o644
		}
		if err := stageOne(ctx, root, key, rel, inputs[key], buf, fileMode{mode, exact, o.Shared}); err != nil {
			var fe *runner.FieldError
			switch {
			case errors.As(err, &fe):
				return err
			case throughEscapingLink(root, rel):
				return invalidInput(key, "leads through a symbolic link out of the working directory")
			}
			return fmt.Errorf("files: stage input %q: %w", key, err)
		}
	}
	return nil
}

// stageKey cleans an input key, or says what is wrong with it.
func stageKey(key string) (rel, problem string) {
	switch {
	case key == "":
		return "", "must not be empty"
	case strings.HasPrefix(key, "/") || strings.HasPrefix(key, `\`) || filepath.IsAbs(key):
		return "", "must be relative to the working directory, not absolute"
	case strings.ContainsRune(key, 0):
		return "", "must not contain NUL"
	case strings.HasSuffix(key, "/"):
		return "", "must name a file, not a directory"
	case len(key) > maxNameLen:
		return "", fmt.Sprintf("is longer than %d bytes", maxNameLen)
	}
	rel, ok := LocalPath(key)
	if !ok {
		return "", `must stay inside the working directory (no ".." element)`
	}
	return rel, ""
}

func invalidInput(key, problem string) error {
	return &runner.FieldError{Field: "inputFiles", Value: key, Problem: problem, Err: runner.ErrInvalidTask}
}

// fileMode is how a staged file's mode is set.
type fileMode struct {
	perm   fs.FileMode
	exact  bool // set with chmod, past the umask
	shared bool // StageOptions.Shared
}

func stageOne(ctx context.Context, root *os.Root, key, rel string, src Source, buf []byte, fm fileMode) error {
	shared := fm.shared
	dirMode, fileMode := fs.FileMode(0o755), fm.perm
	if shared {
		dirMode, fileMode = 0o777, sharedMode(fileMode)
	}
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, dirMode); err != nil {
			return err
		}
		if shared { // MkdirAll's mode is filtered by the umask
			for d := dir; d != "."; d = path.Dir(d) {
				if err := root.Chmod(d, dirMode); err != nil {
					return err
				}
			}
		}
	}
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.IsDir():
		return invalidInput(key, "is a directory in the working directory")
	default: // a file, or a link: replaced, never written through
		if err := root.Remove(rel); err != nil {
			return err
		}
	}
	in, err := src.Open()
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer in.Close()
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(writerOnly{out}, ctxReader{ctx, in}, buf)
	if err == nil && (shared || fm.exact) {
		err = out.Chmod(fileMode) // the create mode was filtered by the umask
	}
	if err = errors.Join(err, out.Close()); err != nil {
		_ = root.Remove(rel)
	}
	return err
}

// throughEscapingLink reports whether a parent of rel in root is a symbolic
// link that cannot be followed inside root. It only explains a failure: the
// Root is what keeps every write inside.
func throughEscapingLink(root *os.Root, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		fi, err := root.Lstat(p)
		if err != nil {
			return false
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if _, err := root.Stat(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return true
			}
		}
	}
	return false
}

// sharedMode is the mode of a file shared with a user who does not own it:
// readable and writable by all, and executable by all when its owner may
// execute it.
func sharedMode(m fs.FileMode) fs.FileMode {
	m = m.Perm() | 0o666
	if m&0o100 != 0 {
		m |= 0o111
	}
	return m
}
