package files

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// TarOptions shapes the tar [WriteTar] writes.
type TarOptions struct {
	// Prefix is put before every entry name, e.g. "work/" to extract into
	// a directory named work. The prefix directory itself is an entry too.
	Prefix string
	// ExtraDirs are directories (relative to dir, slash-separated) added as
	// entries even when they do not exist in dir, e.g. an output directory.
	ExtraDirs []string
	// DirMode is the mode of the prefix and extra directories (default
	// 0o755).
	DirMode fs.FileMode
	// DirModTime, when set, is the modification time of the prefix and
	// extra directories, so a caller can tell later whether anything was
	// written into them.
	DirModTime time.Time
	// Shared makes every directory 0o777 and every file writable by all
	// (mode | 0o666), for a container user who does not own the files.
	Shared bool
}

// WriteTar streams the tree under dir to w as an uncompressed tar:
// directories, regular files and symbolic links (stored as links, never
// followed); other file types are left out. Files are streamed, one buffer
// at a time.
func WriteTar(ctx context.Context, w io.Writer, dir string, opts TarOptions) error {
	tw := tar.NewWriter(w)
	mode := opts.DirMode
	if mode == 0 {
		mode = 0o755
	}
	if opts.Shared {
		mode = 0o777
	}
	writeDir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(mode.Perm()), ModTime: opts.DirModTime})
	}
	if p := strings.TrimSuffix(opts.Prefix, "/"); p != "" {
		if err := writeDir(p); err != nil {
			return err
		}
	}
	for _, d := range opts.ExtraDirs {
		if err := writeDir(opts.Prefix + d); err != nil {
			return err
		}
	}
	buf := make([]byte, copyBufferSize)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case !info.Mode().IsRegular() && !info.IsDir():
			return nil // devices, sockets, pipes: not task files
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = opts.Prefix + filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Mode &= 0o777
		if opts.Shared {
			if info.IsDir() {
				hdr.Mode = 0o777
			} else if link == "" {
				hdr.Mode |= 0o666
			}
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("%s changed size while being copied", rel)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("files: tar %s: %w", dir, err)
	}
	return tw.Close()
}

// Limits applied by [Extract] when [ExtractOptions] leaves them zero.
const (
	DefaultMaxBytes int64 = 10 << 30 // 10 GiB
	DefaultMaxFiles int   = 100_000
)

// ErrLimit is matched by the error [Extract] returns when a stream goes over
// its byte or file limit.
var ErrLimit = errors.New("output limit exceeded")

// ExtractOptions controls [Extract].
type ExtractOptions struct {
	// StripPrefix is removed from every entry name; entries outside it are
	// skipped. The Engine's archive API roots entries at the base name of
	// the copied path ("work/...").
	StripPrefix string
	// Keep, when set, selects the regular files to write by their name
	// (after StripPrefix, slash-separated); the others are skipped.
	Keep func(rel string) bool
	// MaxBytes and MaxFiles bound what is written; zero means
	// DefaultMaxBytes and DefaultMaxFiles.
	MaxBytes int64
	MaxFiles int
}

// ExtractStats says what [Extract] did.
type ExtractStats struct {
	Files   []string // regular files written, relative to dest, slash-separated
	Bytes   int64    // bytes written
	Skipped []string // entries not written, each with the reason
}

// Extract writes the regular files of the tar stream r into dest. See the
// package documentation for what it refuses and skips. An entry with an
// unsafe name, or one that would go outside dest, fails the extraction; on
// any failure, the files this call created are removed.
func Extract(ctx context.Context, r io.Reader, dest string, opts ExtractOptions) (stats ExtractStats, err error) {
	maxBytes, maxFiles := opts.MaxBytes, opts.MaxFiles
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return stats, fmt.Errorf("files: open %s: %w", dest, err)
	}
	defer root.Close()
	defer func() {
		if err != nil {
			for _, f := range stats.Files {
				_ = root.Remove(f)
			}
			stats.Files, stats.Bytes = nil, 0
		}
	}()

	tr := tar.NewReader(r)
	buf := make([]byte, copyBufferSize)
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return stats, nil
		}
		if err != nil {
			return stats, fmt.Errorf("files: read tar: %w", err)
		}
		name := hdr.Name
		if opts.StripPrefix != "" {
			trimmed, ok := strings.CutPrefix(name, opts.StripPrefix)
			if !ok {
				if strings.TrimSuffix(name, "/") != strings.TrimSuffix(opts.StripPrefix, "/") {
					stats.Skipped = append(stats.Skipped, name+": outside "+opts.StripPrefix)
				}
				continue
			}
			name = trimmed
		}
		if strings.TrimSuffix(name, "/") == "" {
			continue // the root directory itself
		}
		rel, ok := LocalPath(strings.TrimSuffix(name, "/"))
		if !ok {
			return stats, fmt.Errorf("files: refused tar entry %q: its name leaves the destination", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue // directories are made for the files kept
		case tar.TypeReg, tar.TypeRegA:
		default:
			stats.Skipped = append(stats.Skipped, rel+": "+entryKind(hdr.Typeflag)+" not collected")
			continue
		}
		if opts.Keep != nil && !opts.Keep(rel) {
			continue
		}
		if len(stats.Files) >= maxFiles {
			return stats, fmt.Errorf("files: %w: more than %d files", ErrLimit, maxFiles)
		}
		if hdr.Size > maxBytes-stats.Bytes {
			return stats, fmt.Errorf("files: %w: %s would take the total past %d bytes", ErrLimit, rel, maxBytes)
		}
		n, err := writeEntry(root, rel, fs.FileMode(hdr.Mode).Perm(), tr, hdr.Size, buf, &stats)
		stats.Bytes += n
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
				return stats, fmt.Errorf("files: refused tar entry %q: it goes through a symbolic link out of the destination", hdr.Name)
			}
			return stats, fmt.Errorf("files: write %s: %w", rel, err)
		}
	}
}

// writeEntry creates rel (replacing a file or link there, never writing
// through it) and copies size bytes into it.
func writeEntry(root *os.Root, rel string, mode fs.FileMode, r io.Reader, size int64, buf []byte, stats *ExtractStats) (int64, error) {
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
	}
	if err := removeFile(root, rel); err != nil {
		return 0, err
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
	if err != nil {
		return 0, err
	}
	stats.Files = append(stats.Files, rel)
	n, err := io.CopyBuffer(f, io.LimitReader(r, size), buf)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && mode&0o600 != 0o600 {
		err = f.Chmod(mode) // as the container had it, once written
	}
	return n, errors.Join(err, f.Close())
}

func entryKind(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("entry of type %q", t)
}
