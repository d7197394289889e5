package files_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// sandbox returns a destination directory with a victim directory beside
// it, and a check that the victim is unchanged and nothing was added next
// to the two.
func sandbox(t testing.TB) (dest, victim string, unchanged func()) {
	t.Helper()
	base := t.TempDir()
	dest, victim = filepath.Join(base, "dest"), filepath.Join(base, "victim")
	require.NoError(t, os.Mkdir(dest, 0o755))
	require.NoError(t, os.Mkdir(victim, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(victim, "keep"), []byte("original"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(victim, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(victim, "sub", "inner"), []byte("inner"), 0o600))
	before := snapshot(t, victim)
	return dest, victim, func() {
		t.Helper()
		require.Equal(t, before, snapshot(t, victim), "the victim beside dest is unchanged")
		entries, err := os.ReadDir(base)
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		require.Equal(t, []string{"dest", "victim"}, names, "nothing was written next to dest")
	}
}

// snapshot describes every entry under dir: type, permissions, and content
// or link target.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "link -> " + target
			return err
		case info.IsDir():
			out[filepath.ToSlash(rel)] = fmt.Sprintf("dir %o", info.Mode().Perm())
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			special := ""
			for _, s := range []struct {
				bit  fs.FileMode
				name string
			}{{fs.ModeSetuid, "+setuid"}, {fs.ModeSetgid, "+setgid"}, {fs.ModeSticky, "+sticky"}} {
				if info.Mode()&s.bit != 0 {
					special += s.name
				}
			}
			out[filepath.ToSlash(rel)] = fmt.Sprintf("file %o%s %q", info.Mode().Perm(), special, data)
			return err
		default:
			out[filepath.ToSlash(rel)] = "other " + info.Mode().String()
		}
		return nil
	}))
	return out
}

// tree returns every regular file under dir with its content.
func tree(t testing.TB, dir string) map[string]string {
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

// writeFiles creates files (and their directories) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
}

// ent is one entry of a test tar.
type ent struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	size       int64 // the declared size when not 0; the body is written as is
}

func reg(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) ent       { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target}
}

// tarOf builds a tar stream. An entry whose declared size is larger than
// its body ends the stream there, truncated, as a lying header would.
func tarOf(t testing.TB, entries ...ent) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if e.size != 0 {
			size = e.size
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: size, Format: tar.FormatPAX}))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
			if size > int64(len(e.body)) {
				return &buf // truncated: no padding, no end blocks
			}
		}
	}
	require.NoError(t, tw.Close())
	return &buf
}

// rawHeader is a hand-made USTAR header block, for headers archive/tar
// refuses to write.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// pad pads data to a whole number of 512-byte blocks.
func pad(data []byte) []byte {
	if r := len(data) % 512; r != 0 {
		data = append(data, make([]byte, 512-r)...)
	}
	return data
}

// paxRecord encodes one PAX record, whose length counts itself.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + 1
	for len(fmt.Sprint(n))+len(rec) != n {
		n = len(fmt.Sprint(n)) + len(rec)
	}
	return fmt.Sprint(n) + rec
}

// sparseTar is a GNU 1.0 sparse file in PAX form: realSize bytes, of which
// only the first holds data ("x"), the rest a hole.
func sparseTar(name string, realSize int64) *bytes.Buffer {
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", fmt.Sprint(realSize))
	sparseMap := pad([]byte("1\n0\n1\n"))
	var buf bytes.Buffer
	buf.Write(rawHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(pax))))
	buf.Write(pad([]byte(pax)))
	buf.Write(rawHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(sparseMap))+1))
	buf.Write(pad(append(sparseMap, 'x')))
	buf.Write(make([]byte, 1024))
	return &buf
}

// umask returns the process umask.
func umask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }

// exampleTar writes a tar stream for the examples.
type exampleTar struct{ tw *tar.Writer }

func tarWriter(w *bytes.Buffer) exampleTar { return exampleTar{tar.NewWriter(w)} }

func (e exampleTar) symlink(name, target string) {
	_ = e.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target})
}

func (e exampleTar) file(name, body string) {
	_ = e.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))})
	_, _ = e.tw.Write([]byte(body))
}

func (e exampleTar) close() { _ = e.tw.Close() }
