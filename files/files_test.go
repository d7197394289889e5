package files

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// sandbox returns a destination directory with a victim directory beside
// it, and a check that the victim is untouched.
func sandbox(t *testing.T) (dest, victim string, untouched func()) {
	t.Helper()
	base := t.TempDir()
	dest, victim = filepath.Join(base, "dest"), filepath.Join(base, "victim")
	require.NoError(t, os.Mkdir(dest, 0o755))
	require.NoError(t, os.Mkdir(victim, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(victim, "keep"), []byte("original"), 0o644))
	return dest, victim, func() {
		t.Helper()
		entries, err := os.ReadDir(victim)
		require.NoError(t, err)
		require.Len(t, entries, 1, "nothing was added beside the destination")
		data, err := os.ReadFile(filepath.Join(victim, "keep"))
		require.NoError(t, err)
		require.Equal(t, "original", string(data))
		top, err := os.ReadDir(filepath.Dir(dest))
		require.NoError(t, err)
		require.Len(t, top, 2, "nothing was written next to dest and victim")
	}
}

// tree returns every regular file under dir with its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	}))
	return out
}

func TestStage(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(t.TempDir(), "host.txt")
	require.NoError(t, os.WriteFile(host, []byte("from host"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("old"), 0o644))
	err := Stage(t.Context(), dir, map[string]runner.Source{
		"hello.txt":            String("Hello World"),
		"test/application.yml": Bytes([]byte("a: 1\n")),
		"./host.txt":           HostFile(host),
		"stream.bin":           Reader(strings.NewReader("streamed")),
	}, StageOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"hello.txt":            "Hello World",
		"test/application.yml": "a: 1\n",
		"host.txt":             "from host",
		"stream.bin":           "streamed",
	}, tree(t, dir))
}

func TestStageRefusesEscapes(t *testing.T) {
	dest, victim, untouched := sandbox(t)
	require.NoError(t, os.Symlink(victim, filepath.Join(dest, "link")))
	for _, name := range []string{"", "/etc/passwd", "../victim/keep", "a/../../victim/keep", "link/keep", "link/new"} {
		t.Run(name, func(t *testing.T) {
			err := Stage(t.Context(), dest, map[string]runner.Source{name: String("evil")}, StageOptions{})
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "inputFiles", fe.Field)
			assert.Equal(t, name, fe.Value)
			untouched()
		})
	}
	t.Run("replaces a symlink instead of writing through it", func(t *testing.T) {
		require.NoError(t, os.Symlink(filepath.Join(victim, "keep"), filepath.Join(dest, "file")))
		require.NoError(t, Stage(t.Context(), dest, map[string]runner.Source{"file": String("new")}, StageOptions{}))
		data, err := os.ReadFile(filepath.Join(dest, "file"))
		require.NoError(t, err)
		assert.Equal(t, "new", string(data))
		untouched()
	})
}

func TestTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "a/b"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "top.txt"), []byte("top"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "a/b/deep.sh"), []byte("#!/bin/sh"), 0o755))
	require.NoError(t, os.Symlink("top.txt", filepath.Join(src, "link")))
	var buf bytes.Buffer
	require.NoError(t, WriteTar(t.Context(), &buf, src, TarOptions{Prefix: "work/", ExtraDirs: []string{"out"}}))

	var names []string
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
	}
	assert.ElementsMatch(t, []string{"work/", "work/out/", "work/a/", "work/a/b/", "work/a/b/deep.sh", "work/link", "work/top.txt"}, names)

	dest := t.TempDir()
	stats, err := Extract(t.Context(), &buf, dest, ExtractOptions{StripPrefix: "work/"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"top.txt": "top", "a/b/deep.sh": "#!/bin/sh"}, tree(t, dest))
	assert.Equal(t, int64(len("top")+len("#!/bin/sh")), stats.Bytes)
	assert.Equal(t, []string{"link: symbolic link not collected"}, stats.Skipped)
	fi, err := os.Stat(filepath.Join(dest, "a/b/deep.sh"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o755), fi.Mode().Perm())
}

// entry is one tar entry for hostile streams.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	size       int64 // -1: len(body)
}

func hostileTar(t testing.TB, entries ...entry) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: size}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Skipf("archive/tar cannot encode this header: %v", err) // only fuzz inputs hit this
		}
		if size > 0 {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	_ = tw.Close()
	return &buf
}

func TestExtractHostile(t *testing.T) {
	reg := func(name, body string) entry { return entry{name: name, typ: tar.TypeReg, body: body} }
	tests := []struct {
		name    string
		entries []entry
		wantErr string            // "" means success
		want    map[string]string // files in dest afterwards
		skipped int
	}{
		{"absolute name", []entry{reg("/etc/evil", "x")}, "leaves the destination", map[string]string{}, 0},
		{"dot dot", []entry{reg("../victim/evil", "x")}, "leaves the destination", map[string]string{}, 0},
		{"nested dot dot", []entry{reg("a/../../victim/evil", "x")}, "leaves the destination", map[string]string{}, 0},
		{"CopyEscape: symlink then a file through it", []entry{
			{name: "link", typ: tar.TypeSymlink, link: "../victim"}, reg("link/evil", "x"),
		}, "", map[string]string{"link/evil": "x"}, 1},
		{"hard link to a host file", []entry{{name: "pw", typ: tar.TypeLink, link: "/etc/passwd"}}, "", map[string]string{}, 1},
		{"device", []entry{{name: "dev", typ: tar.TypeChar}}, "", map[string]string{}, 1},
		{"fifo", []entry{{name: "fifo", typ: tar.TypeFifo}}, "", map[string]string{}, 1},
		{"setuid mode cleared", []entry{{name: "suid", typ: tar.TypeReg, mode: 0o4755, body: "x"}}, "", map[string]string{"suid": "x"}, 0},
		{"duplicate entry replaces", []entry{reg("dup", "first"), reg("dup", "second")}, "", map[string]string{"dup": "second"}, 0},
		{"failure removes what was written", []entry{reg("ok.txt", "fine"), reg("../escape", "x")}, "leaves the destination", map[string]string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest, _, untouched := sandbox(t)
			stats, err := Extract(t.Context(), hostileTar(t, tt.entries...), dest, ExtractOptions{})
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.wantErr)
			}
			assert.Equal(t, tt.want, tree(t, dest))
			assert.Len(t, stats.Skipped, tt.skipped)
			untouched()
			if tt.name == "setuid mode cleared" {
				fi, err := os.Stat(filepath.Join(dest, "suid"))
				require.NoError(t, err)
				assert.Zero(t, fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
			}
		})
	}
}

func TestExtractThroughExistingSymlinkRefused(t *testing.T) {
	dest, victim, untouched := sandbox(t)
	require.NoError(t, os.Symlink(victim, filepath.Join(dest, "out")))
	require.NoError(t, os.Symlink(filepath.Join(victim, "keep"), filepath.Join(dest, "file")))
	_, err := Extract(t.Context(), hostileTar(t, entry{name: "out/evil", typ: tar.TypeReg, body: "x"}), dest, ExtractOptions{})
	require.ErrorContains(t, err, "symbolic link out of the destination")
	untouched()
	// A link at the final component is replaced, not written through.
	_, err = Extract(t.Context(), hostileTar(t, entry{name: "file", typ: tar.TypeReg, body: "new"}), dest, ExtractOptions{})
	require.NoError(t, err)
	untouched()
	fi, err := os.Lstat(filepath.Join(dest, "file"))
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular())
}

func TestExtractLimits(t *testing.T) {
	many := []entry{}
	for i := range 5 {
		many = append(many, entry{name: "f" + string(rune('a'+i)), typ: tar.TypeReg, body: "12345"})
	}
	t.Run("files", func(t *testing.T) {
		dest, _, untouched := sandbox(t)
		_, err := Extract(t.Context(), hostileTar(t, many...), dest, ExtractOptions{MaxFiles: 3})
		require.ErrorIs(t, err, ErrLimit)
		assert.Contains(t, err.Error(), "3 files")
		assert.Empty(t, tree(t, dest), "partial output removed")
		untouched()
	})
	t.Run("bytes", func(t *testing.T) {
		dest, _, untouched := sandbox(t)
		_, err := Extract(t.Context(), hostileTar(t, many...), dest, ExtractOptions{MaxBytes: 12})
		require.ErrorIs(t, err, ErrLimit)
		assert.Empty(t, tree(t, dest), "partial output removed")
		untouched()
	})
	t.Run("pre-existing files survive a failed extraction", func(t *testing.T) {
		dest, _, _ := sandbox(t)
		require.NoError(t, os.WriteFile(filepath.Join(dest, "input.txt"), []byte("in"), 0o644))
		_, err := Extract(t.Context(), hostileTar(t, many...), dest, ExtractOptions{MaxFiles: 2})
		require.ErrorIs(t, err, ErrLimit)
		assert.Equal(t, map[string]string{"input.txt": "in"}, tree(t, dest))
	})
}

func TestExtractKeepAndStrip(t *testing.T) {
	dest := t.TempDir()
	in := hostileTar(t,
		entry{name: "work/", typ: tar.TypeDir},
		entry{name: "work/a.txt", typ: tar.TypeReg, body: "a"},
		entry{name: "work/b.log", typ: tar.TypeReg, body: "b"},
		entry{name: "other/c.txt", typ: tar.TypeReg, body: "c"},
	)
	stats, err := Extract(t.Context(), in, dest, ExtractOptions{StripPrefix: "work/", Keep: func(rel string) bool { return strings.HasSuffix(rel, ".txt") }})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a.txt": "a"}, tree(t, dest))
	assert.Equal(t, []string{"a.txt"}, stats.Files)
}

func TestGlobs(t *testing.T) {
	files := []string{"a.txt", "b.txt", "c.csv", "sub/a.txt", "out/bla.yml", "out/x/y.yml", "file.xml", "sub/dir/file.csv"}
	tests := []struct {
		patterns []string
		want     []string
	}{
		{[]string{"*.txt"}, []string{"a.txt", "b.txt"}},
		{[]string{"out/**"}, []string{"out/bla.yml", "out/x/y.yml"}},
		{[]string{"{a,c}.*"}, []string{"a.txt", "c.csv"}},
		{[]string{"[ab].txt"}, []string{"a.txt", "b.txt"}},
		{[]string{"file.xml", "sub/dir/file.csv"}, []string{"file.xml", "sub/dir/file.csv"}},
		{[]string{"**/*.csv"}, []string{"c.csv", "sub/dir/file.csv"}},
		{[]string{"./a.txt"}, []string{"a.txt"}},
		{nil, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, ","), func(t *testing.T) {
			m, err := NewMatcher(tt.patterns)
			require.NoError(t, err)
			var got []string
			for _, f := range files {
				if m.Match(f) {
					got = append(got, f)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
	for i, bad := range []string{"/etc/*", "../*", "a/../../b", "[unclosed"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := NewMatcher([]string{"ok", bad})
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "outputFiles[1]", fe.Field, "case %d", i)
			assert.Equal(t, bad, fe.Value)
		})
	}
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"output.txt": "o", "input.csv": "i", "out-1/file.txt": "f", "out-1/nested/file.txt": "n"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(dir, "evil.txt")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(dir, "out-1", "etc")))
	m, err := NewMatcher([]string{"*.txt"})
	require.NoError(t, err)
	got, err := Collect(dir, m, "out-1")
	require.NoError(t, err)
	var keys []string
	for k, v := range got {
		keys = append(keys, k)
		assert.True(t, filepath.IsAbs(v))
	}
	sort.Strings(keys)
	assert.Equal(t, []string{"file.txt", "nested/file.txt", "output.txt"}, keys)
	assert.Equal(t, filepath.Join(dir, "out-1", "nested", "file.txt"), got["nested/file.txt"])
}

func FuzzExtract(f *testing.F) {
	f.Add("link", byte(tar.TypeSymlink), "../victim", "link/x", "body")
	f.Add("/abs", byte(tar.TypeReg), "", "a/../../x", "body")
	f.Add("d", byte(tar.TypeDir), "", "d/f", "x")
	f.Fuzz(func(t *testing.T, n1 string, t1 byte, link string, n2, body string) {
		dest, _, untouched := sandbox(t)
		in := hostileTar(t, entry{name: n1, typ: t1, link: link, body: body}, entry{name: n2, typ: tar.TypeReg, body: body})
		stats, _ := Extract(context.Background(), in, dest, ExtractOptions{MaxBytes: 1 << 20})
		untouched()
		for _, f := range stats.Files {
			_, ok := LocalPath(f)
			if !ok {
				t.Fatalf("wrote non-local %q", f)
			}
		}
	})
}

func benchTree(b *testing.B, files int, size int) string {
	dir := b.TempDir()
	data := bytes.Repeat([]byte("x"), size)
	for i := range files {
		require.NoError(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), data, 0o644))
	}
	return dir
}

func BenchmarkWriteTar(b *testing.B) {
	for _, c := range []struct {
		name        string
		files, size int
	}{{"1000x64KiB", 1000, 64 << 10}, {"1x64MiB", 1, 64 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			dir := benchTree(b, c.files, c.size)
			b.SetBytes(int64(c.files * c.size))
			for b.Loop() {
				require.NoError(b, WriteTar(context.Background(), io.Discard, dir, TarOptions{}))
			}
		})
	}
}

func BenchmarkExtract(b *testing.B) {
	for _, c := range []struct {
		name        string
		files, size int
	}{{"1000x64KiB", 1000, 64 << 10}, {"1x64MiB", 1, 64 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			var buf bytes.Buffer
			require.NoError(b, WriteTar(context.Background(), &buf, benchTree(b, c.files, c.size), TarOptions{}))
			b.SetBytes(int64(c.files * c.size))
			for b.Loop() {
				dest := b.TempDir()
				_, err := Extract(context.Background(), bytes.NewReader(buf.Bytes()), dest, ExtractOptions{})
				require.NoError(b, err)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	m, err := NewMatcher([]string{"*.txt", "out/**", "{a,b}/*.csv"})
	require.NoError(b, err)
	for b.Loop() {
		m.Match("out/deep/nested/file.yml")
		m.Match("sub/a.txt")
	}
}
