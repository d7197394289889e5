package files_test

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
)

func TestSanitize(t *testing.T) {
	dir := t.TempDir()
	p := func(rel string) string { return filepath.Join(dir, rel) }
	require.NoError(t, os.WriteFile(p("s"), []byte("x"), 0o755))
	require.NoError(t, os.Chmod(p("s"), 0o755|fs.ModeSetuid|fs.ModeSetgid))
	require.NoError(t, mkfifo(p("f")))
	l, err := net.Listen("unix", p("sock"))
	require.NoError(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	require.NoError(t, os.Mkdir(p("sub"), 0o755))
	require.NoError(t, os.Chmod(p("sub"), 0o777|fs.ModeSticky))
	require.NoError(t, os.WriteFile(p("sub/w"), []byte("w"), 0o600))
	require.NoError(t, os.Chmod(p("sub/w"), 0o666))
	require.NoError(t, os.WriteFile(p("sub/ok"), []byte("ok"), 0o640))
	require.NoError(t, os.Symlink("/etc/shadow", p("link")))
	dev := os.Geteuid() == 0
	if dev {
		require.NoError(t, syscall.Mknod(p("d"), syscall.S_IFBLK|0o666, 7<<8))
	}

	st, err := files.Sanitize(t.Context(), dir, files.SanitizeOptions{})
	require.NoError(t, err)
	removed := []string{"f", "sock"}
	if dev {
		removed = []string{"d", "f", "sock"}
	}
	assert.Equal(t, removed, st.Removed)
	assert.Equal(t, []string{"s"}, st.Cleared)
	assert.Equal(t, 2, st.Restricted, "sub and sub/w")
	assert.Empty(t, st.Failed)
	assert.Equal(t, len(removed)+5, st.Entries)

	assertMode(t, p("s"), 0o755)
	fi, err := os.Lstat(p("s"))
	require.NoError(t, err)
	assert.Zero(t, fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid))
	fi, err = os.Lstat(p("sub"))
	require.NoError(t, err)
	assert.Equal(t, fs.ModeDir|0o755, fi.Mode())
	assertMode(t, p("sub/w"), 0o644)
	assertMode(t, p("sub/ok"), 0o640)
	for _, rel := range removed {
		_, err := os.Lstat(p(rel))
		assert.ErrorIs(t, err, fs.ErrNotExist, rel)
	}
	target, err := os.Readlink(p("link"))
	require.NoError(t, err)
	assert.Equal(t, "/etc/shadow", target, "links are left alone")

	again, err := files.Sanitize(t.Context(), dir, files.SanitizeOptions{})
	require.NoError(t, err)
	assert.Equal(t, files.SanitizeStats{Entries: 5}, again, "nothing left to do")
}

func TestSanitizeOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing owners needs root")
	}
	dir := t.TempDir()
	p := func(rel string) string { return filepath.Join(dir, rel) }
	require.NoError(t, os.Mkdir(p("d"), 0o755))
	require.NoError(t, os.WriteFile(p("d/theirs"), nil, 0o644))
	require.NoError(t, os.WriteFile(p("root"), nil, 0o644))
	require.NoError(t, os.WriteFile(p("mine"), nil, 0o644))
	require.NoError(t, os.Symlink("/etc/shadow", p("link")))
	for _, rel := range []string{"d", "d/theirs", "link"} {
		require.NoError(t, os.Lchown(p(rel), 1000, 1000))
	}
	require.NoError(t, os.Lchown(p("mine"), 4242, 4242))

	st, err := files.Sanitize(t.Context(), dir, files.SanitizeOptions{Owner: true, UID: 4242, GID: 4343})
	require.NoError(t, err)
	assert.Equal(t, 3, st.Chowned)
	owner := func(rel string) [2]uint32 {
		fi, err := os.Lstat(p(rel))
		require.NoError(t, err)
		s := fi.Sys().(*syscall.Stat_t)
		return [2]uint32{s.Uid, s.Gid}
	}
	assert.Equal(t, [2]uint32{4242, 4343}, owner("d"))
	assert.Equal(t, [2]uint32{4242, 4343}, owner("d/theirs"))
	assert.Equal(t, [2]uint32{4242, 4343}, owner("link"))
	assert.Equal(t, [2]uint32{0, 0}, owner("root"), "root's entries are left")
	assert.Equal(t, [2]uint32{4242, 4242}, owner("mine"), "the owner's are left")
	fi, err := os.Stat("/etc/shadow")
	require.NoError(t, err)
	assert.Zero(t, fi.Sys().(*syscall.Stat_t).Uid, "a link's target is never changed")
}

func TestSanitizeBounded(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c", "d"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o666))
		require.NoError(t, os.Chmod(filepath.Join(dir, name), 0o666))
	}
	st, err := files.Sanitize(t.Context(), dir, files.SanitizeOptions{MaxEntries: 2})
	require.ErrorIs(t, err, files.ErrLimit)
	assert.Contains(t, err.Error(), "more than 2 entries")
	assert.Equal(t, 2, st.Entries)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = files.Sanitize(ctx, dir, files.SanitizeOptions{})
	require.ErrorIs(t, err, context.Canceled)

	_, err = files.Sanitize(t.Context(), filepath.Join(dir, "absent"), files.SanitizeOptions{})
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// BenchmarkSanitize measures a walk of a tree with nothing to change.
func BenchmarkSanitize(b *testing.B) {
	dir := b.TempDir()
	for i := range 100 {
		sub := filepath.Join(dir, "d"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		require.NoError(b, os.Mkdir(sub, 0o755))
		for j := range 100 {
			require.NoError(b, os.WriteFile(filepath.Join(sub, "f"+string(rune('a'+j%26))+string(rune('a'+j/26))), nil, 0o644))
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := files.Sanitize(b.Context(), dir, files.SanitizeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10100, "ns/entry")
}
