package files_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

func TestExtractHostile(t *testing.T) {
	ents := func(e ...ent) func(string) io.Reader {
		return func(string) io.Reader { return tarOf(t, e...) }
	}
	fivefiles := ents(reg("f1", "12345"), reg("f2", "12345"), reg("f3", "12345"), reg("f4", "12345"), reg("f5", "12345"))
	linkTo := func(target, name string) func(t *testing.T, dest, victim string) {
		return func(t *testing.T, dest, victim string) {
			require.NoError(t, os.Symlink(strings.ReplaceAll(target, "VICTIM", victim), filepath.Join(dest, name)))
		}
	}
	hardLink := func(t *testing.T, dest, victim string) {
		require.NoError(t, os.Link(filepath.Join(victim, "keep"), filepath.Join(dest, "hard")))
	}
	preexisting := func(t *testing.T, dest, _ string) {
		writeFiles(t, dest, map[string]string{"input.txt": "in", "f2": "old f2"})
	}
	um := umask()
	mode := func(m fs.FileMode) string { return fmt.Sprintf("%o", m&^um) }

	tests := []struct {
		name    string
		setup   func(t *testing.T, dest, victim string)
		stream  func(victim string) io.Reader
		opts    files.ExtractOptions
		wantErr error             // nil: success
		msg     string            // in the error
		want    map[string]string // tree(dest) after, or snapshot(dest) if snap
		snap    bool
		skipped int
	}{
		// Names.
		{name: "absolute", stream: ents(reg("/etc/evil", "x")), wantErr: files.ErrUnsafeEntry, msg: `"/etc/evil"`},
		{name: "absolute into the victim", stream: func(v string) io.Reader { return tarOf(t, reg(v+"/evil", "x")) }, wantErr: files.ErrUnsafeEntry},
		{name: "dot dot", stream: ents(reg("../victim/evil", "x")), wantErr: files.ErrUnsafeEntry, msg: `"../victim/evil"`},
		{name: "nested dot dot", stream: ents(reg("a/../../victim/evil", "x")), wantErr: files.ErrUnsafeEntry},
		{name: "dot dot that stays inside", stream: ents(reg("a/../b", "x")), wantErr: files.ErrUnsafeEntry},
		{name: "backslash dot dot", stream: ents(reg(`..\victim\evil`, "x")), wantErr: files.ErrUnsafeEntry},
		{name: "directory dot dot", stream: ents(dir("../victim/new/")), wantErr: files.ErrUnsafeEntry},
		{name: "empty name", stream: func(string) io.Reader {
			return bytes.NewReader(append(rawHeader("./", tar.TypeReg, 0), make([]byte, 1024)...))
		}, wantErr: files.ErrUnsafeEntry, msg: "empty name"},
		{name: "too long", stream: ents(reg(strings.Repeat("d/", 2100)+"f", "x")), wantErr: files.ErrUnsafeEntry},
		{name: "an unsafe entry after good ones undoes them", stream: ents(reg("ok.txt", "fine"), reg("d/e/ok.txt", "fine"), reg("../escape", "x")),
			wantErr: files.ErrUnsafeEntry},

		// Links in the stream.
		{name: "CopyEscape: symlink to / then a file through it",
			stream: ents(symlink("link", "/"), reg("link/etc/x", "x")),
			want:   map[string]string{"link/etc/x": "x"}, skipped: 1},
		{name: "symlink to the victim then a file through it",
			stream: func(v string) io.Reader {
				return tarOf(t, symlink("link", "../victim"), reg("link/keep", "evil"), symlink("abs", v), reg("abs/keep", "evil"))
			},
			want: map[string]string{"link/keep": "evil", "abs/keep": "evil"}, skipped: 2},
		{name: "symlink then a file of the same name",
			stream: func(v string) io.Reader { return tarOf(t, symlink("f", v+"/keep"), reg("f", "new")) },
			want:   map[string]string{"f": "new"}, skipped: 1},
		{name: "hard link to /etc/passwd", stream: ents(ent{name: "pw", typ: tar.TypeLink, link: "/etc/passwd"}),
			want: map[string]string{}, skipped: 1},
		{name: "hard link to the victim then a write", stream: ents(ent{name: "h", typ: tar.TypeLink, link: "../victim/keep"}, reg("h", "evil")),
			want: map[string]string{"h": "evil"}, skipped: 1},
		{name: "hard link inside the stream", stream: ents(reg("a", "a"), ent{name: "b", typ: tar.TypeLink, link: "a"}),
			want: map[string]string{"a": "a"}, skipped: 1},

		// Links already in dest.
		{name: "symlink in dest to the victim", setup: linkTo("../victim", "out"), stream: ents(reg("out/evil", "x")),
			wantErr: files.ErrUnsafeEntry, msg: `symbolic link "out"`},
		{name: "absolute symlink in dest", setup: linkTo("VICTIM", "out"), stream: ents(reg("out/keep", "x")),
			wantErr: files.ErrUnsafeEntry},
		{name: "symlink in dest to /", setup: linkTo("/", "root"), stream: ents(reg("root/tmp/evil", "x")),
			wantErr: files.ErrUnsafeEntry},
		{name: "symlink in dest that stays inside is not followed either",
			setup: func(t *testing.T, dest, victim string) {
				require.NoError(t, os.Mkdir(filepath.Join(dest, "sub"), 0o755))
				linkTo("sub", "inner")(t, dest, victim)
			},
			stream: ents(reg("inner/x", "x")), wantErr: files.ErrUnsafeEntry},
		{name: "symlink in dest at the file's name", setup: linkTo("VICTIM/keep", "file"), stream: ents(reg("file", "new")),
			wantErr: fs.ErrExist, msg: "Overwrite"},
		{name: "symlink in dest at the file's name, Overwrite", setup: linkTo("VICTIM/keep", "file"), stream: ents(reg("file", "new")),
			opts: files.ExtractOptions{Overwrite: true}, want: map[string]string{"file": "new"}},
		{name: "hard link in dest to the victim", setup: hardLink, stream: ents(reg("hard", "new")), wantErr: fs.ErrExist},
		{name: "hard link in dest to the victim, Overwrite", setup: hardLink, stream: ents(reg("hard", "new")),
			opts: files.ExtractOptions{Overwrite: true}, want: map[string]string{"hard": "new"}},

		// Types and modes.
		// Devices and FIFOs are skipped, never created, and the rest of the
		// stream still comes out (a script's stray FIFO must not cost the
		// run its other outputs).
		{name: "character device", stream: ents(ent{name: "null", typ: tar.TypeChar}, reg("a.txt", "a")), want: map[string]string{"a.txt": "a"}, skipped: 1},
		{name: "block device", stream: ents(ent{name: "sda", typ: tar.TypeBlock}), want: map[string]string{}, skipped: 1},
		{name: "FIFO", stream: ents(ent{name: "fifo", typ: tar.TypeFifo}), want: map[string]string{}, skipped: 1},
		{name: "device the filter drops", stream: ents(ent{name: "null", typ: tar.TypeChar}, reg("a.txt", "a")),
			opts: files.ExtractOptions{Filter: func(rel string) bool { return strings.HasSuffix(rel, ".txt") }},
			want: map[string]string{"a.txt": "a"}},
		{name: "unknown type", stream: ents(ent{name: "odd", typ: 'Z'}), want: map[string]string{}, skipped: 1},
		{name: "modes are clamped", stream: ents(
			ent{name: "suid", typ: tar.TypeReg, mode: 0o4755, body: "x"},
			ent{name: "all", typ: tar.TypeReg, mode: 0o7777, body: "x"},
			ent{name: "none", typ: tar.TypeReg, mode: 0o1000, body: "x"},
			ent{name: "world", typ: tar.TypeReg, mode: 0o666, body: "x"},
			ent{name: "group", typ: tar.TypeReg, mode: 0o640, body: "x"},
			ent{name: "d/", typ: tar.TypeDir, mode: 0o3777}, reg("d/f", "x"),
			ent{name: "p/", typ: tar.TypeDir, mode: 0o500}, reg("p/f", "x"),
		), want: map[string]string{
			"suid": "file " + mode(0o755) + ` "x"`, "all": "file " + mode(0o755) + ` "x"`, "none": "file " + mode(0o600) + ` "x"`,
			"world": "file " + mode(0o644) + ` "x"`, "group": "file " + mode(0o640) + ` "x"`,
			"d": "dir 755", "d/f": "file " + mode(0o644) + ` "x"`, "p": "dir 700", "p/f": "file " + mode(0o644) + ` "x"`,
		}, snap: true, skipped: 2}, // suid and all: said to have lost their setuid/setgid bits

		// Sizes and limits.
		{name: "size that lies: the stream ends early", stream: ents(reg("ok", "ok"), ent{name: "big", typ: tar.TypeReg, body: "only ten b", size: 1 << 20}),
			wantErr: io.ErrUnexpectedEOF},
		{name: "huge declared size", stream: ents(ent{name: "deep/dir/huge", typ: tar.TypeReg, body: "x", size: 1 << 40}),
			wantErr: files.ErrLimit, msg: "deep/dir/huge"},
		{name: "sparse entry larger than the limit", stream: func(string) io.Reader { return sparseTar("sparse", 1<<40) },
			wantErr: files.ErrLimit},
		{name: "small sparse entry", stream: func(string) io.Reader { return sparseTar("sparse", 100) },
			want: map[string]string{"sparse": "x" + strings.Repeat("\x00", 99)}},
		{name: "too many files", setup: preexisting, stream: fivefiles, opts: files.ExtractOptions{MaxFiles: 3, Overwrite: true},
			wantErr: files.ErrLimit, msg: "3 files"},
		{name: "too many directories", stream: ents(reg("a/b/c/d", "x")), opts: files.ExtractOptions{MaxFiles: 3},
			wantErr: files.ErrLimit},
		{name: "too many bytes", setup: preexisting, stream: fivefiles, opts: files.ExtractOptions{MaxBytes: 12, Overwrite: true},
			wantErr: files.ErrLimit, msg: "12 bytes"},
		{name: "exactly at the limits", stream: fivefiles, opts: files.ExtractOptions{MaxBytes: 25, MaxFiles: 5},
			want: map[string]string{"f1": "12345", "f2": "12345", "f3": "12345", "f4": "12345", "f5": "12345"}},

		// Names that come twice, or clash.
		{name: "duplicate entries: the later replaces", stream: ents(reg("dup", "first"), reg("dup", "second")),
			want: map[string]string{"dup": "second"}},
		{name: "duplicate with a symlink between", stream: func(v string) io.Reader {
			return tarOf(t, reg("dup", "first"), symlink("dup", v+"/keep"), reg("dup", "second"))
		}, want: map[string]string{"dup": "second"}, skipped: 1},
		{name: "a file, then a file under it", stream: ents(reg("a", "a"), reg("a/b", "b")), msg: "not a directory"},
		{name: "a directory in dest at the file's name", setup: func(t *testing.T, dest, _ string) {
			require.NoError(t, os.Mkdir(filepath.Join(dest, "d"), 0o755))
		}, stream: ents(reg("d", "x")), opts: files.ExtractOptions{Overwrite: true}, msg: "is a directory"},
		{name: "existing file, no Overwrite", setup: preexisting, stream: ents(reg("input.txt", "new")), wantErr: fs.ErrExist},
		{name: "existing file, Overwrite", setup: preexisting, stream: ents(reg("input.txt", "new")), opts: files.ExtractOptions{Overwrite: true},
			want: map[string]string{"input.txt": "new", "f2": "old f2"}},

		// Prefix and filter.
		{name: "outside the prefix", stream: ents(dir("work/"), reg("work/a", "a"), reg("other/b", "b"), reg("./work/c", "c"), reg("workshop", "w")),
			opts: files.ExtractOptions{StripPrefix: "work"}, want: map[string]string{"a": "a", "c": "c"}, skipped: 2},
		{name: "escaping after the prefix", stream: ents(reg("work/../../x", "x")), opts: files.ExtractOptions{StripPrefix: "work/"},
			wantErr: files.ErrUnsafeEntry},
		{name: "directories only for kept files", stream: ents(dir("empty/"), dir("logs/"), reg("logs/x.log", "l"), reg("out/y.txt", "y")),
			opts: files.ExtractOptions{Filter: func(rel string) bool { return strings.HasSuffix(rel, ".txt") }},
			want: map[string]string{"out": "dir " + mode(0o755), "out/y.txt": "file " + mode(0o644) + ` "y"`}, snap: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest, victim, unchanged := sandbox(t)
			if tt.setup != nil {
				tt.setup(t, dest, victim)
			}
			before := snapshot(t, dest)
			stats, err := files.Extract(t.Context(), tt.stream(victim), dest, tt.opts)
			unchanged()
			if tt.wantErr == nil && tt.msg == "" {
				require.NoError(t, err)
				got := tree(t, dest)
				if tt.snap {
					got = snapshot(t, dest)
				}
				assert.Equal(t, tt.want, got)
				assert.Len(t, stats.Skipped, tt.skipped, "skipped: %q", stats.Skipped)
				assertNoBackups(t, dest)
				return
			}
			require.Error(t, err)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
			assert.Contains(t, err.Error(), tt.msg)
			assert.Equal(t, before, snapshot(t, dest), "dest is back to how it was")
			assert.Empty(t, stats.Files)
		})
	}
}

func assertNoBackups(t *testing.T, dest string) {
	t.Helper()
	for name := range snapshot(t, dest) {
		assert.NotContains(t, name, ".lading-replaced-")
	}
}

func TestExtractStats(t *testing.T) {
	dest := t.TempDir()
	stats, err := files.Extract(t.Context(), tarOf(t, reg("b", "bb"), reg("a/c", "ccc"), reg("b", "bbbb"), symlink("l", "b")), dest, files.ExtractOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "a/c"}, stats.Files, "stream order, each once")
	assert.Equal(t, int64(2+3+4), stats.Bytes, "every byte written, the replaced entry's too")
	assert.Equal(t, []string{"l: symbolic link not extracted"}, stats.Skipped)

	t.Run("the list of skipped entries is bounded", func(t *testing.T) {
		var entries []ent
		for i := range 1005 {
			entries = append(entries, symlink(fmt.Sprint("l", i), "x"))
		}
		stats, err := files.Extract(t.Context(), tarOf(t, entries...), t.TempDir(), files.ExtractOptions{})
		require.NoError(t, err)
		assert.Len(t, stats.Skipped, 1000)
		assert.Equal(t, 5, stats.MoreSkipped)
	})
}

func TestExtractOverwriteRollback(t *testing.T) {
	dest, _, unchanged := sandbox(t)
	writeFiles(t, dest, map[string]string{"a.txt": "old a", "sub/b.txt": "old b"})
	require.NoError(t, os.Symlink("a.txt", filepath.Join(dest, "link")))
	before := snapshot(t, dest)
	in := tarOf(t, reg("a.txt", "new a"), reg("sub/b.txt", "new b"), reg("link", "new link"), reg("a.txt", "newer a"),
		reg("new/dir/c.txt", "c"), reg("../escape", "x"))
	_, err := files.Extract(t.Context(), in, dest, files.ExtractOptions{Overwrite: true})
	require.ErrorIs(t, err, files.ErrUnsafeEntry)
	unchanged()
	assert.Equal(t, before, snapshot(t, dest), "replaced files put back, new ones and new directories removed")

	// The same stream without its bad entry succeeds, and leaves no backups.
	in = tarOf(t, reg("a.txt", "new a"), reg("sub/b.txt", "new b"), reg("link", "new link"), reg("a.txt", "newer a"), reg("new/dir/c.txt", "c"))
	_, err = files.Extract(t.Context(), in, dest, files.ExtractOptions{Overwrite: true})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a.txt": "newer a", "sub/b.txt": "new b", "link": "new link", "new/dir/c.txt": "c"}, tree(t, dest))
	assertNoBackups(t, dest)
}

// cancelAfter cancels a context once n bytes have been read through it.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestExtractCancel(t *testing.T) {
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big)
	stream := func() *bytes.Buffer { return tarOf(t, reg("small", "s"), reg("dir/big", string(big))) }
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		dest := t.TempDir()
		_, err := files.Extract(ctx, stream(), dest, files.ExtractOptions{})
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, snapshot(t, dest))
	})
	t.Run("during a copy", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		dest := t.TempDir()
		_, err := files.Extract(ctx, &cancelAfter{r: stream(), n: 2 << 20, cancel: cancel}, dest, files.ExtractOptions{})
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, snapshot(t, dest), "what was written is removed")
	})
}

func TestExtractMalformed(t *testing.T) {
	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)
	for name, in := range map[string][]byte{
		"garbage":            garbage,
		"half a header":      rawHeader("a", tar.TypeReg, 0)[:300],
		"bad checksum":       append(bytes.Replace(rawHeader("a", tar.TypeReg, 0), []byte("a"), []byte("b"), 1), make([]byte, 1024)...),
		"negative size":      append(rawHeader("a", tar.TypeReg, 0)[:124:124], append([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), make([]byte, 376+1024)...)...),
		"text, not a tar":    []byte(strings.Repeat("hello world\n", 100)),
		"truncated mid-file": tarOf(t, reg("a", strings.Repeat("x", 2000))).Bytes()[:1000],
	} {
		t.Run(name, func(t *testing.T) {
			dest, _, unchanged := sandbox(t)
			_, err := files.Extract(t.Context(), bytes.NewReader(in), dest, files.ExtractOptions{})
			require.Error(t, err)
			unchanged()
			assert.Empty(t, snapshot(t, dest))
		})
	}
	t.Run("empty stream", func(t *testing.T) {
		stats, err := files.Extract(t.Context(), strings.NewReader(""), t.TempDir(), files.ExtractOptions{})
		require.NoError(t, err)
		assert.Empty(t, stats.Files)
	})
	t.Run("dest does not exist", func(t *testing.T) {
		_, err := files.Extract(t.Context(), tarOf(t, reg("a", "a")), filepath.Join(t.TempDir(), "absent"), files.ExtractOptions{})
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
}
