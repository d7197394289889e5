package docker

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/core"
)

// TestReleaseLocksWhatItCannotFinish: when the hygiene walk cannot finish
// (here its context is done), the working directory is closed to everyone
// but its owner and the error says so.
func TestReleaseLocksWhatItCannotFinish(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "w"), nil, 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "w"), 0o666))
	ws := &mountFiles{ws: &core.Workspace{HostDir: dir, Created: true}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := ws.release(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "left with mode 0700")
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())

	_, err = ws.release(t.Context())
	require.NoError(t, err, "a second release finishes the walk")
	fi, err = os.Stat(filepath.Join(dir, "w"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o644), fi.Mode().Perm())
}
