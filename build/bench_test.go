package build_test

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
)

// BenchmarkContext measures the walk of a context of 10,000 files of
// 1 KiB in 100 directories: the digest (read and hash) and the tar stream
// (read, hash and write).
//
//	go test ./build -run '^$' -bench BenchmarkContext
func BenchmarkContext(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 1024)
	for i := range 10000 {
		sub := filepath.Join(dir, strconv.Itoa(i%100))
		require.NoError(b, os.MkdirAll(sub, 0o755))
		data[0] = byte(i)
		require.NoError(b, os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), data, 0o644))
	}
	require.NoError(b, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM x\n"), 0o644))
	require.NoError(b, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("**/*7\n!7/7\n"), 0o644))
	c := open(b, build.Spec{Context: dir})
	b.Run("digest", func(b *testing.B) {
		for b.Loop() {
			_, err := c.Digest(b.Context())
			require.NoError(b, err)
		}
	})
	b.Run("tar", func(b *testing.B) {
		for b.Loop() {
			_, err := c.WriteTar(b.Context(), io.Discard)
			require.NoError(b, err)
		}
	})
}
