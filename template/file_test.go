package template

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileOptions(t *testing.T) {
	v := map[string]any{"x": "y", "big": strings.Repeat("b", 3<<20)}
	r := New(v, FileOptions(nil))

	t.Run("a file may render to more than MaxSize", func(t *testing.T) {
		out, err := r.Render(t.Context(), "inputFiles.big.txt", "start {{ big }} end")
		require.NoError(t, err)
		assert.Len(t, out, 3<<20+len("start  end"))
	})
	t.Run("up to MaxFileSize", func(t *testing.T) {
		_, err := r.Render(t.Context(), "inputFiles.big.txt", "{{ big }}{{ big }}{{ big }}")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "more than 8388608 bytes")
	})
	t.Run("plain text of any size is not parsed", func(t *testing.T) {
		plain := strings.Repeat("line of data\n", (MaxFileSize+1)/13+1)
		out, err := r.Render(t.Context(), "inputFiles.data.txt", plain)
		require.NoError(t, err)
		assert.Equal(t, plain, out)
	})
	t.Run("text with markup is capped at MaxSize", func(t *testing.T) {
		// Parsing is what costs: 1 MiB of dense markup took 200 MiB of heap.
		long := strings.Repeat("a", MaxSize) + "{{ x }}"
		_, err := r.Render(t.Context(), "inputFiles.conf.yml", long)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "over the cap of 1048576")
		out, err := r.Render(t.Context(), "inputFiles.conf.yml", strings.Repeat("a", MaxSize-7)+"{{ x }}")
		require.NoError(t, err)
		assert.Len(t, out, MaxSize-7+1)
	})
	t.Run("secrets", func(t *testing.T) {
		out, err := New(nil, FileOptions(map[string]string{"TOKEN": "s3cr3t-value"})).Render(t.Context(), "inputFiles.f", "{{ secret('TOKEN') }}")
		require.NoError(t, err)
		assert.Equal(t, "s3cr3t-value", out)
	})
}

func TestMaxTemplateSizeDefaultsToMaxSize(t *testing.T) {
	// Zero keeps the old meaning: the template text's cap is the output's.
	_, err := New(nil, Options{MaxSize: 10}).Render(t.Context(), "f", "{{ 'a' }}          ")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the cap of 10")
	_, err = New(nil, Options{MaxSize: -1}).Render(t.Context(), "f", strings.Repeat("a", MaxSize)+"{{ 'a' }}")
	require.NoError(t, err, "no cap")
}
