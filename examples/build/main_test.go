package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/internal/testenv"
)

func TestBuildThenRun(t *testing.T) {
	cli := testenv.Engine(t)
	dir := t.TempDir()
	for _, name := range []string{"Containerfile", "greet.sh", ".dockerignore", "NOTES.md"} {
		data, err := os.ReadFile(filepath.Join("app", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	// A greeting of this run's own, so the engine's layer cache of an
	// earlier run does not decide what is tested.
	greeting := "hello-" + time.Now().Format("150405.000000000")
	spec := build.Spec{Context: dir, Name: "lading-example/greeter", Args: map[string]string{"BASE": testenv.Image, "GREETING": greeting}}

	img, res, err := run(t.Context(), spec)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = cli.ImageRemove(ctx, img.Ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	assert.False(t, img.Cached)
	assert.Equal(t, greeting, res.Outputs["greeting"])

	again, res, err := run(t.Context(), spec)
	require.NoError(t, err)
	assert.True(t, again.Cached)
	assert.Equal(t, img.Ref, again.Ref)
	assert.Equal(t, greeting, res.Outputs["greeting"])

	// NOTES.md is ignored: changing it is still a cache hit.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "NOTES.md"), []byte("changed"), 0o644))
	again, _, err = run(t.Context(), spec)
	require.NoError(t, err)
	assert.True(t, again.Cached)
}
