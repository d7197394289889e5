package docker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
)

// BenchmarkBuild compares a build's cache hit (an inspect, no build call)
// with the build itself (NoCache: every step again) on a small context.
//
//	CI=true go test ./docker -run '^$' -bench BenchmarkBuild -benchtime 10x
func BenchmarkBuild(b *testing.B) {
	cli := testenv.Engine(b)
	r, err := docker.New(docker.Config{})
	require.NoError(b, err)
	b.Cleanup(func() { _ = r.Close() })
	dir := b.TempDir()
	writeBuildBenchContext(b, dir)
	spec := build.Spec{Context: dir, Name: "lading-test/build-bench"}
	img, err := r.Build(b.Context(), spec)
	require.NoError(b, err)
	seen := map[string]build.Image{img.ID: img}
	b.Cleanup(func() {
		for _, img := range seen {
			removeBuiltImage(b, cli, img)
		}
	})

	b.Run("cache hit", func(b *testing.B) {
		for b.Loop() {
			img, err := r.Build(b.Context(), spec)
			require.NoError(b, err)
			require.True(b, img.Cached)
		}
	})
	b.Run("build (noCache)", func(b *testing.B) {
		forced := spec
		forced.NoCache = true
		for b.Loop() {
			img, err := r.Build(b.Context(), forced)
			require.NoError(b, err)
			seen[img.ID] = img
		}
	})
}
