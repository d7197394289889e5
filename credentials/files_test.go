package credentials

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// within runs f and fails the test if it has not returned after a long
// while: the cases below used to block forever or exhaust memory.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("still reading the config after 30 s")
		return nil
	}
}

// badFiles returns paths that are not docker configs lading may read: a
// FIFO nobody writes to, a device that never ends, a directory, and a
// regular file over the size cap.
func badFiles(t *testing.T) map[string]struct{ path, says string } {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(MaxConfigSize+1)) // sparse
	require.NoError(t, f.Close())
	return map[string]struct{ path, says string }{
		"FIFO":      {fifo, "named pipe"},
		"device":    {"/dev/zero", "device"},
		"directory": {dir, "directory"},
		"too large": {big, "larger than 1 MiB"},
	}
}

func TestLoadConfigReadsOnlyRegularFilesUpToTheCap(t *testing.T) {
	for name, tt := range badFiles(t) {
		t.Run(name, func(t *testing.T) {
			err := within(t, func() error { _, err := LoadConfig(tt.path); return err })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.says)
			assert.Contains(t, err.Error(), tt.path)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "%T", err)
			assert.Equal(t, tt.path, ce.Source)
		})
	}
}

func TestResolverReadsOnlyRegularFilesUpToTheCap(t *testing.T) {
	for name, tt := range badFiles(t) {
		if name == "directory" {
			continue // DOCKER_CONFIG names the directory holding config.json
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Symlink(tt.path, filepath.Join(dir, "config.json")))
			r := Resolver{Getenv: env(map[string]string{"DOCKER_CONFIG": dir})}
			err := within(t, func() error { _, err := r.Resolve(t.Context(), "r.example/x"); return err })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.says)
			assert.Contains(t, err.Error(), filepath.Join(dir, "config.json"))
		})
	}
}

func TestDockerAuthConfigSizeCapped(t *testing.T) {
	huge := `{"auths":{},"x":"` + strings.Repeat("a", MaxConfigSize) + `"}`
	r := Resolver{Getenv: env(map[string]string{"DOCKER_AUTH_CONFIG": huge})}
	_, err := r.Resolve(t.Context(), "r.example/x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DOCKER_AUTH_CONFIG")
	assert.Contains(t, err.Error(), "larger than 1 MiB")

	_, err = LoadConfig(huge)
	require.Error(t, err, "an inline config has the same cap")
	assert.Contains(t, err.Error(), "larger than 1 MiB")
}
