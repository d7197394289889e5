package files

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
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
//
// It is a [runner.ModeSource]: the staged file keeps the host file's
// permission bits (a 0o755 script stays executable), without setuid, setgid
// or sticky bit and without group or other write; see [Stage].
func HostFile(path string) Source { return hostFile(path) }

type hostFile string

// Mode returns the permission bits of the file at the path, read when
// Stage asks; 0o644 when it cannot be read (opening it then says why).
func (h hostFile) Mode() fs.FileMode {
	fi, err := os.Stat(string(h))
	if err != nil {
		return 0o644
	}
	return fi.Mode().Perm()
}

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

// WithMode returns src with the permission bits mode, like
// testcontainers-go's FileMode: files.WithMode(files.String(script), 0o755)
// stages an executable script. The content, and how often it can be
// opened, are src's. mode must be within 0o777: [Stage] refuses a setuid,
// setgid or sticky bit (or a type bit) as an invalid input, and drops the
// group and other write bits. It replaces the mode of a source that has one
// (a [HostFile]).
func WithMode(src Source, mode fs.FileMode) Source { return modeSource{src, mode} }

type modeSource struct {
	src  Source
	mode fs.FileMode
}

func (m modeSource) Open() (io.ReadCloser, error) {
	if m.src == nil {
		return nil, errors.New("files: WithMode of a nil source")
	}
	return m.src.Open()
}

func (m modeSource) Mode() fs.FileMode { return m.mode }

var (
	_ runner.ModeSource = hostFile("")
	_ runner.ModeSource = modeSource{}
)
