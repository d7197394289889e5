package docker

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestTrailerWriter(t *testing.T) {
	const token = "0123456789abcdef"
	tests := []struct {
		name   string
		stdout []string // the writes, in order
		want   string   // what reaches the task's stdout
		code   int
		oom    string
		wrote  bool
	}{
		{"alone", []string{"hello\n\x000123456789abcdef 3 0 1\n"}, "hello\n", 3, "0", true},
		{"split everywhere", []string{"hel", "lo\n\x00", "0123", "456789abcdef 0", " 2 0\n"}, "hello\n", 0, "2", false},
		{"last line without a newline", []string{"partial", "\x000123456789abcdef 1 0 0\n"}, "partial", 1, "0", false},
		{"a NUL of the task's own", []string{"a\x00b\n", "\x00other\n", "\x000123456789abcdef 0 0 0\n"}, "a\x00b\n\x00other\n", 0, "0", false},
		{"a NUL at the end of a write", []string{"a\x00", "b\n\x000123456789abcdef 0 0 0\n"}, "a\x00b\n", 0, "0", false},
		{"a marker with a wrong token", []string{"\x000123456789abcdee 0 0 0\n", "\x000123456789abcdef 7 unknown 0\n"}, "\x000123456789abcdee 0 0 0\n", 7, "unknown", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTrailer(token)
			var out bytes.Buffer
			w := &trailerWriter{w: &out, t: tr}
			var err error
			for _, p := range tt.stdout {
				n, werr := w.Write([]byte(p))
				assert.Equal(t, len(p), n)
				err = errors.Join(err, werr)
			}
			require.True(t, tr.seen(), "the trailer was read")
			assert.NoError(t, err, "stderr's marker has not come yet")
			assert.Equal(t, tt.want, out.String())
			assert.Equal(t, tt.code, tr.code)
			assert.Equal(t, tt.oom, tr.oom)
			assert.Equal(t, tt.wrote, tr.written)

			var errOut bytes.Buffer
			ew := &trailerWriter{w: &errOut, t: tr, stderr: true}
			_, err = ew.Write([]byte("oops\n\x00" + token + " e\n"))
			assert.ErrorIs(t, err, errTrailer, "both markers came: the copy ends")
			assert.Equal(t, "oops\n", errOut.String())
		})
	}
	t.Run("no trailer: everything is flushed", func(t *testing.T) {
		tr := newTrailer(token)
		var out bytes.Buffer
		w := &trailerWriter{w: &out, t: tr}
		_, err := w.Write([]byte("line\n\x000123"))
		require.NoError(t, err)
		assert.Equal(t, "line\n", out.String(), "what may begin the marker is held back")
		require.NoError(t, w.flush())
		assert.Equal(t, "line\n\x000123", out.String())
		assert.False(t, tr.seen())
	})
}

func TestBoxTaint(t *testing.T) {
	base := scrubReport{oom: "0", listing: "/dev:\nnull\n"}
	b := &box{changes: map[string]bool{"C /sbin": true, "A /sbin/docker-init": true}, scrub: base, above: map[string]bool{}}
	b.workIn("/tmp/lading-1")
	b.workIn("/home/u/work/x")
	change := func(kind container.ChangeType, p string) string {
		return changeKey(container.FilesystemChange{Kind: kind, Path: p})
	}
	tests := []struct {
		name    string
		rep     scrubReport
		changes []string
		want    string
	}{
		{"as warmed", base, []string{"C /sbin", "A /sbin/docker-init"}, ""},
		{"the directories above working directories", base, []string{"C /tmp", "A /home", "A /home/u", "C /home/u/work"}, ""},
		{"a file in /tmp", base, []string{"C /tmp", "A /tmp/leak"}, "file system changed"},
		{"the working directory left", base, []string{"A /tmp/lading-1"}, "file system changed"},
		{"a directory above a working directory removed", base, []string{"D /home/u"}, "file system changed"},
		{"a file of the image changed", base, []string{"C /etc", "C /etc/profile"}, "file system changed"},
		{"the baseline's file removed", base, []string{"C /sbin", "D /sbin/docker-init"}, "file system changed"},
		{"an OOM kill", scrubReport{oom: "1", listing: base.listing}, nil, "oom"},
		{"a file in /dev/shm", scrubReport{oom: "0", listing: base.listing + "leak\n"}, nil, "tmpfs, volume or /etc/hosts changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := map[string]bool{}
			for _, c := range tt.changes {
				kind := map[string]container.ChangeType{"C": container.ChangeModify, "A": container.ChangeAdd, "D": container.ChangeDelete}[c[:1]]
				changes[change(kind, c[2:])] = true
			}
			assert.Equal(t, tt.want, b.taint(tt.rep, changes))
		})
	}
}

func TestPoolValidate(t *testing.T) {
	tests := []struct {
		pool  Pool
		field string
		value string
	}{
		{Pool{}, "pool.size", "0"},
		{Pool{Size: -1}, "pool.size", "-1"},
		{Pool{Size: 1, WhenBusy: "later"}, "pool.whenBusy", "later"},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			_, err := New(Config{}, WithPool(tt.pool))
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.value, fe.Value)
		})
	}
	for _, ok := range []Pool{{Size: 1}, {Size: 8, WhenBusy: PoolCold, IdleTimeout: -1}, {Size: 2, WhenBusy: PoolWait}} {
		assert.NoError(t, ok.Validate())
	}
}

func TestPoolable(t *testing.T) {
	f := false
	tests := map[string]Config{
		"":                     {},
		"fileHandlingStrategy": {FileHandlingStrategy: FileHandlingMount},
		"portBindings":         {Container: Container{PortBindings: []string{"8080:80"}}},
		"resume":               {Lifecycle: Lifecycle{Resume: true}},
		"wait false":           {Lifecycle: Lifecycle{Wait: &f}},
		"delete false":         {Lifecycle: Lifecycle{Delete: &f}},
		"privileged":           {Container: Container{Privileged: true}},
		"statsInterval":        {StatsInterval: Duration(1)},
	}
	for want, cfg := range tests {
		r := &Runner{cfg: cfg}
		got := r.poolable()
		if want == "" {
			assert.Empty(t, got)
		} else {
			assert.True(t, strings.Contains(got, strings.Fields(want)[0]), "%q does not say %q", got, want)
		}
	}
}

func TestSignalName(t *testing.T) {
	for in, want := range map[string]string{"": "TERM", "SIGTERM": "TERM", "sigint": "INT", "9": "9", "KILL": "KILL", "TERM; rm -rf /": "TERM"} {
		assert.Equal(t, want, signalName(in), in)
	}
}
