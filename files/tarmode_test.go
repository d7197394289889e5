package files_test

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

// TestWriteTarKeepsStagedModes: what Stage wrote with a mode goes into the
// tar with it; Shared makes it usable by a user who does not own it,
// executable by all when its owner may execute it.
func TestWriteTarKeepsStagedModes(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, files.Stage(t.Context(), dir, map[string]files.Source{
		"run.sh":   files.WithMode(files.String("#!/bin/sh\n"), 0o755),
		"own.sh":   files.WithMode(files.String("#!/bin/sh\n"), 0o700),
		"data.txt": files.WithMode(files.String("x"), 0o640),
	}))
	modes := func(shared bool) map[string]fs.FileMode {
		var buf bytes.Buffer
		require.NoError(t, files.WriteTar(t.Context(), &buf, dir, files.TarOptions{Shared: shared}))
		got := map[string]fs.FileMode{}
		tr := tar.NewReader(&buf)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if hdr.Typeflag == tar.TypeReg {
				got[hdr.Name] = fs.FileMode(hdr.Mode)
			}
		}
		return got
	}
	assert.Equal(t, map[string]fs.FileMode{"run.sh": 0o755, "own.sh": 0o700, "data.txt": 0o640}, modes(false))
	assert.Equal(t, map[string]fs.FileMode{"run.sh": 0o777, "own.sh": 0o777, "data.txt": 0o666}, modes(true))
}
