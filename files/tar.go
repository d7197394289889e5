package files

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"
)

// TarOptions shapes the tar [WriteTar] writes. The zero value writes entries
// named as in dir, owned by root (0:0).
type TarOptions struct {
	// Prefix is put before every entry name, e.g. "work/", so the tar
	// extracts into a directory named work; a missing trailing slash is
	// added. The prefix directory is an entry of its own (with DirMode).
	// It must be a local path (no "..", not absolute).
	Prefix string
	// ExtraDirs are directories (relative to dir, slash-separated) written
	// as entries (with DirMode) even when they do not exist in dir, e.g. an
	// output directory.
	ExtraDirs []string
	// DirMode is the mode of the prefix and extra directories; zero means
	// 0o755.
	DirMode fs.FileMode
	// DirModTime, when set, is the modification time of the prefix and
	// extra directories, so a caller can tell later whether anything was
	// written into them.
	DirModTime time.Time
	// UID and GID are the owner written in every header, so a non-root
	// container user can own (and write) the files. Zero is root; a
	// negative value (-1) keeps the host file's owner.
	UID, GID int
	// Shared makes every directory 0o777 and every regular file readable
	// and writable by all (mode | 0o666), and executable by all when its
	// owner may execute it, for a container user who does not own the
	// files.
	Shared bool
	// OnFile, when set, is called once for each regular file written, with
	// its path relative to dir (slash-separated, without Prefix) and what
	// was sent of it, so a caller can tell later whether the container
	// changed it ([ExtractOptions.Decide]). It is called from WriteTar's
	// goroutine, before WriteTar returns.
	OnFile func(rel string, f StagedFile)
}

// StagedFile is what [WriteTar] sent of one regular file.
type StagedFile struct {
	// Size is the number of bytes sent.
	Size int64
	// ModTime is the host file's modification time when it was opened, at
	// full precision; the tar carries it rounded to the second.
	ModTime time.Time
	// Mode is the permission bits written in the header.
	Mode fs.FileMode
}

// WriteTar streams the tree under dir to w as an uncompressed tar, the form
// an engine's CopyToContainer takes: directories (each name ending in "/"),
// regular files and symbolic links, in lexical order under opts.Prefix.
// Symbolic links are stored as links (their target as written) and never
// followed; devices, FIFOs and sockets are left out. Mode bits are kept
// within 0o777 (no setuid, setgid or sticky bit); directories keep their own
// mode, with no minimum, unless Shared. User and group names are left empty
// so the engine does not map them.
//
// dir is read through an [os.Root]. Each file is streamed through one 1 MiB
// buffer, never read whole; ctx is checked between entries and during each
// copy. WriteTar does not close w. A file that shrinks while it is copied is
// an error; one that grows is cut at the size it had when opened.
func WriteTar(ctx context.Context, w io.Writer, dir string, opts TarOptions) error {
	prefix := opts.Prefix
	if prefix != "" {
		clean, ok := LocalPath(strings.TrimSuffix(prefix, "/"))
		if !ok {
			return fmt.Errorf("files: tar prefix %q is not a local path", opts.Prefix)
		}
		prefix = clean + "/"
	}
	extra := map[string]bool{}
	for _, d := range opts.ExtraDirs {
		clean, ok := LocalPath(strings.TrimSuffix(d, "/"))
		if !ok {
			return fmt.Errorf("files: tar extra directory %q is not a local path", d)
		}
		extra[clean] = true
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("files: tar %s: %w", dir, err)
	}
	defer root.Close()

	tw := tar.NewWriter(w)
	t := tarWriter{tw: tw, root: root, opts: opts, prefix: prefix, buf: make([]byte, copyBufferSize)}
	if err := t.write(ctx, opts.ExtraDirs, extra); err != nil {
		return fmt.Errorf("files: tar %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("files: tar %s: %w", dir, err)
	}
	return nil
}

type tarWriter struct {
	tw     *tar.Writer
	root   *os.Root
	opts   TarOptions
	prefix string
	buf    []byte
}

func (t *tarWriter) write(ctx context.Context, extraDirs []string, extra map[string]bool) error {
	dirMode := t.opts.DirMode.Perm()
	if dirMode == 0 {
		dirMode = 0o755
	}
	if t.opts.Shared {
		dirMode = 0o777
	}
	uid, gid := t.opts.UID, t.opts.GID
	if uid < 0 || gid < 0 { // keep: the owner of dir
		info, err := t.root.Stat(".")
		if err != nil {
			return err
		}
		if hdr, err := tar.FileInfoHeader(info, ""); err == nil {
			if uid < 0 {
				uid = hdr.Uid
			}
			if gid < 0 {
				gid = hdr.Gid
			}
		}
		uid, gid = max(uid, 0), max(gid, 0)
	}
	madeDir := func(name string) error {
		return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(dirMode), ModTime: t.opts.DirModTime, Uid: uid, Gid: gid})
	}
	if t.prefix != "" {
		if err := madeDir(strings.TrimSuffix(t.prefix, "/")); err != nil {
			return err
		}
	}
	for _, d := range extraDirs {
		clean, _ := LocalPath(strings.TrimSuffix(d, "/"))
		if err := madeDir(t.prefix + clean); err != nil {
			return err
		}
	}
	return fs.WalkDir(t.root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			if extra[rel] {
				return nil // already written, with DirModTime
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return t.tw.WriteHeader(t.fileHeader(info, rel+"/", ""))
		case d.Type()&fs.ModeSymlink != 0:
			info, err := d.Info()
			if err != nil {
				return err
			}
			target, err := t.root.Readlink(rel)
			if err != nil {
				return err
			}
			return t.tw.WriteHeader(t.fileHeader(info, rel, target))
		case d.Type().IsRegular():
			return t.file(ctx, rel)
		}
		return nil // devices, sockets, FIFOs: not task files
	})
}

// fileHeader builds the header of a directory, link or file found in dir.
func (t *tarWriter) fileHeader(info fs.FileInfo, name, link string) *tar.Header {
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil { // only for types the walk does not pass here
		hdr = &tar.Header{Typeflag: tar.TypeReg}
	}
	hdr.Name = t.prefix + name
	hdr.Mode &= 0o777
	if t.opts.Shared {
		switch hdr.Typeflag {
		case tar.TypeDir:
			hdr.Mode = 0o777
		case tar.TypeReg:
			hdr.Mode = int64(sharedMode(fs.FileMode(hdr.Mode)))
		}
	}
	if t.opts.UID >= 0 {
		hdr.Uid = t.opts.UID
	}
	if t.opts.GID >= 0 {
		hdr.Gid = t.opts.GID
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	return hdr
}

// file writes a regular file: opened first, so that the header's size is
// that of the file being read.
func (t *tarWriter) file(ctx context.Context, rel string) error {
	// O_NONBLOCK: should rel have become a FIFO since the walk, opening
	// it must not wait for a writer.
	f, err := t.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil // replaced since the walk saw it
	}
	hdr := t.fileHeader(info, rel, "")
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if t.opts.OnFile != nil {
		t.opts.OnFile(rel, StagedFile{Size: hdr.Size, ModTime: info.ModTime(), Mode: fs.FileMode(hdr.Mode).Perm()})
	}
	n, err := io.CopyBuffer(t.tw, io.LimitReader(ctxReader{ctx, f}, hdr.Size), t.buf)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("%s shrank while being copied: %w", rel, io.ErrUnexpectedEOF)
	}
	return err
}
