package logs

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"

	"github.com/lading-dev/lading/runner"
)

// frameLines is how many 100-byte lines go in one frame of the engine's
// multiplexed stream: frames stay under its 16 KiB, whole lines each.
const frameLines = 163

// framed returns frames*frameLines lines of 100 bytes as the engine's attach
// stream carries them: 8-byte headers (stream, size) before each frame,
// every eighth frame on stderr.
func framed(frames int) []byte {
	payload := []byte(strings.Repeat(strings.Repeat("y", 99)+"\n", frameLines))
	var stream bytes.Buffer
	for i := range frames {
		hdr := [8]byte{0: byte(stdcopy.Stdout)}
		if i%8 == 7 {
			hdr[0] = byte(stdcopy.Stderr)
		}
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
		stream.Write(hdr[:])
		stream.Write(payload)
	}
	return stream.Bytes()
}

// BenchmarkFraming is the whole log path of a run: the engine's multiplexed
// stream demultiplexed (as the docker runner does) into a sink that splits
// lines and delivers them to a callback.
func BenchmarkFraming(b *testing.B) {
	stream := framed(256) // 4 MiB
	b.SetBytes(int64(len(stream)))
	var lines int
	for b.Loop() {
		s := New(nil, nil, func(runner.Line) { lines++ }, nil)
		if _, err := stdcopy.StdCopy(s.Writer(runner.Stdout), s.Writer(runner.Stderr), bytes.NewReader(stream)); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if lines == 0 {
		b.Fatal("no lines delivered")
	}
}

func TestFramingDeliversEveryLine(t *testing.T) {
	const frames = 64
	var out, errs int
	s := New(nil, nil, func(l runner.Line) {
		if l.Stream == runner.Stdout {
			out++
		} else {
			errs++
		}
	}, nil)
	if _, err := stdcopy.StdCopy(s.Writer(runner.Stdout), s.Writer(runner.Stderr), bytes.NewReader(framed(frames))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if wantErr := frames / 8 * frameLines; out != frames*frameLines-wantErr || errs != wantErr {
		t.Fatalf("got %d stdout and %d stderr lines, want %d and %d", out, errs, frames*frameLines-wantErr, wantErr)
	}
}
