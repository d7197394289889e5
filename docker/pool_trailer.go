package docker

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/client"
)

// trailer is what the task script reports on stdout once the task has
// exited (taskScript): a NUL, the task's token, its exit status, the oom
// count and whether the output directory holds anything.
type trailer struct {
	marker []byte        // "\x00<token> "
	done   chan struct{} // closed once the trailer has been read
	once   sync.Once
	mu     sync.Mutex
	ends   int // the streams whose marker came

	// Set before done is closed:
	code    int
	oom     string
	written bool
}

func newTrailer(token string) *trailer {
	return &trailer{marker: []byte("\x00" + token + " "), done: make(chan struct{})}
}

// bothEnded notes that one stream's marker came, and reports whether the
// other's had.
func (t *trailer) bothEnded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ends++
	return t.ends == 2
}

// seen reports whether the trailer has been read.
func (t *trailer) seen() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// errTrailer ends the copy of the task's stdout: what follows the trailer
// is the pool's.
var errTrailer = errors.New("task script trailer")

// trailerWriter passes the task's stdout on to w, up to the trailer, which
// it reads and keeps out. It holds back only the bytes at the end of a
// write that may begin the marker (a NUL and what follows it), so the
// task's lines reach w as soon as they are written.
//
// The task script ends stderr with a marker too ("\x00<token> e"): the
// engine copies the two streams apart, so stderr may still be under way
// once stdout's trailer has come. The copy ends once both have come
// (errTrailer from the writer that saw the second).
type trailerWriter struct {
	w       io.Writer
	t       *trailer
	stderr  bool // the stderr marker, not the trailer
	pending []byte
	ended   bool // this stream's marker has come: drop the rest
}

func (tw *trailerWriter) Write(p []byte) (int, error) {
	n := len(p)
	if tw.ended {
		return n, nil
	}
	tw.pending = append(tw.pending, p...)
	for {
		i := bytes.IndexByte(tw.pending, 0)
		if i < 0 {
			err := tw.emit(len(tw.pending))
			return n, err
		}
		if err := tw.emit(i); err != nil {
			return n, err
		}
		rest := tw.pending
		m := tw.t.marker
		if len(rest) < len(m) {
			if bytes.HasPrefix(m, rest) {
				return n, nil // may be the marker: wait for more
			}
		} else if bytes.HasPrefix(rest, m) {
			line, _, complete := strings.Cut(string(rest[len(m):]), "\n")
			if !complete {
				return n, nil
			}
			if tw.stderr && line == "e" || !tw.stderr && tw.t.parse(line) {
				tw.pending = nil
				tw.ended = true
				if tw.t.bothEnded() {
					return n, errTrailer
				}
				return n, nil
			}
		}
		// A NUL of the task's own.
		if err := tw.emit(1); err != nil {
			return n, err
		}
	}
}

// emit writes the first n pending bytes on.
func (tw *trailerWriter) emit(n int) error {
	if n == 0 {
		return nil
	}
	_, err := tw.w.Write(tw.pending[:n])
	tw.pending = tw.pending[n:]
	return err
}

// flush writes on what was held back, at the end of a stream without a
// trailer.
func (tw *trailerWriter) flush() error { return tw.emit(len(tw.pending)) }

// parse reads "<status> <oom count> <0|1>" and closes done.
func (t *trailer) parse(line string) bool {
	f := strings.Fields(line)
	if len(f) != 3 {
		return false
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	t.once.Do(func() {
		t.code, t.oom, t.written = code, f[1], f[2] == "1"
		close(t.done)
	})
	return true
}

// taskWork is what the pool needs of a finished task to make its container
// ready for the next.
type taskWork struct {
	dir     string                   // the working directory, in the container
	token   string                   // the task script's token
	conn    *client.HijackedResponse // the task's exec, still attached, once the trailer was read; nil otherwise
	trailer *trailer
}
