package kubernetes

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMarkerFilter: the end markers are cut out of a log wherever reads
// split it, a last line with no newline keeps its bytes, and what may
// start a marker is held back only until it cannot.
func TestMarkerFilter(t *testing.T) {
	end := &endMarker{marker: "lading-end-0123"}
	for _, tc := range []struct {
		name string
		log  string
		want string
		seen bool
	}{
		{"both markers", "a\nb\nlading-end-0123-o\nc\nlading-end-0123-e\n", "a\nb\nc\n", true},
		{"a last line with no newline", "a\nlast" + "lading-end-0123-e\nlading-end-0123-o\n", "a\nlast", true},
		{"no marker", "a\nlading-end-01\nlading", "a\nlading-end-01\nlading", false},
		{"one marker", "a\nlading-end-0123-o\n", "a\n", false},
	} {
		for _, size := range []int{1, 3, 7, 1 << 10} {
			f := markerFilter{want: [][]byte{end.stdout(), end.stderr()}}
			var got strings.Builder
			seen := false
			for rest := tc.log; rest != ""; {
				n := min(size, len(rest))
				out, last := f.pass([]byte(rest[:n]))
				got.Write(out)
				seen = seen || last
				rest = rest[n:]
			}
			got.Write(f.flush())
			assert.Equal(t, tc.want, got.String(), "%s, reads of %d", tc.name, size)
			assert.Equal(t, tc.seen, seen, "%s, reads of %d", tc.name, size)
		}
	}
	f := markerFilter{want: [][]byte{end.stdout()}}
	out, _ := f.pass([]byte("50%"))
	assert.Equal(t, "50%", string(out), "a tail that cannot start a marker is not held back")
	out, _ = f.pass([]byte(" la"))
	assert.Equal(t, " ", string(out), "one that can is, until it cannot")
	out, _ = f.pass([]byte("ter\n"))
	assert.Equal(t, "later\n", string(out))
}

// TestEndMarkerOfReadsTheWrapper: a resumed run finds the marker of the
// pod's wrapper, and none in a command without it.
func TestEndMarkerOfReadsTheWrapper(t *testing.T) {
	end := newEndMarker([]string{"/bin/sh", "-c", "echo hi"})
	cmd := end.wrap([]string{"/bin/sh", "-c", "echo hi"})
	for i := range cmd {
		cmd[i] = literal(cmd[i])
	}
	assert.Equal(t, end, endMarkerOf(cmd))
	assert.Nil(t, endMarkerOf([]string{"/bin/sh", "-c", "echo hi"}))
	assert.Nil(t, newEndMarker([]string{"python3", "-c", "print(1)"}), "not a shell")
	assert.NotEqual(t, end.marker, newEndMarker([]string{"bash", "-c", "x"}).marker, "a nonce per run")
}
