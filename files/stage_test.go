package files_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

func TestStage(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host.txt")
	require.NoError(t, os.WriteFile(host, []byte("from host"), 0o644))
	tests := []struct {
		name   string
		before map[string]string // files already in dir
		inputs map[string]files.Source
		want   map[string]string
	}{
		{"string", nil, map[string]files.Source{"a.txt": files.String("A")}, map[string]string{"a.txt": "A"}},
		{"every source", nil, map[string]files.Source{
			"hello.txt":            files.String("Hello World"),
			"test/application.yml": files.Bytes([]byte("a: 1\n")),
			"host.txt":             files.HostFile(host),
			"stream.bin":           files.Reader(strings.NewReader("streamed")),
		}, map[string]string{"hello.txt": "Hello World", "test/application.yml": "a: 1\n", "host.txt": "from host", "stream.bin": "streamed"}},
		{"nested directories", nil, map[string]files.Source{"a/b/c/d.txt": files.String("deep")}, map[string]string{"a/b/c/d.txt": "deep"}},
		{"replaces an existing file, keeps the others", map[string]string{"a.txt": "old", "b.txt": "other"},
			map[string]files.Source{"a.txt": files.String("new")}, map[string]string{"a.txt": "new", "b.txt": "other"}},
		{"into an existing directory", map[string]string{"test/old.yml": "old"},
			map[string]files.Source{"test/application.yml": files.String("new")}, map[string]string{"test/old.yml": "old", "test/application.yml": "new"}},
		{"cleans the key", nil, map[string]files.Source{"./x//y.txt": files.String("y")}, map[string]string{"x/y.txt": "y"}},
		{"a name with dots is not ..", nil, map[string]files.Source{"a..b/..c": files.String("d")}, map[string]string{"a..b/..c": "d"}},
		{"empty content", nil, map[string]files.Source{"empty": files.String("")}, map[string]string{"empty": ""}},
		{"no inputs", map[string]string{"a": "a"}, nil, map[string]string{"a": "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.before)
			require.NoError(t, files.Stage(t.Context(), dir, tt.inputs))
			assert.Equal(t, tt.want, tree(t, dir))
		})
	}

	t.Run("two runs share a working directory", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"in.txt": files.String("first")}))
		writeFiles(t, dir, map[string]string{"out.txt": "written by the first run"})
		require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"in.txt": files.String("second")}))
		assert.Equal(t, map[string]string{"in.txt": "second", "out.txt": "written by the first run"}, tree(t, dir))
	})
	t.Run("modes", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"d/f": files.String("x")}))
		assertMode(t, filepath.Join(dir, "d"), 0o755&^umask())
		assertMode(t, filepath.Join(dir, "d/f"), 0o644&^umask())
		shared := t.TempDir()
		require.NoError(t, files.Stage(t.Context(), shared, map[string]files.Source{"d/f": files.String("x")}, files.StageOptions{Shared: true}))
		assertMode(t, filepath.Join(shared, "d"), 0o777)
		assertMode(t, filepath.Join(shared, "d/f"), 0o666)
	})
	t.Run("more than one StageOptions", func(t *testing.T) {
		err := files.Stage(t.Context(), t.TempDir(), map[string]files.Source{"a": files.String("a")}, files.StageOptions{}, files.StageOptions{})
		require.Error(t, err)
	})
}

func assertMode(t *testing.T, p string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	require.NoError(t, err)
	assert.Equal(t, want, fi.Mode().Perm(), p)
}

func TestStageRefused(t *testing.T) {
	tests := []struct {
		name    string
		inputs  map[string]files.Source
		value   string // the key the error names
		problem string
	}{
		{"empty", map[string]files.Source{"": files.String("x")}, "", "empty"},
		{"absolute", map[string]files.Source{"/etc/passwd": files.String("x")}, "/etc/passwd", "absolute"},
		{"absolute into the victim", nil, "", "absolute"}, // filled in below with the victim's path
		{"dot dot", map[string]files.Source{"../victim/keep": files.String("x")}, "../victim/keep", ".."},
		{"nested dot dot", map[string]files.Source{"a/../../victim/keep": files.String("x")}, "a/../../victim/keep", ".."},
		{"dot dot that stays inside", map[string]files.Source{"a/../b": files.String("x")}, "a/../b", ".."},
		{"only dot dot", map[string]files.Source{"..": files.String("x")}, "..", ".."},
		{"backslash dot dot", map[string]files.Source{`..\victim\keep`: files.String("x")}, `..\victim\keep`, ".."},
		{"dot", map[string]files.Source{".": files.String("x")}, ".", ".."},
		{"trailing slash", map[string]files.Source{"dir/": files.String("x")}, "dir/", "directory"},
		{"NUL", map[string]files.Source{"a\x00b": files.String("x")}, "a\x00b", "NUL"},
		{"too long", map[string]files.Source{strings.Repeat("a/", 2049) + "a": files.String("x")}, strings.Repeat("a/", 2049) + "a", "longer"},
		{"no source", map[string]files.Source{"a": nil}, "a", "no source"},
		{"same file twice", map[string]files.Source{"a.txt": files.String("1"), "./a.txt": files.String("2")}, "a.txt", "same file"},
		{"file and directory", map[string]files.Source{"a": files.String("1"), "a/b": files.String("2")}, "a", "puts a file under it"},
		{"through a relative symlink out", map[string]files.Source{"rel/keep": files.String("x")}, "rel/keep", "symbolic link"},
		{"through a relative symlink, new file", map[string]files.Source{"rel/new": files.String("x")}, "rel/new", "symbolic link"},
		{"through a symlink, new directories", map[string]files.Source{"rel/d/e/new": files.String("x")}, "rel/d/e/new", "symbolic link"},
		{"through an absolute symlink", map[string]files.Source{"abs/keep": files.String("x")}, "abs/keep", "symbolic link"},
		{"through a symlink to a directory of the victim", map[string]files.Source{"sub/x/inner": files.String("x")}, "sub/x/inner", "symbolic link"},
		{"a directory in the working directory", map[string]files.Source{"existing": files.String("x")}, "existing", "directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest, victim, unchanged := sandbox(t)
			require.NoError(t, os.Symlink("../victim", filepath.Join(dest, "rel")))
			require.NoError(t, os.Symlink(victim, filepath.Join(dest, "abs")))
			require.NoError(t, os.Mkdir(filepath.Join(dest, "sub"), 0o755))
			require.NoError(t, os.Symlink("../../victim/sub", filepath.Join(dest, "sub", "x")))
			require.NoError(t, os.Mkdir(filepath.Join(dest, "existing"), 0o755))
			inputs, value := tt.inputs, tt.value
			if inputs == nil {
				value = filepath.Join(victim, "keep")
				inputs = map[string]files.Source{value: files.String("x")}
			}
			before := snapshot(t, dest)

			err := files.Stage(t.Context(), dest, inputs)
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "inputFiles", fe.Field)
			assert.Equal(t, value, fe.Value)
			assert.Contains(t, fe.Problem, tt.problem)
			unchanged()
			after := snapshot(t, dest)
			for k := range before {
				assert.Equal(t, before[k], after[k], "pre-existing %s", k)
			}
		})
	}
}

func TestStageNeverWritesThrough(t *testing.T) {
	for _, link := range []string{"../victim/keep", "ABS"} {
		t.Run(link, func(t *testing.T) {
			dest, victim, unchanged := sandbox(t)
			if link == "ABS" {
				link = filepath.Join(victim, "keep")
			}
			require.NoError(t, os.Symlink(link, filepath.Join(dest, "file")))
			require.NoError(t, os.Link(filepath.Join(victim, "sub", "inner"), filepath.Join(dest, "hard")))
			require.NoError(t, files.Stage(t.Context(), dest, map[string]files.Source{"file": files.String("new"), "hard": files.String("new")}))
			unchanged()
			assert.Equal(t, map[string]string{"file": `file 644 "new"`, "hard": `file 644 "new"`}, snapshot(t, dest))
		})
	}
}

func TestStageSources(t *testing.T) {
	t.Run("a Reader is read once", func(t *testing.T) {
		src := files.Reader(strings.NewReader("once"))
		dir := t.TempDir()
		require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"a": src}))
		err := files.Stage(t.Context(), dir, map[string]files.Source{"b": src})
		require.ErrorIs(t, err, files.ErrSourceUsed)
		assert.Equal(t, map[string]string{"a": "once"}, tree(t, dir))
	})
	t.Run("String and Bytes can be staged again", func(t *testing.T) {
		s, b := files.String("s"), files.Bytes([]byte("b"))
		for range 2 {
			dir := t.TempDir()
			require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"s": s, "b": b}))
			assert.Equal(t, map[string]string{"s": "s", "b": "b"}, tree(t, dir))
		}
	})
	t.Run("a missing host file", func(t *testing.T) {
		err := files.Stage(t.Context(), t.TempDir(), map[string]files.Source{"a": files.HostFile(filepath.Join(t.TempDir(), "absent"))})
		require.ErrorIs(t, err, fs.ErrNotExist)
		assert.Contains(t, err.Error(), `"a"`)
	})
	t.Run("a host directory or FIFO", func(t *testing.T) {
		fifo := filepath.Join(t.TempDir(), "fifo")
		require.NoError(t, mkfifo(fifo))
		for _, p := range []string{t.TempDir(), fifo} {
			dir := t.TempDir()
			err := files.Stage(t.Context(), dir, map[string]files.Source{"a": files.HostFile(p)})
			require.Error(t, err)
			assert.Empty(t, tree(t, dir), "no partial file left")
		}
	})
	t.Run("a failing reader leaves no partial file", func(t *testing.T) {
		dir := t.TempDir()
		boom := errors.New("boom")
		err := files.Stage(t.Context(), dir, map[string]files.Source{"a": files.Reader(io.MultiReader(strings.NewReader("part"), errReader{boom}))})
		require.ErrorIs(t, err, boom)
		assert.Empty(t, tree(t, dir))
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// endless yields zero bytes forever, and cancels after a number of bytes.
type endless struct {
	n, cancelAt int64
	cancel      context.CancelFunc
}

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.n += int64(len(p))
	if e.n >= e.cancelAt {
		e.cancel()
	}
	return len(p), nil
}

func TestStageCancel(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		dir := t.TempDir()
		err := files.Stage(ctx, dir, map[string]files.Source{"a": files.String("a")})
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, tree(t, dir))
	})
	t.Run("during an endless stream", func(t *testing.T) {
		// An endless source can only stop if Stage streams it and checks
		// ctx while copying.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		dir := t.TempDir()
		src := &endless{cancelAt: 8 << 20, cancel: cancel}
		err := files.Stage(ctx, dir, map[string]files.Source{"big": files.Reader(src)})
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, tree(t, dir), "the partial file is removed")
		assert.Less(t, src.n, int64(16<<20), "stopped within a few buffers")
	})
}

// TestStageModes: a host file keeps its permission bits, any source can
// set its own with WithMode, and neither setuid, setgid, sticky nor group
// or other write is ever staged (issue 11 item 5).
func TestStageModes(t *testing.T) {
	hostDir := t.TempDir()
	host := func(name string, mode fs.FileMode) string {
		p := filepath.Join(hostDir, name)
		require.NoError(t, os.WriteFile(p, []byte(name), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	tests := []struct {
		name string
		src  files.Source
		want fs.FileMode
	}{
		{"host script", files.HostFile(host("w.sh", 0o755)), 0o755},
		{"host private file", files.HostFile(host("key", 0o600)), 0o600},
		{"host read-only file", files.HostFile(host("ro", 0o444)), 0o444},
		{"host setuid file", files.HostFile(host("suid", 0o4755|fs.ModeSetuid)), 0o755},
		{"host world-writable file", files.HostFile(host("ww", 0o777)), 0o755},
		{"string with a mode", files.WithMode(files.String("x"), 0o700), 0o700},
		{"bytes with a mode", files.WithMode(files.Bytes([]byte("x")), 0o750), 0o750},
		{"reader with a mode", files.WithMode(files.Reader(strings.NewReader("x")), 0o755), 0o755},
		{"host file with another mode", files.WithMode(files.HostFile(host("other", 0o755)), 0o640), 0o640},
		{"group write dropped", files.WithMode(files.String("x"), 0o775), 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"d/f": tt.src}))
			fi, err := os.Lstat(filepath.Join(dir, "d/f"))
			require.NoError(t, err)
			assert.Equal(t, tt.want, fi.Mode(), "not filtered by the umask either")
			if tt.name == "reader with a mode" {
				return // read once
			}
			shared := t.TempDir()
			require.NoError(t, files.Stage(t.Context(), shared, map[string]files.Source{"f": tt.src}, files.StageOptions{Shared: true}))
			want := tt.want | 0o666
			if tt.want&0o100 != 0 {
				want |= 0o111
			}
			assertMode(t, filepath.Join(shared, "f"), want)
		})
	}
	t.Run("default", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{"f": files.String("x")}))
		assertMode(t, filepath.Join(dir, "f"), 0o644&^umask())
	})
	t.Run("a mode beyond the permission bits is refused", func(t *testing.T) {
		for _, mode := range []fs.FileMode{0o4755, fs.ModeSetuid | 0o755, fs.ModeSticky | 0o644, fs.ModeDir | 0o755} {
			dir := t.TempDir()
			err := files.Stage(t.Context(), dir, map[string]files.Source{"ok": files.String("x"), "f": files.WithMode(files.String("x"), mode)})
			require.ErrorIs(t, err, runner.ErrInvalidTask, "%v", mode)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "f", fe.Value)
			assert.Contains(t, fe.Problem, "mode")
			assert.Empty(t, tree(t, dir), "nothing written")
		}
	})
	t.Run("WithMode keeps the source's content and kind", func(t *testing.T) {
		src := files.WithMode(files.Reader(strings.NewReader("once")), 0o700)
		require.NoError(t, files.Stage(t.Context(), t.TempDir(), map[string]files.Source{"a": src}))
		require.ErrorIs(t, files.Stage(t.Context(), t.TempDir(), map[string]files.Source{"a": src}), files.ErrSourceUsed)
		ms, ok := src.(runner.ModeSource)
		require.True(t, ok)
		assert.Equal(t, fs.FileMode(0o700), ms.Mode())
	})
}
