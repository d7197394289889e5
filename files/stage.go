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
	"sort"
	"strings"

	"github.com/lading-dev/lading/runner"
)

var errNotRegular = errors.New("not a regular file")

// copyBufferSize is the buffer every copy uses: large enough to keep disk and
// socket busy, small enough to stay far below the memory targets.
const copyBufferSize = 1 << 20

// LocalPath cleans a relative path given by a user or a tar entry and
// reports whether it stays inside its directory: not absolute, no "..", not
// empty. It returns the path with forward slashes.
func LocalPath(name string) (string, bool) {
	name = strings.ReplaceAll(name, "\\", "/")
	if name == "" || strings.HasPrefix(name, "/") {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
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

// StageOptions controls [Stage].
type StageOptions struct {
	// Shared makes the directories Stage creates writable by all (0o777)
	// and the files readable and writable by all (0o666), for a container
	// user who does not own them (a bind-mounted working directory).
	Shared bool
}

// Stage writes each input into dir, creating nested directories; an
// existing file of the same name is replaced. Keys are paths relative to
// dir; a key that is empty, absolute, contains "..", or would go through a
// symbolic link out of dir is refused with a [*runner.FieldError] matching
// [runner.ErrInvalidTask]. Contents are streamed.
func Stage(ctx context.Context, dir string, inputs map[string]runner.Source, opts StageOptions) error {
	if len(inputs) == 0 {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("files: open working directory: %w", err)
	}
	defer root.Close()
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		names = append(names, name)
	}
	sort.Strings(names)
	buf := make([]byte, copyBufferSize)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, ok := LocalPath(name)
		if !ok {
			return &runner.FieldError{Field: "inputFiles", Value: name, Problem: "must be a relative path inside the working directory", Err: runner.ErrInvalidTask}
		}
		if err := stageOne(ctx, root, rel, inputs[name], buf, opts.Shared); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
				return &runner.FieldError{Field: "inputFiles", Value: name, Problem: "goes through a symbolic link out of the working directory", Err: runner.ErrInvalidTask}
			}
			return fmt.Errorf("files: stage input %q: %w", name, err)
		}
	}
	return nil
}

func stageOne(ctx context.Context, root *os.Root, rel string, src runner.Source, buf []byte, shared bool) error {
	dirMode, fileMode := fs.FileMode(0o755), fs.FileMode(0o644)
	if shared {
		dirMode, fileMode = 0o777, 0o666
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
	if err := removeFile(root, rel); err != nil {
		return err
	}
	in, err := src.Open()
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(out, ctxReader{ctx, in}, buf)
	if err == nil && shared {
		err = out.Chmod(fileMode)
	}
	return errors.Join(err, out.Close())
}

// removeFile removes a file or symbolic link at rel, so that it is replaced
// rather than written through. A directory there is an error.
func removeFile(root *os.Root, rel string) error {
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory", rel)
	}
	return root.Remove(rel)
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
