package files_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

func TestMatcher(t *testing.T) {
	paths := []string{
		"a.txt", "b.txt", "c.txt", "c.csv", "*.txt", "sub/a.txt", "sub/dir/file.csv", "file.xml",
		"out/bla.yml", "out/x/y.yml", "outside.yml", "test/application.yml",
	}
	tests := []struct {
		name     string
		patterns []string
		want     []string
	}{
		{"*.txt is the top level only", []string{"*.txt"}, []string{"a.txt", "b.txt", "c.txt", "*.txt"}},
		{"out/** recurses", []string{"out/**"}, []string{"out/bla.yml", "out/x/y.yml"}},
		{"out/*.yml is one level", []string{"out/*.yml"}, []string{"out/bla.yml"}},
		{"alternatives", []string{"{a,b}.txt"}, []string{"a.txt", "b.txt"}},
		{"alternatives with globs", []string{"{a,c}.*"}, []string{"a.txt", "c.txt", "c.csv"}},
		{"class", []string{"[ab].txt"}, []string{"a.txt", "b.txt"}},
		{"negated class", []string{"[!ab].txt"}, []string{"c.txt", "*.txt"}},
		{"range", []string{"[a-b].txt"}, []string{"a.txt", "b.txt"}},
		{"nested output files by name", []string{"file.xml", "sub/dir/file.csv"}, []string{"sub/dir/file.csv", "file.xml"}},
		{"**/ matches zero directories too", []string{"**/*.csv"}, []string{"c.csv", "sub/dir/file.csv"}},
		{"everything", []string{"**"}, paths},
		{"leading ./ dropped", []string{"./a.txt"}, []string{"a.txt"}},
		{"escaped metacharacter", []string{`\*.txt`}, []string{"*.txt"}},
		{"? is one character", []string{"?.txt"}, []string{"a.txt", "b.txt", "c.txt", "*.txt"}},
		{"a directory name matches no file", []string{"out"}, nil},
		{"several patterns", []string{"*.csv", "test/*"}, []string{"c.csv", "test/application.yml"}},
		{"no patterns", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := files.NewMatcher(tt.patterns)
			require.NoError(t, err)
			var got []string
			for _, p := range paths {
				if m.Match(p) {
					got = append(got, p)
				}
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, len(tt.patterns) == 0, m.Empty())
		})
	}
	t.Run("nil matcher", func(t *testing.T) {
		var m *files.Matcher
		assert.False(t, m.Match("a.txt"))
		assert.True(t, m.Empty())
		assert.Empty(t, m.Prefixes())
	})
	t.Run("prefixes", func(t *testing.T) {
		m, err := files.NewMatcher([]string{"*.txt", "out/**", "out/x/*.yml", "a.csv", "out/**/*.log"})
		require.NoError(t, err)
		assert.Equal(t, []string{"", "out", "out/x"}, m.Prefixes())
	})
}

func TestMatcherRefused(t *testing.T) {
	for _, tt := range []struct{ pattern, problem string }{
		{"/etc/*", "absolute"},
		{"/", "absolute"},
		{"{/etc/passwd,a}", "absolute"},
		{"{a,/etc/passwd}", "absolute"},
		{"../*", ".."},
		{"..", ".."},
		{"a/../../b", ".."},
		{"a/../b", ".."},
		{"{..,a}/x", ".."},
		{"a/{b,..}/c", ".."},
		{"[unclosed", "valid glob"},
		{"{a,b", "valid glob"},
		{"", "empty"},
		{"  ", "empty"},
		{"./", "empty"},
		{"a\x00b", "NUL"},
	} {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := files.NewMatcher([]string{"ok.txt", tt.pattern})
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "outputFiles", fe.Field)
			assert.Equal(t, tt.pattern, fe.Value)
			assert.Contains(t, fe.Problem, "entry 1")
			assert.Contains(t, fe.Problem, tt.problem)
		})
	}
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"output.txt": "o", "input.csv": "i", "sub/a.txt": "s", "file.xml": "1\n3\n", "sub/dir/file.csv": "2\n",
		"out-1/file.txt": "f", "out-1/nested/file.txt": "n", "out-1/output.txt": "from the output dir",
		"out/bla.yml": "b", "test/application.yml": "a",
	})
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.txt": "secret", "d/x.txt": "x"})
	for link, target := range map[string]string{
		"evil.txt": filepath.Join(outside, "secret.txt"), "rel.txt": "output.txt", "dirlink": filepath.Join(outside, "d"),
		"out-1/etc": "/etc", "out-1/up.txt": "../output.txt", "out/link.yml": "bla.yml", "out-link": "out-1",
	} {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, link)))
	}
	require.NoError(t, mkfifo(filepath.Join(dir, "fifo.txt")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dir.txt"), 0o755))

	tests := []struct {
		name     string
		patterns []string
		under    []string
		want     map[string]string // key -> path relative to dir
	}{
		{"*.txt: regular files only, no links, FIFOs or directories", []string{"*.txt"}, nil, map[string]string{"output.txt": "output.txt"}},
		{"the output directory, keyed relative to it", nil, []string{"out-1"}, map[string]string{
			"file.txt": "out-1/file.txt", "nested/file.txt": "out-1/nested/file.txt", "output.txt": "out-1/output.txt"}},
		{"globs and the output directory; the output directory wins a clash", []string{"*.txt", "out/**"}, []string{"out-1/"}, map[string]string{
			"file.txt": "out-1/file.txt", "nested/file.txt": "out-1/nested/file.txt", "output.txt": "out-1/output.txt", "out/bla.yml": "out/bla.yml"}},
		{"Kestra's nested outputs", []string{"file.xml", "sub/dir/file.csv"}, nil, map[string]string{
			"file.xml": "file.xml", "sub/dir/file.csv": "sub/dir/file.csv"}},
		{"out/** after an input in test/", []string{"out/**"}, nil, map[string]string{"out/bla.yml": "out/bla.yml"}},
		{"** takes every regular file", []string{"**"}, nil, map[string]string{
			"output.txt": "output.txt", "input.csv": "input.csv", "sub/a.txt": "sub/a.txt", "file.xml": "file.xml",
			"sub/dir/file.csv": "sub/dir/file.csv", "out-1/file.txt": "out-1/file.txt", "out-1/nested/file.txt": "out-1/nested/file.txt",
			"out-1/output.txt": "out-1/output.txt", "out/bla.yml": "out/bla.yml", "test/application.yml": "test/application.yml"}},
		{"an output directory that is a symbolic link is not followed", nil, []string{"out-link"}, map[string]string{}},
		{"an output directory that does not exist", nil, []string{"absent"}, map[string]string{}},
		{"an empty output directory name is ignored", nil, []string{""}, map[string]string{}},
		{"nothing asked", nil, nil, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := files.NewMatcher(tt.patterns)
			require.NoError(t, err)
			got, err := files.Collect(dir, m, tt.under...)
			require.NoError(t, err)
			want := map[string]string{}
			for k, rel := range tt.want {
				want[k] = filepath.Join(dir, filepath.FromSlash(rel))
			}
			assert.Equal(t, want, got)
			for _, p := range got {
				assert.True(t, filepath.IsAbs(p))
				assert.True(t, strings.HasPrefix(p, dir+string(filepath.Separator)))
			}
		})
	}
	t.Run("nil matcher", func(t *testing.T) {
		got, err := files.Collect(dir, nil, "out-1")
		require.NoError(t, err)
		assert.Len(t, got, 3)
	})
	t.Run("dir is a symbolic link", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link")
		require.NoError(t, os.Symlink(dir, link))
		m, err := files.NewMatcher([]string{"*.xml"})
		require.NoError(t, err)
		got, err := files.Collect(link, m)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"file.xml": filepath.Join(link, "file.xml")}, got)
	})
	t.Run("a relative dir gives absolute paths", func(t *testing.T) {
		t.Chdir(dir)
		m, err := files.NewMatcher([]string{"*.xml"})
		require.NoError(t, err)
		got, err := files.Collect(".", m)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"file.xml": filepath.Join(dir, "file.xml")}, got)
	})
	t.Run("an escaping output directory", func(t *testing.T) {
		_, err := files.Collect(dir, nil, "../x")
		require.Error(t, err)
	})
}
