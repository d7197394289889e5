// Package buildtest is a conformance suite for [build.Builder]
// implementations: any engine that builds calls [Run] from its tests with
// a base image it has, and passes the same cases the docker engine does.
//
//	func TestBuildConformance(t *testing.T) {
//		r := newRunner(t)
//		buildtest.Run(t, buildtest.Config{Builder: r, Base: "lading-test/busybox:latest", Remove: removeImage})
//	}
//
// The cases check what the build vocabulary promises: args reach the
// build, the target selects a stage, the ignore file excludes what the
// docker CLI excludes, unchanged input is a cache hit, a changed byte
// rebuilds, NoCache forces a build, a failing step is named with its
// output and secret args masked, a cancelled build returns promptly, a
// symbolic link out of the context is not followed, and an invalid spec is
// a field error. What only an engine can tell (that no build call was
// made, that no intermediate container is left) is for the engine's own
// tests.
package buildtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/runner"
)

// Config is what the suite needs of an engine.
type Config struct {
	// Builder is the implementation under test.
	Builder build.Builder
	// Base is an image the engine has, with a POSIX shell and busybox's
	// find, sort, sed, cat and sleep. The cases build FROM it offline.
	Base string
	// Remove, when set, removes an image a case built, when the case ends.
	Remove func(t testing.TB, img build.Image)
	// Name is the repository the cases tag in; empty: build.DefaultName.
	Name string
}

// Case is one conformance case.
type Case struct {
	Name string
	Run  func(t *testing.T, cfg Config)
}

// Cases returns the suite's cases.
func Cases() []Case {
	return []Case{
		{"ArgsAndTarget", argsAndTarget},
		{"Ignore", ignore},
		{"CacheHitAndChangedByte", cacheHitAndChangedByte},
		{"NoCacheForcesABuild", noCache},
		{"FailingStep", failingStep},
		{"Cancel", cancel},
		{"SymlinkNotFollowed", symlinkNotFollowed},
		{"InvalidSpec", invalidSpec},
	}
}

// Run runs every case as a subtest.
func Run(t *testing.T, cfg Config) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, cfg) })
	}
}

// progress collects progress lines.
type progress struct {
	mu    sync.Mutex
	lines []build.Progress
}

func (p *progress) add(l build.Progress) { p.mu.Lock(); p.lines = append(p.lines, l); p.mu.Unlock() }

func (p *progress) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.Line + "\n")
	}
	return b.String()
}

// context writes files (and a random .nonce, so that an engine's layer
// cache from an earlier run never hides a step's output) into a fresh
// directory.
func contextDir(t *testing.T, files map[string]string) (dir, nonce string) {
	t.Helper()
	dir = t.TempDir()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	nonce = hex.EncodeToString(b)
	files[".nonce"] = nonce
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir, nonce
}

func (cfg Config) build(t *testing.T, ctx context.Context, spec build.Spec) (build.Image, error) {
	t.Helper()
	if spec.Name == "" {
		spec.Name = cfg.Name
	}
	img, err := cfg.Builder.Build(ctx, spec)
	if err == nil && !img.Cached && cfg.Remove != nil {
		t.Cleanup(func() { cfg.Remove(t, img) })
	}
	return img, err
}

func argsAndTarget(t *testing.T, cfg Config) {
	dir, _ := contextDir(t, map[string]string{"Containerfile": "FROM " + cfg.Base + " AS first\n" +
		"ARG GREETING=none\nCOPY .nonce /nonce\nRUN echo \"greeting=$GREETING\"\n" +
		"FROM first AS second\nRUN echo second-stage-ran\n"})
	var p progress
	img, err := cfg.build(t, t.Context(), build.Spec{Context: dir, Args: map[string]string{"GREETING": "hello-arg"}, Target: "first", OnProgress: p.add})
	require.NoError(t, err)
	assert.False(t, img.Cached)
	assert.NotEmpty(t, img.ID)
	assert.True(t, strings.HasPrefix(img.Digest, "sha256:"), img.Digest)
	assert.True(t, strings.HasSuffix(img.Ref, ":"+strings.TrimPrefix(img.Digest, "sha256:")), img.Ref)
	assert.Contains(t, p.text(), "greeting=hello-arg\n")
	assert.NotContains(t, p.text(), "second-stage-ran")
	var sawStep bool
	for _, l := range p.lines {
		if l.Step == 4 && strings.HasPrefix(l.Instruction, "RUN echo") {
			sawStep = true
		}
	}
	assert.True(t, sawStep, "a progress line of step 4 names its instruction")
}

func ignore(t *testing.T, cfg Config) {
	dir, _ := contextDir(t, map[string]string{
		"Containerfile":  "FROM " + cfg.Base + "\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sort | sed 's/^/sent: /'\n",
		".dockerignore":  "**/*.log\n!keep.log\nsecret/\ndocs/**\n!docs/README.md\n",
		"app.go":         "",
		"a.log":          "",
		"keep.log":       "",
		"sub/deep/b.log": "",
		"sub/deep/c.txt": "",
		"secret/key":     "",
		"docs/guide.md":  "",
		"docs/README.md": "",
	})
	var p progress
	_, err := cfg.build(t, t.Context(), build.Spec{Context: dir, OnProgress: p.add})
	require.NoError(t, err)
	var sent []string
	for _, l := range strings.Split(p.text(), "\n") {
		if s, ok := strings.CutPrefix(l, "sent: "); ok && s != "./Containerfile" && s != "./.dockerignore" {
			sent = append(sent, s)
		}
	}
	assert.Equal(t, []string{"./.nonce", "./app.go", "./docs/README.md", "./keep.log", "./sub/deep/c.txt"}, sent)
}

func cacheHitAndChangedByte(t *testing.T, cfg Config) {
	dir, _ := contextDir(t, map[string]string{"Containerfile": "FROM " + cfg.Base + "\nCOPY . /ctx\n", "data": "one"})
	spec := build.Spec{Context: dir}
	first, err := cfg.build(t, t.Context(), spec)
	require.NoError(t, err)
	var p progress
	spec.OnProgress = p.add
	again, err := cfg.build(t, t.Context(), spec)
	require.NoError(t, err)
	assert.True(t, again.Cached)
	assert.Equal(t, first.Ref, again.Ref)
	assert.Equal(t, first.ID, again.ID)
	assert.Empty(t, p.lines, "a cache hit runs no build")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "data"), []byte("onE"), 0o644))
	changed, err := cfg.build(t, t.Context(), spec)
	require.NoError(t, err)
	assert.False(t, changed.Cached)
	assert.NotEqual(t, first.Ref, changed.Ref)
	assert.NotEmpty(t, p.lines)
}

func noCache(t *testing.T, cfg Config) {
	dir, _ := contextDir(t, map[string]string{"Containerfile": "FROM " + cfg.Base + "\nCOPY .nonce /nonce\nRUN echo built\n"})
	first, err := cfg.build(t, t.Context(), build.Spec{Context: dir})
	require.NoError(t, err)
	forced, err := cfg.build(t, t.Context(), build.Spec{Context: dir, NoCache: true})
	require.NoError(t, err)
	assert.False(t, forced.Cached)
	assert.Equal(t, first.Ref, forced.Ref)
	assert.NotEqual(t, first.ID, forced.ID, "built again, not from the engine's layer cache")
	after, err := cfg.build(t, t.Context(), build.Spec{Context: dir})
	require.NoError(t, err)
	assert.True(t, after.Cached)
	assert.Equal(t, forced.ID, after.ID, "the forced build holds the tag")
	if cfg.Remove != nil {
		cfg.Remove(t, first) // untagged by the forced build
	}
}

func failingStep(t *testing.T, cfg Config) {
	// No step before the failing one is new (a failed RUN is never cached),
	// so the engine keeps no new image of this build.
	dir, _ := contextDir(t, map[string]string{"Containerfile": "FROM " + cfg.Base + "\nARG TOKEN\n" +
		"RUN echo before-the-failure && echo \"token=$TOKEN\" && exit 3\nRUN echo never\n"})
	const secret = "s3cret-conformance-t0ken"
	var p progress
	_, err := cfg.build(t, t.Context(), build.Spec{Context: dir, SecretArgs: map[string]string{"TOKEN": secret}, OnProgress: p.add})
	require.ErrorIs(t, err, build.ErrBuildFailed)
	var se *build.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 3, se.Step)
	assert.Equal(t, 4, se.Steps)
	assert.Equal(t, `RUN echo before-the-failure && echo "token=$TOKEN" && exit 3`, se.Instruction)
	assert.Contains(t, se.Lines, "before-the-failure")
	assert.Contains(t, se.Lines, "token=****")
	assert.Regexp(t, regexp.MustCompile(`\b3\b`), se.Message, "the exit code")
	for _, s := range []string{err.Error(), p.text(), strings.Join(se.Lines, "\n"), se.Message} {
		assert.NotContains(t, s, secret)
	}
	assert.NotContains(t, p.text(), "never")
}

func cancel(t *testing.T, cfg Config) {
	dir, nonce := contextDir(t, map[string]string{})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM "+cfg.Base+"\nRUN sleep 30 # "+nonce+"\n"), 0o644))
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var once sync.Once
	started := time.Now()
	_, err := cfg.build(t, ctx, build.Spec{Context: dir, OnProgress: func(p build.Progress) {
		if strings.HasPrefix(p.Instruction, "RUN sleep") {
			once.Do(func() { time.AfterFunc(time.Second, stop) })
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(started), 25*time.Second, "returned before the step would have ended")
	assert.Contains(t, err.Error(), "RUN sleep 30", "the error names the step")
}

func symlinkNotFollowed(t *testing.T, cfg Config) {
	outside := filepath.Join(t.TempDir(), "outside.txt")
	require.NoError(t, os.WriteFile(outside, []byte("content-from-outside-the-context"), 0o644))
	dir, _ := contextDir(t, map[string]string{
		"Containerfile": "FROM " + cfg.Base + "\nCOPY . /ctx\nRUN readlink /ctx/escape; cat /ctx/escape || echo not-followed\n",
	})
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "escape")))
	var p progress
	_, err := cfg.build(t, t.Context(), build.Spec{Context: dir, OnProgress: p.add})
	require.NoError(t, err)
	assert.Contains(t, p.text(), outside+"\n", "sent as a link, its target as written")
	assert.Contains(t, p.text(), "not-followed")
	assert.NotContains(t, p.text(), "content-from-outside-the-context")
}

func invalidSpec(t *testing.T, cfg Config) {
	empty := t.TempDir()
	for name, tc := range map[string]struct {
		spec  build.Spec
		field string
	}{
		"no context":       {build.Spec{}, "context"},
		"no Containerfile": {build.Spec{Context: empty}, "containerfile"},
		"escaping file":    {build.Spec{Context: empty, Containerfile: "../Containerfile"}, "containerfile"},
		"short secret":     {build.Spec{Context: empty, SecretArgs: map[string]string{"T": "s3c"}}, "secretArgs.T"},
		"pull policy":      {build.Spec{Context: empty, PullPolicy: "SOMETIMES"}, "pullPolicy"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := cfg.build(t, t.Context(), tc.spec)
			require.ErrorIs(t, err, build.ErrInvalidSpec)
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.True(t, errors.As(err, &fe), "%T: %v", err, err)
			assert.Equal(t, tc.field, fe.Field)
		})
	}
}
