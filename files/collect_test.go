package files_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

func TestExtractDecide(t *testing.T) {
	big := strings.Repeat("x", 3<<20) // more than one copy buffer
	tests := []struct {
		name      string
		before    map[string]string
		decision  files.Decision
		entry     string
		want      string
		written   bool
		unchanged int
	}{
		{"skip leaves the host file", map[string]string{"f": "host"}, files.Skip, "tar!", "host", false, 0},
		{"skip writes nothing new", nil, files.Skip, "tar!", "", false, 0},
		{"if changed, same content: untouched", map[string]string{"f": big}, files.WriteIfChanged, big, big, false, 1},
		{"if changed, differs at the end", map[string]string{"f": big}, files.WriteIfChanged, big[:len(big)-1] + "y", big[:len(big)-1] + "y", true, 0},
		{"if changed, differs at the start", map[string]string{"f": "abcd"}, files.WriteIfChanged, "xbcd", "xbcd", true, 0},
		{"if changed, host file shorter", map[string]string{"f": "ab"}, files.WriteIfChanged, "abcd", "abcd", true, 0},
		{"if changed, no host file", nil, files.WriteIfChanged, "abcd", "abcd", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			writeFiles(t, dest, tt.before)
			var asked []string
			stats, err := files.Extract(t.Context(), tarOf(t, reg("f", tt.entry)), dest, files.ExtractOptions{
				Decide: func(rel string, hdr *tar.Header) files.Decision {
					asked = append(asked, rel)
					assert.Equal(t, int64(len(tt.entry)), hdr.Size)
					return tt.decision
				}})
			require.NoError(t, err)
			assert.Equal(t, []string{"f"}, asked)
			assert.Equal(t, tt.unchanged, stats.Unchanged)
			if tt.written {
				assert.Equal(t, []string{"f"}, stats.Files)
			} else {
				assert.Empty(t, stats.Files)
			}
			got, err := os.ReadFile(filepath.Join(dest, "f"))
			if tt.want == "" {
				assert.ErrorIs(t, err, os.ErrNotExist)
			} else {
				require.NoError(t, err)
				assert.True(t, string(got) == tt.want, "content of f (%d bytes, want %d)", len(got), len(tt.want))
			}
			assertNoBackups(t, dest)
		})
	}
}

func TestExtractUnder(t *testing.T) {
	dest := t.TempDir()
	stats, err := files.Extract(t.Context(), tarOf(t, dir("c/"), reg("c/x", "1"), reg("c/d/y", "2")), dest, files.ExtractOptions{Under: "a/b"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a/b/c/x", "a/b/c/d/y"}, stats.Files)
	assert.Equal(t, map[string]string{"a/b/c/x": "1", "a/b/c/d/y": "2"}, tree(t, dest))

	_, err = files.Extract(t.Context(), tarOf(t, reg("x", "1")), dest, files.ExtractOptions{Under: "../up"})
	require.ErrorContains(t, err, "not a local path")

	// Under goes through no link in dest.
	require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(dest, "link")))
	_, err = files.Extract(t.Context(), tarOf(t, reg("x", "1")), dest, files.ExtractOptions{Under: "link/in"})
	require.ErrorIs(t, err, files.ErrUnsafeEntry)
}

func TestExtractPendingRollback(t *testing.T) {
	dest := t.TempDir()
	writeFiles(t, dest, map[string]string{"keep": "old"})
	first, _, err := files.ExtractPending(t.Context(), tarOf(t, reg("keep", "new"), reg("made/one", "1")), dest, files.ExtractOptions{Overwrite: true})
	require.NoError(t, err)
	second, _, err := files.ExtractPending(t.Context(), tarOf(t, reg("two", "2")), dest, files.ExtractOptions{})
	require.NoError(t, err)
	assert.Equal(t, "new", tree(t, dest)["keep"])
	require.NoError(t, second.Rollback())
	require.NoError(t, first.Rollback())
	assert.Equal(t, map[string]string{"keep": "old"}, tree(t, dest), "both undone, the replaced file put back")
	require.NoError(t, first.Commit(), "after Rollback, Commit does nothing")
	assert.Equal(t, map[string]string{"keep": "old"}, tree(t, dest))

	third, _, err := files.ExtractPending(t.Context(), tarOf(t, reg("keep", "newer")), dest, files.ExtractOptions{Overwrite: true})
	require.NoError(t, err)
	require.NoError(t, third.Commit())
	require.NoError(t, third.Rollback(), "after Commit, Rollback does nothing")
	assert.Equal(t, map[string]string{"keep": "newer"}, tree(t, dest))
	assertNoBackups(t, dest)
}

func TestWriteTarOnFile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "aa", "sub/b.txt": "bbb"})
	when := time.Date(2021, 2, 3, 4, 5, 6, 700_000_000, time.UTC)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "a.txt"), when, when))
	got := map[string]files.StagedFile{}
	var buf bytes.Buffer
	require.NoError(t, files.WriteTar(t.Context(), &buf, dir, files.TarOptions{Prefix: "work/", Shared: true,
		OnFile: func(rel string, f files.StagedFile) { got[rel] = f }}))
	require.Len(t, got, 2)
	assert.Equal(t, int64(2), got["a.txt"].Size)
	assert.True(t, got["a.txt"].ModTime.Equal(when), "full precision: %v", got["a.txt"].ModTime)
	assert.Equal(t, os.FileMode(0o666), got["a.txt"].Mode&0o666, "the mode as sent (Shared)")
	assert.Equal(t, int64(3), got["sub/b.txt"].Size)
}

func TestMatcherRootsAndUnmatched(t *testing.T) {
	m, err := files.NewMatcher([]string{"a.txt", "out/**/*.csv", "out/x/y.txt", "sub/*.log", "./lit/b"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a.txt", "lit/b", "out", "sub"}, m.Roots())
	assert.Equal(t, []int{1, 3}, m.Unmatched([]string{"a.txt", "out/x/y.txt", "lit/b", "other"}))
	assert.Equal(t, []string{"a.txt", "out/**/*.csv", "out/x/y.txt", "sub/*.log", "lit/b"}, m.Patterns())

	top, err := files.NewMatcher([]string{"*.txt", "deep/a"})
	require.NoError(t, err)
	assert.Equal(t, []string{""}, top.Roots())
	var none *files.Matcher
	assert.Nil(t, none.Roots())
	assert.Nil(t, none.Unmatched([]string{"a"}))
}

func TestCollectChanged(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"same.txt": "s", "changed.txt": "c", "moved.txt": "m", "out-1/o.txt": "o"})
	m, err := files.NewMatcher([]string{"*.txt"})
	require.NoError(t, err)
	snap, err := files.TakeSnapshot(t.Context(), dir, m)
	require.NoError(t, err)
	assert.Equal(t, 3, snap.Len(), "*.txt matches at the top only: out-1 is not walked")

	// Same size, same modification time, in place: the change time moves.
	fi, err := os.Stat(filepath.Join(dir, "changed.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "changed.txt"), []byte("C"), 0o644))
	require.NoError(t, os.Chtimes(filepath.Join(dir, "changed.txt"), fi.ModTime(), fi.ModTime()))
	// Replaced by another file with the same size and time: a new inode.
	fi, err = os.Stat(filepath.Join(dir, "moved.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tmp"), []byte("M"), 0o644))
	require.NoError(t, os.Chtimes(filepath.Join(dir, "tmp"), fi.ModTime(), fi.ModTime()))
	require.NoError(t, os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "moved.txt")))
	writeFiles(t, dir, map[string]string{"new.txt": "n", "out-1/p.txt": "p"})

	c, err := files.CollectChanged(t.Context(), dir, m, files.CollectOptions{Under: []string{"out-1"}, Since: snap})
	require.NoError(t, err)
	assert.Equal(t, []string{"changed.txt", "moved.txt", "new.txt", "o.txt", "p.txt"}, sortedKeys(c.Files))
	assert.Equal(t, []string{"changed.txt", "moved.txt", "new.txt"}, c.Globbed)
	assert.Equal(t, []string{"new.txt", "out-1/o.txt", "out-1/p.txt"}, c.Created)
	assert.Equal(t, int64(5), c.Bytes)

	t.Run("limits", func(t *testing.T) {
		c, err := files.CollectChanged(t.Context(), dir, m, files.CollectOptions{Under: []string{"out-1"}, Since: snap, MaxFiles: 4})
		require.ErrorIs(t, err, files.ErrLimit)
		assert.Len(t, c.Files, 5, "the whole collection comes with the error")
		_, err = files.CollectChanged(t.Context(), dir, m, files.CollectOptions{Under: []string{"out-1"}, Since: snap, MaxBytes: 4})
		require.ErrorIs(t, err, files.ErrLimit)
		require.NoError(t, os.Truncate(filepath.Join(dir, "new.txt"), 5<<30)) // sparse: counts by its size
		_, err = files.CollectChanged(t.Context(), dir, m, files.CollectOptions{Since: snap, MaxBytes: 1 << 30})
		require.ErrorIs(t, err, files.ErrLimit)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := files.CollectChanged(ctx, dir, m, files.CollectOptions{})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestCollectDepth(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a", "d/b.txt": "b", "d/e/c.txt": "c", "out-1/x/y/z.txt": "z"})
	for _, tt := range []struct {
		globs []string
		want  []string // keys; z.txt from the output directory
		snap  int
	}{
		{[]string{"*.txt"}, []string{"a.txt", "x/y/z.txt"}, 1},
		{[]string{"*/*.txt"}, []string{"d/b.txt", "x/y/z.txt"}, 2},
		{[]string{"{a,d/e/c}.txt"}, []string{"a.txt", "d/e/c.txt", "x/y/z.txt"}, 3},
		{[]string{"**/c.txt"}, []string{"d/e/c.txt", "x/y/z.txt"}, 4},
	} {
		t.Run(strings.Join(tt.globs, ","), func(t *testing.T) {
			m, err := files.NewMatcher(tt.globs)
			require.NoError(t, err)
			c, err := files.CollectChanged(t.Context(), dir, m, files.CollectOptions{Under: []string{"out-1"}})
			require.NoError(t, err)
			assert.Equal(t, tt.want, sortedKeys(c.Files))
			snap, err := files.TakeSnapshot(t.Context(), dir, m)
			require.NoError(t, err)
			assert.Equal(t, tt.snap, snap.Len(), "files the snapshot walked to")
		})
	}
}

func TestExtractStop(t *testing.T) {
	dest := t.TempDir()
	var asked []string
	stats, err := files.Extract(t.Context(), tarOf(t, reg("a", "1"), reg("b", "2"), reg("c", "3")), dest, files.ExtractOptions{
		Stop: func(rel string) bool { asked = append(asked, rel); return rel == "b" }})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, asked, "nothing read past the stop")
	assert.Equal(t, []string{"a"}, stats.Files)
	assert.Equal(t, map[string]string{"a": "1"}, tree(t, dest))

}
