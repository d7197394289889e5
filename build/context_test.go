package build_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/runner"
)

// tree writes files (a name ending in "/" is a directory) under a fresh
// directory.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

func open(t testing.TB, spec build.Spec) *build.Context {
	t.Helper()
	c, err := build.Open(spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sent(t testing.TB, spec build.Spec) []string {
	t.Helper()
	names, err := open(t, spec).Files(t.Context())
	require.NoError(t, err)
	return names
}

// The cases of the docker documentation's .dockerignore section
// (https://docs.docker.com/build/concepts/context/#dockerignore-files),
// and the CLI's handling of the Dockerfile and the ignore file.
func TestIgnoreSemanticsAsTheDockerCLI(t *testing.T) {
	files := map[string]string{
		"Dockerfile": "FROM x", "temp": "", "tempa": "", "tempab": "", "temp.txt": "",
		"somedir/temporary.txt": "", "somedir/temp/x": "", "somedir/subdir/temporary.txt": "",
		"README.md": "", "README-secret.md": "", "README-public.md": "", "CHANGES.md": "",
		"src/a.go": "", "src/lib/b.go": "", "src/lib/c.txt": "",
		"node_modules/m/index.js": "", "node_modules/keep/x": "",
	}
	all := []string{"CHANGES.md", "Dockerfile", "README-public.md", "README-secret.md", "README.md",
		"node_modules/", "node_modules/keep/", "node_modules/keep/x", "node_modules/m/", "node_modules/m/index.js",
		"somedir/", "somedir/subdir/", "somedir/subdir/temporary.txt", "somedir/temp/", "somedir/temp/x", "somedir/temporary.txt",
		"src/", "src/a.go", "src/lib/", "src/lib/b.go", "src/lib/c.txt", "temp", "temp.txt", "tempa", "tempab"}
	without := func(names ...string) []string {
		var out []string
		for _, n := range all {
			drop := false
			for _, x := range names {
				if n == x || (strings.HasSuffix(x, "/") && strings.HasPrefix(n, x)) {
					drop = true
				}
			}
			if !drop {
				out = append(out, n)
			}
		}
		return out
	}
	for name, tc := range map[string]struct {
		ignore string
		want   []string
	}{
		"no ignore file": {"", all},
		"*/temp*: names starting with temp one level down": {"*/temp*\n",
			without("somedir/temporary.txt", "somedir/temp/")},
		"*/*/temp*: two levels down": {"*/*/temp*\n", without("somedir/subdir/temporary.txt")},
		"temp?: one character":       {"temp?\n", without("tempa")},
		"**/*.go: at any depth":      {"**/*.go\n", without("src/a.go", "src/lib/b.go")},
		"*.md then !README.md":       {"*.md\n!README.md\n", without("CHANGES.md", "README-public.md", "README-secret.md")},
		"the last match wins: README-secret.md excluded": {"*.md\n!README*.md\nREADME-secret.md\n",
			without("CHANGES.md", "README-secret.md")},
		"the last match wins: all READMEs kept": {"*.md\nREADME-secret.md\n!README*.md\n", without("CHANGES.md")},
		"a directory prunes what is under it":   {"node_modules\n", without("node_modules/")},
		"an exception under an excluded directory sends the file, not the directory": {"node_modules\n!node_modules/keep/x\n",
			append(without("node_modules/")[:5:5], append([]string{"node_modules/keep/x"}, without("node_modules/")[5:]...)...)},
		"comments, blanks, leading / and ./ as the CLI cleans them": {"# src\n\n  /temp.txt  \n./tempab\nsrc/lib/../a.go\n",
			without("temp.txt", "tempab", "src/a.go")},
		"the Dockerfile and the ignore file are sent even when excluded": {"Dockerfile\n.dockerignore\n*\n!src\n",
			[]string{".dockerignore", "Dockerfile", "src/", "src/a.go", "src/lib/", "src/lib/b.go", "src/lib/c.txt"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := map[string]string{}
			for k, v := range files {
				f[k] = v
			}
			want := tc.want
			if tc.ignore != "" {
				f[".dockerignore"] = tc.ignore
				if !strings.Contains(tc.ignore, ".dockerignore") {
					want = append([]string{".dockerignore"}, want...)
				}
			}
			assert.Equal(t, want, sent(t, build.Spec{Context: tree(t, f)}))
		})
	}
}

func TestContainerignoreWinsOverDockerignore(t *testing.T) {
	dir := tree(t, map[string]string{"Containerfile": "FROM x", ".containerignore": "a\n", ".dockerignore": "b\n", "a": "", "b": ""})
	c := open(t, build.Spec{Context: dir})
	assert.Equal(t, build.ContainerIgnore, c.IgnoreFile())
	names, err := c.Files(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{".containerignore", ".dockerignore", "Containerfile", "b"}, names)
}

func TestContainerfileLookup(t *testing.T) {
	both := tree(t, map[string]string{"Containerfile": "", "Dockerfile": ""})
	assert.Equal(t, "Containerfile", open(t, build.Spec{Context: both}).Containerfile())
	docker := tree(t, map[string]string{"Dockerfile": ""})
	assert.Equal(t, "Dockerfile", open(t, build.Spec{Context: docker}).Containerfile())
	named := tree(t, map[string]string{"ci/Build.containerfile": "", ".dockerignore": "ci\n"})
	c := open(t, build.Spec{Context: named, Containerfile: "./ci/Build.containerfile"})
	assert.Equal(t, "ci/Build.containerfile", c.Containerfile())
	names, err := c.Files(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{".dockerignore", "ci/Build.containerfile"}, names, "sent though its directory is excluded")

	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "Containerfile"), nil, 0o644))
	linked := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(outside, "Containerfile"), filepath.Join(linked, "Containerfile")))
	for name, spec := range map[string]build.Spec{
		"none":             {Context: t.TempDir()},
		"missing":          {Context: both, Containerfile: "nope"},
		"a link outside":   {Context: linked, Containerfile: "Containerfile"},
		"a default linked": {Context: linked},
		"a directory":      {Context: named, Containerfile: "ci"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := build.Open(spec)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "containerfile", fe.Field)
			require.ErrorIs(t, err, build.ErrInvalidSpec)
		})
	}
}

// readTar returns a tar stream's headers and contents.
func readTar(t *testing.T, data []byte) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	hdrs, contents := map[string]*tar.Header{}, map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, contents
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		hdrs[h.Name], contents[h.Name] = h, string(b)
	}
}

func TestSymlinksAreSentAsLinks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(outside, []byte("outside content"), 0o644))
	outsideDir := filepath.Dir(outside)
	dir := tree(t, map[string]string{"Containerfile": "FROM x", "in.txt": "inside"})
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "abs")))
	require.NoError(t, os.Symlink("../../"+filepath.Base(outsideDir)+"/secret.txt", filepath.Join(dir, "rel")))
	require.NoError(t, os.Symlink(outsideDir, filepath.Join(dir, "dirlink")))
	require.NoError(t, os.Symlink("in.txt", filepath.Join(dir, "inner")))

	var buf bytes.Buffer
	digest, err := open(t, build.Spec{Context: dir}).WriteTar(t.Context(), &buf)
	require.NoError(t, err)
	assert.NotContains(t, buf.String(), "outside content")
	hdrs, contents := readTar(t, buf.Bytes())
	for name, target := range map[string]string{"abs": outside, "dirlink": outsideDir, "inner": "in.txt"} {
		require.Contains(t, hdrs, name)
		assert.EqualValues(t, tar.TypeSymlink, hdrs[name].Typeflag, name)
		assert.Equal(t, target, hdrs[name].Linkname, name)
	}
	assert.NotContains(t, hdrs, "dirlink/secret.txt", "a link to a directory is not entered")
	assert.Equal(t, "inside", contents["in.txt"])
	assert.Zero(t, hdrs["in.txt"].Uid)
	assert.Zero(t, hdrs["in.txt"].Gid)
	assert.EqualValues(t, 0o644, hdrs["in.txt"].Mode)

	again, err := open(t, build.Spec{Context: dir}).Digest(t.Context())
	require.NoError(t, err)
	assert.Equal(t, digest, again, "WriteTar and Digest agree")
}

func TestSpecialFilesAreRefused(t *testing.T) {
	dir := tree(t, map[string]string{"Containerfile": "FROM x"})
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644))
	_, err := open(t, build.Spec{Context: dir}).Digest(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pipe is a named pipe")
	// Ignored, it is not looked at.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("pipe\n"), 0o644))
	_, err = open(t, build.Spec{Context: dir}).Digest(t.Context())
	require.NoError(t, err)
}

func TestDigest(t *testing.T) {
	base := map[string]string{"Containerfile": "FROM x\nCOPY . /\n", "a.txt": "alpha", "sub/b.txt": "beta", "skip.log": "x", ".dockerignore": "*.log\n"}
	spec := func(dir string) build.Spec {
		return build.Spec{Context: dir, Args: map[string]string{"V": "1"}, SecretArgs: map[string]string{"TOKEN": "secret-value-1"}, Target: "t", Labels: map[string]string{"l": "v"}}
	}
	digest := func(t *testing.T, s build.Spec) string {
		t.Helper()
		d, err := open(t, s).Digest(t.Context())
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(d, "sha256:") && len(d) == 71, d)
		return d
	}
	dir := tree(t, base)
	want := digest(t, spec(dir))
	assert.Equal(t, want, digest(t, spec(tree(t, base))), "the same content elsewhere has the same digest")

	same := map[string]func(dir string, s *build.Spec){
		"modification time": func(dir string, _ *build.Spec) {
			require.NoError(t, os.Chtimes(filepath.Join(dir, "a.txt"), time.Now(), time.Now().Add(-time.Hour)))
		},
		"an ignored file": func(dir string, _ *build.Spec) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "skip.log"), []byte("changed"), 0o644))
		},
		"a secret arg's value": func(_ string, s *build.Spec) { s.SecretArgs = map[string]string{"TOKEN": "secret-value-2"} },
		"the pull policy":      func(_ string, s *build.Spec) { s.PullPolicy = build.PullAlways },
		"noCache":              func(_ string, s *build.Spec) { s.NoCache = true },
	}
	differ := map[string]func(dir string, s *build.Spec){
		"one byte": func(dir string, _ *build.Spec) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "sub/b.txt"), []byte("betA"), 0o644))
		},
		"the Containerfile": func(dir string, _ *build.Spec) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM y\nCOPY . /\n"), 0o644))
		},
		"a mode":       func(dir string, _ *build.Spec) { require.NoError(t, os.Chmod(filepath.Join(dir, "a.txt"), 0o755)) },
		"a new file":   func(dir string, _ *build.Spec) { require.NoError(t, os.WriteFile(filepath.Join(dir, "c"), nil, 0o644)) },
		"an empty dir": func(dir string, _ *build.Spec) { require.NoError(t, os.Mkdir(filepath.Join(dir, "d"), 0o755)) },
		"a rename": func(dir string, _ *build.Spec) {
			require.NoError(t, os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "a2.txt")))
		},
		"the ignore file": func(dir string, _ *build.Spec) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.log\n#\n"), 0o644))
		},
		"an arg":            func(_ string, s *build.Spec) { s.Args = map[string]string{"V": "2"} },
		"an arg's name":     func(_ string, s *build.Spec) { s.Args = map[string]string{"W": "1"} },
		"a secret arg name": func(_ string, s *build.Spec) { s.SecretArgs = map[string]string{"TOKEN2": "secret-value-1"} },
		"the target":        func(_ string, s *build.Spec) { s.Target = "u" },
		"the platform":      func(_ string, s *build.Spec) { s.Platform = "linux/arm64" },
		"a label":           func(_ string, s *build.Spec) { s.Labels = map[string]string{"l": "w"} },
		"the build file":    func(_ string, s *build.Spec) { s.Containerfile = "sub/b.txt" },
		"a link's target":   func(dir string, _ *build.Spec) { require.NoError(t, os.Symlink("x", filepath.Join(dir, "a.txt.link"))) },
		"content into a new": func(dir string, _ *build.Spec) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alph"), 0o644))
		},
	}
	for name, change := range same {
		t.Run("same after "+name, func(t *testing.T) {
			d := tree(t, base)
			s := spec(d)
			change(d, &s)
			assert.Equal(t, want, digest(t, s))
		})
	}
	for name, change := range differ {
		t.Run("differs after "+name, func(t *testing.T) {
			d := tree(t, base)
			s := spec(d)
			change(d, &s)
			assert.NotEqual(t, want, digest(t, s))
		})
	}
}

func TestCancelStopsTheWalk(t *testing.T) {
	dir := tree(t, map[string]string{"Containerfile": "FROM x", "a": "a"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := open(t, build.Spec{Context: dir}).WriteTar(ctx, io.Discard)
	require.ErrorIs(t, err, context.Canceled)
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		spec         build.Spec
		field, value string
	}{
		"no context":         {build.Spec{}, "context", ""},
		"absolute file":      {build.Spec{Context: ".", Containerfile: "/etc/Dockerfile"}, "containerfile", "/etc/Dockerfile"},
		"escaping file":      {build.Spec{Context: ".", Containerfile: "a/../../Dockerfile"}, "containerfile", "a/../../Dockerfile"},
		"arg name with =":    {build.Spec{Context: ".", Args: map[string]string{"A=B": "x"}}, "args", "A=B"},
		"arg twice":          {build.Spec{Context: ".", Args: map[string]string{"A": "x"}, SecretArgs: map[string]string{"A": "secret-value"}}, "args.A", ""},
		"short secret":       {build.Spec{Context: ".", SecretArgs: map[string]string{"T": "s3c"}}, "secretArgs.T", ""},
		"label with a space": {build.Spec{Context: ".", Labels: map[string]string{"a b": "x"}}, "labels", "a b"},
		"platform":           {build.Spec{Context: ".", Platform: "linux"}, "platform", "linux"},
		"pull policy":        {build.Spec{Context: ".", PullPolicy: "NEVER"}, "pullPolicy", "NEVER"},
		"name with a tag":    {build.Spec{Context: ".", Name: "app:v1"}, "name", "app:v1"},
		"bad name":           {build.Spec{Context: ".", Name: "App"}, "name", "App"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.spec.Validate()
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.field, fe.Field)
			assert.Equal(t, tc.value, fe.Value)
			assert.ErrorIs(t, err, build.ErrInvalidSpec)
			assert.ErrorIs(t, err, runner.ErrInvalidTask)
			for _, v := range tc.spec.SecretArgs {
				assert.NotContains(t, err.Error(), v)
			}
		})
	}
	require.NoError(t, build.Spec{Context: ".", Name: "registry.example.com:5000/team/app", Platform: "linux/arm64/v8", PullPolicy: build.PullAlways}.Validate())
}

func TestRef(t *testing.T) {
	assert.Equal(t, "lading-build:abc", build.Spec{}.Ref("sha256:abc"))
	assert.Equal(t, "myapp:abc", build.Spec{Name: "myapp"}.Ref("sha256:abc"))
}

func TestBaseImages(t *testing.T) {
	cf := "# syntax\nARG BASE=x\nFROM --platform=linux/amd64 golang:1.26 AS builder\nfrom builder as test\nFROM $BASE\nFROM scratch\nFROM registry.example.com:5000/team/base@sha256:abc\nFROM golang:1.26\n"
	assert.Equal(t, []string{"golang:1.26", "registry.example.com:5000/team/base@sha256:abc"}, build.BaseImages([]byte(cf)))
}

// FuzzIgnorePatterns checks the walk's pruning against the matcher's own
// whole-path answer: with patterns without exceptions, a path is sent
// exactly when neither it nor a parent matches (MatchesOrParentMatches),
// the Containerfile and the ignore file apart.
func FuzzIgnorePatterns(f *testing.F) {
	for _, s := range []string{"*.go", "**/*.txt", "a\nb/c", "a/**/d", "[ab]*", "?", "*/x*", "a/b/", "**", "\\*"} {
		f.Add(s)
	}
	files := []string{"a/b/c.go", "a/b/d/e.txt", "a/x1", "b/c", "bb/x.txt", "c.go", "d", "ab/d"}
	f.Fuzz(func(t *testing.T, ignore string) {
		if strings.Contains(ignore, "!") || strings.ContainsRune(ignore, 0) {
			return
		}
		dir := t.TempDir()
		for _, n := range append(files, "Containerfile") {
			p := filepath.Join(dir, n)
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, nil, 0o644))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644))
		c, err := build.Open(build.Spec{Context: dir})
		if err != nil {
			return // a pattern the matcher refuses
		}
		defer c.Close()
		got, err := c.Files(t.Context())
		if err != nil {
			var bad error = err
			if errors.Is(bad, build.ErrInvalidSpec) || strings.Contains(err.Error(), "match") {
				return
			}
			t.Fatal(err)
		}
		patterns := readPatterns(t, dir)
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return
		}
		sentSet := map[string]bool{}
		for _, n := range got {
			sentSet[strings.TrimSuffix(n, "/")] = true
		}
		for _, n := range files {
			excluded, err := pm.MatchesOrParentMatches(n)
			if err != nil {
				return
			}
			assert.Equal(t, !excluded, sentSet[n], "file %s with patterns %q", n, patterns)
		}
		assert.True(t, sentSet["Containerfile"] && sentSet[".dockerignore"])
	})
}

func readPatterns(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	require.NoError(t, err)
	defer f.Close()
	p, err := ignorefile.ReadAll(f)
	require.NoError(t, err)
	return p
}
