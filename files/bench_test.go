package files_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

var benchShapes = []struct {
	name        string
	files, size int
}{{"1000x64KiB", 1000, 64 << 10}, {"1x64MiB", 1, 64 << 20}}

// benchTree makes n files of size bytes each, in 10 directories.
func benchTree(b *testing.B, n, size int) string {
	b.Helper()
	dir := b.TempDir()
	data := bytes.Repeat([]byte("lading!\n"), size/8)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%05d", i))
		require.NoError(b, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(b, os.WriteFile(p, data, 0o644))
	}
	return dir
}

func BenchmarkWriteTar(b *testing.B) {
	for _, c := range benchShapes {
		b.Run(c.name, func(b *testing.B) {
			dir := benchTree(b, c.files, c.size)
			b.SetBytes(int64(c.files * c.size))
			b.ReportAllocs()
			for b.Loop() {
				require.NoError(b, files.WriteTar(context.Background(), io.Discard, dir, files.TarOptions{Prefix: "work/"}))
			}
		})
	}
}

func BenchmarkExtract(b *testing.B) {
	for _, c := range benchShapes {
		b.Run(c.name, func(b *testing.B) {
			var archive bytes.Buffer
			require.NoError(b, files.WriteTar(context.Background(), &archive, benchTree(b, c.files, c.size), files.TarOptions{Prefix: "work/"}))
			base := b.TempDir()
			b.SetBytes(int64(c.files * c.size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dest := filepath.Join(base, fmt.Sprint(i))
				i++
				require.NoError(b, os.Mkdir(dest, 0o755))
				_, err := files.Extract(context.Background(), bytes.NewReader(archive.Bytes()), dest, files.ExtractOptions{StripPrefix: "work/"})
				require.NoError(b, err)
				b.StopTimer()
				require.NoError(b, os.RemoveAll(dest))
				b.StartTimer()
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	m, err := files.NewMatcher([]string{"*.txt", "out/**", "{a,b}/*.csv", "[ab].yml", "**/*.json"})
	require.NoError(b, err)
	paths := []string{"a.txt", "sub/a.txt", "out/deep/nested/file.yml", "b/x.csv", "c/x.csv", "a.yml", "x/y/z/w.json", "x/y/z/w.xml"}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range paths {
			m.Match(p)
		}
	}
}
