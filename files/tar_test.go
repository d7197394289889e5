package files_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

// sourceTree makes a directory with files of several modes, nested and
// private directories, links, a FIFO and an empty directory.
func sourceTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"a", 0o755}, {"a/b", 0o750}, {"private", 0o700}, {"empty", 0o755}} {
		require.NoError(t, os.Mkdir(filepath.Join(src, d.name), d.mode))
		require.NoError(t, os.Chmod(filepath.Join(src, d.name), d.mode))
	}
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{
		{"top.txt", "top", 0o644},
		{"a/b/deep.sh", "#!/bin/sh\necho deep\n", 0o755},
		{"private/secret", "s3cret", 0o600},
		{"a/group.txt", "group", 0o640},
		{"suid", "x", 0o755 | os.ModeSetuid},
		{"a/b/big.bin", string(bytes.Repeat([]byte("0123456789abcdef"), 200_000)), 0o644}, // 3.2 MB: several buffers
	} {
		p := filepath.Join(src, f.name)
		require.NoError(t, os.WriteFile(p, []byte(f.body), 0o600))
		require.NoError(t, os.Chmod(p, f.mode))
	}
	require.NoError(t, os.Symlink("top.txt", filepath.Join(src, "link")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(src, "etc")))
	require.NoError(t, mkfifo(filepath.Join(src, "fifo")))
	return src
}

type tarEntry struct {
	hdr  *tar.Header
	body string
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, tarEntry{h, string(body)})
	}
}

func TestWriteTar(t *testing.T) {
	src := sourceTree(t)
	stamp := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	require.NoError(t, files.WriteTar(t.Context(), &buf, src, files.TarOptions{
		Prefix: "work", ExtraDirs: []string{"out", "a"}, DirModTime: stamp, UID: 1000, GID: 1001,
	}))
	entries := readTar(t, &buf)
	got := map[string]*tar.Header{}
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
		got[e.hdr.Name] = e.hdr
		assert.Equal(t, 1000, e.hdr.Uid, e.hdr.Name)
		assert.Equal(t, 1001, e.hdr.Gid, e.hdr.Name)
		assert.Empty(t, e.hdr.Uname)
		assert.Empty(t, e.hdr.Gname)
		assert.Zero(t, e.hdr.Mode&^0o777, "%s: no setuid, setgid or sticky bit", e.hdr.Name)
		if e.hdr.Typeflag == tar.TypeReg {
			data, err := os.ReadFile(filepath.Join(src, e.hdr.Name[len("work/"):]))
			require.NoError(t, err)
			assert.Equal(t, string(data), e.body, e.hdr.Name)
		}
	}
	assert.Equal(t, []string{
		"work/", "work/out/", "work/a/", // prefix and extra directories first
		"work/a/b/", "work/a/b/big.bin", "work/a/b/deep.sh", "work/a/group.txt",
		"work/empty/", "work/etc", "work/link", "work/private/", "work/private/secret", "work/suid", "work/top.txt",
	}, names, "lexical order, the FIFO left out, the extra directory a/ once")

	for name, want := range map[string]struct {
		typ  byte
		mode int64
		link string
	}{
		"work/":               {tar.TypeDir, 0o755, ""},
		"work/out/":           {tar.TypeDir, 0o755, ""},
		"work/a/b/":           {tar.TypeDir, 0o750, ""},
		"work/private/":       {tar.TypeDir, 0o700, ""},
		"work/private/secret": {tar.TypeReg, 0o600, ""},
		"work/a/group.txt":    {tar.TypeReg, 0o640, ""},
		"work/a/b/deep.sh":    {tar.TypeReg, 0o755, ""},
		"work/suid":           {tar.TypeReg, 0o755, ""},
		"work/link":           {tar.TypeSymlink, 0o777, "top.txt"},
		"work/etc":            {tar.TypeSymlink, 0o777, "/etc"},
	} {
		h := got[name]
		require.NotNil(t, h, name)
		assert.Equal(t, want.typ, h.Typeflag, name)
		assert.Equal(t, want.mode, h.Mode, name)
		assert.Equal(t, want.link, h.Linkname, name)
	}
	assert.True(t, got["work/"].ModTime.Equal(stamp))
	assert.True(t, got["work/out/"].ModTime.Equal(stamp))
	assert.True(t, got["work/a/"].ModTime.Equal(stamp), "an extra directory that exists is written once, with DirModTime")
}

func TestWriteTarOptions(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"d/f.txt": "f"})
	require.NoError(t, os.Symlink("d/f.txt", filepath.Join(src, "l")))
	headers := func(t *testing.T, dir string, opts files.TarOptions) map[string]*tar.Header {
		t.Helper()
		var buf bytes.Buffer
		require.NoError(t, files.WriteTar(t.Context(), &buf, dir, opts))
		out := map[string]*tar.Header{}
		for _, e := range readTar(t, &buf) {
			out[e.hdr.Name] = e.hdr
		}
		return out
	}
	t.Run("no prefix", func(t *testing.T) {
		assert.Equal(t, []string{"d/", "d/f.txt", "l"}, sortedKeys(headers(t, src, files.TarOptions{})))
	})
	t.Run("zero UID and GID is root", func(t *testing.T) {
		for _, h := range headers(t, src, files.TarOptions{Prefix: "work/"}) {
			assert.Zero(t, h.Uid, h.Name)
			assert.Zero(t, h.Gid, h.Name)
		}
	})
	t.Run("-1 keeps the host owner", func(t *testing.T) {
		for _, h := range headers(t, src, files.TarOptions{Prefix: "work/", UID: -1, GID: -1}) {
			assert.Equal(t, os.Getuid(), h.Uid, h.Name)
			assert.Equal(t, os.Getgid(), h.Gid, h.Name)
		}
	})
	t.Run("shared", func(t *testing.T) {
		h := headers(t, src, files.TarOptions{Prefix: "work/", Shared: true})
		assert.Equal(t, int64(0o777), h["work/"].Mode)
		assert.Equal(t, int64(0o777), h["work/d/"].Mode)
		assert.Equal(t, int64(0o666), h["work/d/f.txt"].Mode)
		assert.Equal(t, byte(tar.TypeSymlink), h["work/l"].Typeflag)
	})
	t.Run("DirMode", func(t *testing.T) {
		assert.Equal(t, int64(0o700), headers(t, src, files.TarOptions{Prefix: "work/", DirMode: 0o700})["work/"].Mode)
	})
	t.Run("dir is a symbolic link", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link")
		require.NoError(t, os.Symlink(src, link))
		assert.Equal(t, []string{"d/", "d/f.txt", "l"}, sortedKeys(headers(t, link, files.TarOptions{})))
	})
	for _, bad := range []files.TarOptions{{Prefix: "../up/"}, {Prefix: "/abs/"}, {ExtraDirs: []string{"../x"}}, {ExtraDirs: []string{""}}} {
		t.Run("refused", func(t *testing.T) {
			require.Error(t, files.WriteTar(t.Context(), io.Discard, src, bad))
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		require.ErrorIs(t, files.WriteTar(ctx, io.Discard, src, files.TarOptions{}), context.Canceled)
	})
	t.Run("cancelled during a big file", func(t *testing.T) {
		big := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(big, "big"), make([]byte, 16<<20), 0o644))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w := &cancelingWriter{cancelAt: 2 << 20, cancel: cancel}
		require.ErrorIs(t, files.WriteTar(ctx, w, big, files.TarOptions{}), context.Canceled)
		assert.Less(t, w.n, 4<<20, "stopped within a buffer or two")
	})
}

func TestTarRoundTrip(t *testing.T) {
	src := sourceTree(t)
	var buf bytes.Buffer
	require.NoError(t, files.WriteTar(t.Context(), &buf, src, files.TarOptions{Prefix: "work/", ExtraDirs: []string{"out"}}))
	size := int64(buf.Len())

	dest := t.TempDir()
	stats, err := files.Extract(t.Context(), &buf, dest, files.ExtractOptions{StripPrefix: "work/"})
	require.NoError(t, err)

	want := snapshot(t, src)
	for _, gone := range []string{"link", "etc", "fifo", "empty"} {
		delete(want, gone) // links and FIFOs are not extracted, nor directories without files
	}
	assert.Equal(t, `file 755+setuid "x"`, want["suid"])
	want["suid"] = `file 755 "x"` // the setuid bit is dropped
	assert.Equal(t, want, snapshot(t, dest), "contents, nested directories and modes")
	assert.ElementsMatch(t, []string{"a/b/big.bin", "a/b/deep.sh", "a/group.txt", "private/secret", "suid", "top.txt"}, stats.Files)
	assert.ElementsMatch(t, []string{"etc: symbolic link not extracted", "link: symbolic link not extracted"}, stats.Skipped)
	var total int64
	for _, f := range stats.Files {
		fi, err := os.Stat(filepath.Join(dest, f))
		require.NoError(t, err)
		total += fi.Size()
	}
	assert.Equal(t, total, stats.Bytes)
	assert.Less(t, stats.Bytes, size)
}

// cancelingWriter counts what it is given and cancels past a number of bytes.
type cancelingWriter struct {
	n, cancelAt int
	cancel      context.CancelFunc
}

func (w *cancelingWriter) Write(p []byte) (int, error) {
	if w.n += len(p); w.n >= w.cancelAt {
		w.cancel()
	}
	return len(p), nil
}
