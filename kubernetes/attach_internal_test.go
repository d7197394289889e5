package kubernetes

import (
	"bytes"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogFollowerReadsAgain: a log read again from its start passes on
// only what comes after the bytes already passed on, and a log that does
// not start with them (rotated, changed) is refused.
func TestLogFollowerReadsAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  string
		second string
		want   string // what demux delivers in all
		err    error  // of the second read
	}{
		{"more after the first read", "abc\ndef\n", "abc\ndef\nghi\n", "abc\ndef\nghi\n", nil},
		{"nothing more", "abc\n", "abc\n", "abc\n", nil},
		{"a line the first read cut", "abc\nde", "abc\ndef\n", "abc\ndef\n", nil},
		{"first read empty", "", "abc\n", "abc\n", nil},
		{"changed", "abc\ndef\n", "abX\ndef\nghi\n", "abc\ndef\n", errLogChanged},
		{"shorter", "abc\ndef\n", "abc\n", "abc\ndef\n", errLogChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &logFollower{kind: frameStderr, sum: crc32.NewIEEE()}
			var framed bytes.Buffer
			buf := make([]byte, frameHeader+3) // small: reads end in every place
			err := f.copy(iotest.OneByteReader(strings.NewReader(tc.first)), &framed, buf)
			require.ErrorIs(t, err, io.EOF)
			err = f.copy(strings.NewReader(tc.second), &framed, buf)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.ErrorIs(t, err, io.EOF)
			}
			var stdout, stderr bytes.Buffer
			require.NoError(t, demux(&stdout, &stderr, &framed))
			assert.Empty(t, stdout.String())
			assert.Equal(t, tc.want, stderr.String())
		})
	}
}

// TestDemuxKeepsStreamsApart: frames of two streams, and progress frames,
// come apart into stdout and stderr.
func TestDemuxKeepsStreamsApart(t *testing.T) {
	var framed bytes.Buffer
	for _, f := range []struct {
		kind byte
		text string
	}{{frameStdout, "out 1\n"}, {frameStderr, "err 1\n"}, {frameProgress, "dropped"}, {frameStdout, "out 2\n"}} {
		b := append(make([]byte, frameHeader), f.text...)
		require.NoError(t, frame(&framed, b, f.kind))
	}
	var stdout, stderr bytes.Buffer
	require.NoError(t, demux(&stdout, &stderr, &framed))
	assert.Equal(t, "out 1\nout 2\n", stdout.String())
	assert.Equal(t, "err 1\n", stderr.String())
	framed.Write([]byte{frameStdout, 0, 0, 0, 9, 'x'})
	assert.Error(t, demux(&stdout, &stderr, &framed), "a frame cut short")
}
