package files_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

// fuzzTokens are the pieces fuzzed names and link targets are made of: the
// names of what fuzzDest plants, separators, dots and "VICTIM" (the victim's
// absolute path).
var fuzzTokens = []string{"a", "b", "/", "/", ".", "..", "./", "lnk", "abs", "hl", "file", "in", "sub", "old", "x", `\`, "VICTIM", "work/", "\x00", "//"}

// fuzzTypes are the entry types fuzzed entries take.
var fuzzTypes = []byte{tar.TypeReg, tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeGNUSparse, 'Z'}

// fuzzReader hands out the bytes of a fuzz input, then zeros.
type fuzzReader struct{ data []byte }

func (r *fuzzReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *fuzzReader) tokens(victim string) string {
	var sb strings.Builder
	for n := int(r.byte() % 8); n > 0; n-- {
		tok := fuzzTokens[int(r.byte())%len(fuzzTokens)]
		sb.WriteString(strings.ReplaceAll(tok, "VICTIM", victim))
	}
	return sb.String()
}

// fuzzTar builds a tar stream from a fuzz input: a sequence of entries, each
// a type, a mode, a name, a link target and a body. Headers archive/tar will
// not write are left out.
func fuzzTar(data []byte, victim string) []byte {
	r := &fuzzReader{data: data}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n := 0; len(r.data) > 0 && n < 32; n++ {
		typ := fuzzTypes[int(r.byte())%len(fuzzTypes)]
		mode := int64(r.byte())<<4 | int64(r.byte())
		name, link := r.tokens(victim), r.tokens(victim)
		body := bytes.Repeat([]byte{'x'}, int(r.byte()%16))
		hdr := &tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: mode}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(body))
		}
		if tw.WriteHeader(hdr) != nil {
			continue
		}
		if hdr.Size > 0 {
			_, _ = tw.Write(body)
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// fuzzDest plants links and files in dest that a hostile stream could try
// to go through or write through.
func fuzzDest(t *testing.T, dest, victim string) {
	t.Helper()
	require.NoError(t, os.Symlink("../victim", filepath.Join(dest, "lnk")))
	require.NoError(t, os.Symlink(victim, filepath.Join(dest, "abs")))
	require.NoError(t, os.Symlink(filepath.Join(victim, "keep"), filepath.Join(dest, "file")))
	require.NoError(t, os.Link(filepath.Join(victim, "keep"), filepath.Join(dest, "hl")))
	require.NoError(t, os.Mkdir(filepath.Join(dest, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dest, "sub", "old"), []byte("old"), 0o644))
	require.NoError(t, os.Symlink("sub", filepath.Join(dest, "in")))
	require.NoError(t, os.WriteFile(filepath.Join(dest, "x"), []byte("xxx"), 0o644)) // what an entry "x" of 3 bytes says
}

// FuzzExtract feeds Extract streams built from fuzz input (first byte even:
// the rest is a raw tar stream; odd: a sequence of entries, see fuzzTar),
// into a destination with planted links and a victim directory beside it.
// Whatever the stream, the victim is unchanged and nothing appears outside
// dest; on error dest is exactly as before; on success every new path in
// dest is a directory or a regular file Extract reported, with a mode within
// 0o755.
func FuzzExtract(f *testing.F) {
	seedEntries := func(entries ...[]byte) []byte {
		return append([]byte{1}, bytes.Join(entries, nil)...)
	}
	overwrite := func(seed []byte) []byte { return append([]byte{3}, seed[1:]...) }
	tok := func(s string) byte {
		for i, t := range fuzzTokens {
			if t == s {
				return byte(i)
			}
		}
		panic(s)
	}
	typ := func(b byte) byte { return byte(bytes.IndexByte(fuzzTypes, b)) }
	// entry: type, mode (2 bytes), name tokens, link tokens, body length.
	entry := func(t byte, name, link []string, body byte) []byte {
		out := []byte{typ(t), 0x1a, 0x04, byte(len(name))}
		for _, n := range name {
			out = append(out, tok(n))
		}
		out = append(out, byte(len(link)))
		for _, l := range link {
			out = append(out, tok(l))
		}
		return append(out, body)
	}
	f.Add(seedEntries(entry(tar.TypeSymlink, []string{"a"}, []string{"/"}, 0), entry(tar.TypeReg, []string{"a", "/", "x"}, nil, 3)))
	f.Add(seedEntries(entry(tar.TypeReg, []string{"lnk", "/", "x"}, nil, 3)))
	f.Add(seedEntries(entry(tar.TypeReg, []string{"file"}, nil, 3), entry(tar.TypeReg, []string{"hl"}, nil, 3)))
	f.Add(overwrite(seedEntries(entry(tar.TypeReg, []string{"file"}, nil, 3), entry(tar.TypeReg, []string{"hl"}, nil, 3), entry(tar.TypeReg, []string{"sub", "/", "old"}, nil, 3))))
	f.Add(overwrite(seedEntries(entry(tar.TypeReg, []string{"hl"}, nil, 3), entry(tar.TypeReg, []string{"sub", "/", "old"}, nil, 3), entry(tar.TypeReg, []string{"..", "/", "x"}, nil, 3))))
	f.Add(seedEntries(entry(tar.TypeReg, []string{"..", "/", "x"}, nil, 1), entry(tar.TypeReg, []string{"VICTIM", "/", "x"}, nil, 1)))
	f.Add(seedEntries(entry(tar.TypeLink, []string{"b"}, []string{"VICTIM", "/", "x"}, 0), entry(tar.TypeReg, []string{"b"}, nil, 2)))
	f.Add(seedEntries(entry(tar.TypeReg, []string{"in", "/", "x"}, nil, 1), entry(tar.TypeReg, []string{"sub", "/", "old"}, nil, 1)))
	f.Add(seedEntries(entry(tar.TypeDir, []string{"a", "/"}, nil, 0), entry(tar.TypeReg, []string{"a", "/", "b"}, nil, 5), entry(tar.TypeReg, []string{"a"}, nil, 1)))
	f.Add(seedEntries(entry(tar.TypeChar, []string{"x"}, nil, 0)))
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "a", Linkname: "../victim"})
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "a/keep", Size: 4, Mode: 0o4777})
	_, _ = tw.Write([]byte("evil"))
	_ = tw.Close()
	f.Add(append([]byte{0}, raw.Bytes()...))
	f.Add(append([]byte{2}, sparseTar("s", 4096).Bytes()...))
	f.Add(append([]byte{4}, sparseTar("lnk/s", 4096).Bytes()...))
	ifChanged := func(flags byte, seed []byte) []byte { return append([]byte{flags}, seed[1:]...) }
	f.Add(ifChanged(1|8, seedEntries(entry(tar.TypeReg, []string{"x"}, nil, 3), entry(tar.TypeReg, []string{"file"}, nil, 2), entry(tar.TypeReg, []string{"hl"}, nil, 3))))
	f.Add(ifChanged(1|8|16, seedEntries(entry(tar.TypeReg, []string{"x"}, nil, 3), entry(tar.TypeReg, []string{"..", "/", "x"}, nil, 1))))
	f.Add(ifChanged(1|32, seedEntries(entry(tar.TypeReg, []string{"x"}, nil, 3))))
	f.Add(ifChanged(1|2|64, seedEntries(entry(tar.TypeReg, []string{"x"}, nil, 2), entry(tar.TypeReg, []string{"sub", "/", "old"}, nil, 3))))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		dest, victim, unchanged := sandbox(t)
		fuzzDest(t, dest, victim)
		before := snapshot(t, dest)
		in := data[1:]
		if data[0]&1 == 1 {
			in = fuzzTar(in, victim)
		}
		opts := files.ExtractOptions{MaxBytes: 1 << 20, MaxFiles: 64, Overwrite: data[0]&2 != 0}
		if data[0]&4 != 0 {
			opts.StripPrefix = "work/"
		}
		if data[0]&8 != 0 { // Write, Skip or WriteIfChanged, by the name
			opts.Decide = func(rel string, _ *tar.Header) files.Decision { return files.Decision(len(rel) % 3) }
		}
		switch data[0] & 48 {
		case 16:
			opts.Under = "sub/u"
		case 32:
			opts.Under = "in/u" // through a link: refused
		}
		var stats files.ExtractStats
		var err error
		if data[0]&64 != 0 { // extracted, then undone
			var x *files.Extraction
			x, stats, err = files.ExtractPending(context.Background(), bytes.NewReader(in), dest, opts)
			if err == nil {
				require.NoError(t, x.Rollback())
				unchanged()
				require.Equal(t, before, snapshot(t, dest), "after Rollback dest is as it was")
				return
			}
		} else {
			stats, err = files.Extract(context.Background(), bytes.NewReader(in), dest, opts)
		}

		unchanged()
		after := snapshot(t, dest)
		if err != nil {
			require.Equal(t, before, after, "after an error (%v) dest is as it was", err)
			return
		}
		written := map[string]bool{}
		for _, f := range stats.Files {
			clean, ok := files.LocalPath(f)
			require.True(t, ok && clean == f, "reported file %q is local and clean", f)
			written[f] = true
		}
		for rel, desc := range after {
			require.NotContains(t, rel, ".lading-replaced-")
			if before[rel] == desc {
				continue
			}
			switch {
			case written[rel]:
				require.True(t, strings.HasPrefix(desc, "file "), "%s: %s", rel, desc)
				fi, err := os.Lstat(filepath.Join(dest, rel))
				require.NoError(t, err)
				require.Zero(t, fi.Mode()&^(fs.FileMode(0o755)), "%s: mode %v", rel, fi.Mode())
			case strings.HasPrefix(desc, "dir "):
			default:
				t.Fatalf("%s appeared or changed but was not reported: %s (was %q)", rel, desc, before[rel])
			}
		}
		for rel, desc := range before {
			if _, ok := after[rel]; !ok {
				t.Fatalf("%s (%s) disappeared", rel, desc)
			}
		}
	})
}
