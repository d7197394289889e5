// Package files moves a task's files between the host and a container
// engine: it stages input files into a host working directory, streams a
// directory as a tar, extracts the (hostile) tar a container sends back, and
// selects output files with Kestra's globs.
//
// # Security
//
// A tar stream that comes out of a container is written by whatever ran in
// it. [Extract] therefore writes only through an [os.Root] opened on the
// destination, so no entry can escape it, whether by an absolute name, "..",
// or a symbolic link already in the destination. Entry names must be local
// ([filepath.IsLocal]). Files are created with O_EXCL (an existing file is
// removed first, never written through); symbolic links, hard links,
// devices, FIFOs and sockets in the stream are skipped and reported, never
// created; mode bits are kept within 0o777 (no setuid, setgid or sticky
// bit). [Stage] writes input files through an os.Root too.
//
// # Limits
//
// Extraction stops with an error matching [ErrLimit] past
// [ExtractOptions.MaxBytes] bytes or [ExtractOptions.MaxFiles] files
// ([DefaultMaxBytes] and [DefaultMaxFiles] when zero), and removes every
// file it created.
//
// # Globs
//
// [NewMatcher] compiles output globs with doublestar: "*.txt" matches the
// top level only, "out/**" a whole subtree, "{a,b}.csv" and "[ab].txt" work.
package files

import (
	"bytes"
	"io"
	"os"
	"strings"

	"github.com/lading-dev/lading/runner"
)

// String returns a source with the content s.
func String(s string) runner.Source {
	return readerSource{func() io.Reader { return strings.NewReader(s) }}
}

// Bytes returns a source with the content b. b must not change until the run
// has staged it.
func Bytes(b []byte) runner.Source {
	return readerSource{func() io.Reader { return bytes.NewReader(b) }}
}

// Reader returns a source that reads r, once: a task using it can run only
// once.
func Reader(r io.Reader) runner.Source { return readerSource{func() io.Reader { return r }} }

type readerSource struct{ open func() io.Reader }

func (s readerSource) Open() (io.ReadCloser, error) { return io.NopCloser(s.open()), nil }

// HostFile returns a source that reads the host file at path when the run
// stages it. The file is streamed, never held in memory.
func HostFile(path string) runner.Source { return hostFile(path) }

type hostFile string

func (h hostFile) Open() (io.ReadCloser, error) {
	f, err := os.Open(string(h))
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: string(h), Err: errNotRegular}
	}
	return f, nil
}
