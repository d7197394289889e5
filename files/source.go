package files

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/lading-dev/lading/runner"
)

// Source supplies the content of an input file. It is [runner.Source], so a
// [runner.Task]'s InputFiles can hold the sources made here:
// [String], [Bytes], [HostFile] and [Reader].
type Source = runner.Source

// ErrSourceUsed is returned by the Open method of a [Reader] source that was
// already opened: a reader can be read only once.
var ErrSourceUsed = errors.New("files: reader source already used (a Reader source can be staged once)")

var errNotRegular = errors.New("not a regular file")

// String returns a source with the content s. It can be opened any number of
// times, concurrently.
func String(s string) Source { return stringSource(s) }

type stringSource string

func (s stringSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(s))), nil
}

// Bytes returns a source with the content b. b is not copied: it must not
// change while a run stages it. The source can be opened any number of
// times, concurrently.
func Bytes(b []byte) Source { return bytesSource(b) }

type bytesSource []byte

func (b bytesSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}

// HostFile returns a source that reads the regular file at path on the host
// each time it is opened (when a run stages it). Its content is streamed,
// never held in memory; symbolic links in path are followed, since the
// caller chose the path. A path that is not a regular file (a directory, a
// FIFO, a device) fails when the source is opened.
func HostFile(path string) Source { return hostFile(path) }

type hostFile string

func (h hostFile) Open() (io.ReadCloser, error) {
	name := string(h)
	// Stat before opening: opening a FIFO would block until a writer comes.
	if fi, err := os.Stat(name); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = &os.PathError{Op: "open", Path: name, Err: errNotRegular}
		}
		return nil, err
	}
	return f, nil
}

// Reader returns a source that reads r, once: the first Open returns r (Stage
// never closes it; the caller does) and every later Open fails with
// [ErrSourceUsed], so a task using it can be staged only once. The content is
// streamed, never held in memory.
func Reader(r io.Reader) Source { return &readerSource{r: r} }

type readerSource struct {
	r    io.Reader
	used atomic.Bool
}

func (s *readerSource) Open() (io.ReadCloser, error) {
	if s.used.Swap(true) {
		return nil, ErrSourceUsed
	}
	return io.NopCloser(s.r), nil
}
