package files

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Limits [Extract] applies when [ExtractOptions] leaves them zero.
const (
	// DefaultMaxBytes is the default cap on the bytes one extraction
	// writes: 10 GiB.
	DefaultMaxBytes int64 = 10 << 30
	// DefaultMaxFiles is the default cap on the files and directories one
	// extraction creates: 100,000.
	DefaultMaxFiles = 100_000
)

// maxSkippedListed bounds [ExtractStats.Skipped]; the rest are counted.
const maxSkippedListed = 1000

var (
	// ErrLimit is matched by the error [Extract] returns when a stream
	// would go past [ExtractOptions.MaxBytes] or [ExtractOptions.MaxFiles].
	ErrLimit = errors.New("output limit exceeded")
	// ErrUnsafeEntry is matched by the error [Extract] returns for an entry
	// it refuses: a name that is absolute, not local or has a ".." element,
	// a device or FIFO, or a path through a symbolic link in the
	// destination. The error names the entry.
	ErrUnsafeEntry = errors.New("unsafe tar entry")
)

// ExtractOptions controls [Extract]. The zero value extracts every regular
// file, refuses to replace existing ones, and applies the default limits.
type ExtractOptions struct {
	// StripPrefix is removed from the start of every entry name (a leading
	// "./" is ignored, and a missing trailing slash added). Entries outside
	// it are skipped and listed; the prefix directory itself is ignored. The
	// Engine's archive API roots entries at the base name of the copied
	// path, so copying /work calls for "work/".
	StripPrefix string
	// Filter, when set, selects the regular files to write by their path
	// after StripPrefix (slash-separated, cleaned); the others are skipped
	// silently. It is also asked about device and FIFO entries: those it
	// drops are skipped rather than refused.
	Filter func(rel string) bool
	// MaxBytes caps the bytes written, MaxFiles the regular files written
	// plus the directories created (a duplicate entry counts again). Zero or
	// negative means [DefaultMaxBytes] and [DefaultMaxFiles].
	MaxBytes int64
	MaxFiles int
	// Overwrite lets an entry replace a file or symbolic link already in
	// dest. The old one is renamed aside, never written through, removed
	// once the extraction succeeds, and put back if it fails. Without
	// Overwrite such an entry is an error matching [fs.ErrExist]. A
	// directory in the way is always an error.
	Overwrite bool
	// Under, when set, is a directory of dest (a local, slash-separated
	// path) that the entries are written under, after StripPrefix: it lets
	// the archive of one container path ("a/b/c", whose entries the Engine
	// names "c", "c/...") land where that path belongs. Filter, Decide and
	// the stats see paths that include it. Its missing parts are created
	// like the entries' own directories (counted, removed on error).
	Under string
	// Decide, when set, is asked about each regular file that Filter
	// selected, before anything is written, with its path and header:
	// [Write] writes it as the other options say, [Skip] drops it (its
	// content is not written; it is listed nowhere), and [WriteIfChanged]
	// writes it unless a regular file with the same content is already at
	// its path, which is then left as it was (compared while reading, so
	// an identical file is never written, and counted in
	// [ExtractStats.Unchanged]); a differing file is replaced as with
	// Overwrite.
	Decide func(rel string, hdr *tar.Header) Decision
	// Stop, when set, is asked about each entry, with its path (after
	// StripPrefix and Under), before it is handled: true ends the
	// extraction there as if the stream had ended, so the rest of it is
	// not read. It lets a caller that knows nothing more can match stop
	// early.
	Stop func(rel string) bool
}

// Decision is what [ExtractOptions.Decide] says to do with an entry.
type Decision int

const (
	// Write writes the entry.
	Write Decision = iota
	// Skip drops the entry.
	Skip
	// WriteIfChanged writes the entry unless dest already holds a regular
	// file with the same content at its path.
	WriteIfChanged
)

// ExtractStats says what [Extract] did. After an error, Files is empty (what
// was written has been removed) and Bytes says how much had been written.
type ExtractStats struct {
	// Files are the regular files written, slash-separated paths relative
	// to dest, in stream order, each once.
	Files []string
	// Bytes is the number of bytes written, counting every entry written,
	// also one a later duplicate replaced.
	Bytes int64
	// Skipped lists entries not written, each as "name: reason" (the name
	// after StripPrefix, or the entry's whole name when outside it):
	// symbolic and hard links, devices and FIFOs, entries outside
	// StripPrefix, unsupported types; and files written without the setuid
	// or setgid bits their entry asked for ("name: written without its
	// setuid/setgid bits"). Files dropped by Filter and directory entries
	// are not listed.
	// At most 1,000 are listed; MoreSkipped counts the others.
	Skipped     []string
	MoreSkipped int
	// Unchanged counts the entries [WriteIfChanged] left alone because
	// dest already held the same content.
	Unchanged int
}

func (s *ExtractStats) skip(name, reason string) {
	if len(s.Skipped) < maxSkippedListed {
		s.Skipped = append(s.Skipped, name+": "+reason)
	} else {
		s.MoreSkipped++
	}
}

// Extract reads the tar stream r, which may be hostile, and writes its
// regular files into the existing directory dest, streaming each through
// one 1 MiB buffer. See the package documentation (Security, Limits) for
// what it refuses, skips and bounds; in short:
//
//   - every operation goes through an [os.Root] on dest;
//   - an unsafe entry fails the extraction with an error matching
//     [ErrUnsafeEntry] that names it; going past a limit with one matching
//     [ErrLimit];
//   - symbolic links and hard links in the stream are never created: they
//     are skipped and listed in the stats;
//   - directories are created only as needed for the files written; one
//     with an entry in the stream gets its mode (within 0o755, at least
//     0o700) at the end, the others 0o755 less the umask;
//   - files are created with O_EXCL, mode within 0o755 and at least 0o600,
//     less the umask; an existing one is replaced only with Overwrite;
//   - a name that comes twice: the later entry replaces the file the earlier
//     one wrote (removed first, never written through);
//   - on any error, ctx's included, the files and directories this call
//     created are removed and what it replaced is put back, so dest is as
//     it was. Directories that were there before are never removed.
//
// A process must not change dest while Extract runs (run it after the
// container has exited): the Root still keeps every write inside dest, but
// the rollback could then miss something.
func Extract(ctx context.Context, r io.Reader, dest string, opts ExtractOptions) (ExtractStats, error) {
	e, stats, err := ExtractPending(ctx, r, dest, opts)
	if err != nil {
		return stats, err
	}
	return stats, e.Commit()
}

// Extraction is an extraction whose files are written but not yet final:
// what it replaced is still set aside and the modes of the directories it
// made are not yet applied. [Extraction.Commit] makes it final,
// [Extraction.Rollback] undoes it. It lets a caller extract several
// streams and keep all of them or none.
type Extraction struct {
	x    *extractor
	done bool
}

// ExtractPending is [Extract] without the final step: on success it
// returns an [Extraction] that the caller must Commit or Rollback (dest
// stays open until then). On error it has already undone what it did, as
// Extract does, and returns a nil Extraction.
func ExtractPending(ctx context.Context, r io.Reader, dest string, opts ExtractOptions) (*Extraction, ExtractStats, error) {
	x := &extractor{
		opts:     opts,
		maxBytes: opts.MaxBytes,
		maxFiles: opts.MaxFiles,
		prefix:   opts.StripPrefix,
		dirs:     map[string]bool{},
		dirModes: map[string]fs.FileMode{},
		files:    map[string]bool{},
	}
	if x.maxBytes <= 0 {
		x.maxBytes = DefaultMaxBytes
	}
	if x.maxFiles <= 0 {
		x.maxFiles = DefaultMaxFiles
	}
	if x.prefix != "" {
		p := strings.TrimSuffix(trimDotSlash(x.prefix), "/")
		x.prefix, x.stripRoot = p+"/", p
		if p == "" || p == "." {
			x.prefix, x.stripRoot = "", ""
		}
	}
	if opts.Under != "" {
		under, ok := LocalPath(strings.TrimSuffix(opts.Under, "/"))
		if !ok {
			return nil, ExtractStats{}, fmt.Errorf("files: extract into %s: Under %q is not a local path", dest, opts.Under)
		}
		x.under = under
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, ExtractStats{}, fmt.Errorf("files: extract into %s: %w", dest, err)
	}
	x.root = root

	err = x.run(ctx, r)
	if err != nil {
		err = errors.Join(err, x.rollback())
		root.Close()
		x.stats.Files = nil
		return nil, x.stats, err
	}
	return &Extraction{x: x}, x.stats, nil
}

// Commit makes the extraction final: the directories it made get the modes
// of their entries and what it replaced is removed. Later calls do nothing.
func (e *Extraction) Commit() error {
	if e == nil || e.done {
		return nil
	}
	e.done = true
	defer e.x.root.Close()
	return e.x.commit()
}

// Rollback removes the files and directories the extraction created and
// puts back what it replaced, so dest is as it was. Later calls, and calls
// after Commit, do nothing.
func (e *Extraction) Rollback() error {
	if e == nil || e.done {
		return nil
	}
	e.done = true
	defer e.x.root.Close()
	return e.x.rollback()
}

type extractor struct {
	opts              ExtractOptions
	root              *os.Root
	maxBytes          int64
	maxFiles          int
	prefix, stripRoot string
	under             string // ExtractOptions.Under, cleaned
	stats             ExtractStats
	created           int                    // files written and directories made, for MaxFiles
	dirs              map[string]bool        // directories known to be real, in dest
	madeDirs          []string               // directories this call made, in order
	dirModes          map[string]fs.FileMode // modes of directory entries
	files             map[string]bool        // files this call wrote
	backups           []backup               // entries renamed aside, in order
	buf               []byte
	cmp               []byte // second buffer for WriteIfChanged, made when first needed
}

// errStop ends an extraction that [ExtractOptions.Stop] stopped.
var errStop = errors.New("stopped")

// backup is a file or link that was in dest, renamed aside for an entry.
type backup struct{ rel, aside string }

func trimDotSlash(name string) string {
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(name[2:], "/")
	}
	return name
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	x.buf = make([]byte, copyBufferSize)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("files: extract: %w", err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("files: read tar: %w", err)
		}
		if err := x.entry(ctx, tr, hdr); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

// nameProblem says why LocalPath refuses name.
func nameProblem(name string) string {
	switch {
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || filepath.IsAbs(name):
		return "is absolute"
	case strings.ContainsRune(name, 0):
		return "contains NUL"
	case len(name) > maxNameLen:
		return fmt.Sprintf("is longer than %d bytes", maxNameLen)
	}
	for part := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return `has a ".." element`
		}
	}
	return "is not a local path"
}

func unsafeEntry(name, problem string) error {
	return fmt.Errorf("files: %w %q: %s", ErrUnsafeEntry, name, problem)
}

// entry handles one header; tr is positioned on its content.
func (x *extractor) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	name := trimDotSlash(hdr.Name)
	if x.prefix != "" {
		rest, ok := strings.CutPrefix(name, x.prefix)
		if !ok {
			if strings.TrimSuffix(name, "/") != x.stripRoot {
				x.stats.skip(hdr.Name, "outside "+x.prefix)
			}
			return nil
		}
		name = rest
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil // the top directory itself ("./", or the prefix)
		}
		return unsafeEntry(hdr.Name, "has an empty name")
	}
	rel, ok := LocalPath(name)
	if !ok {
		return unsafeEntry(hdr.Name, nameProblem(name))
	}
	if x.under != "" {
		rel = x.under + "/" + rel
	}
	if x.opts.Stop != nil && x.opts.Stop(rel) {
		return errStop
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // a sparse file reads as its full, expanded content
	case tar.TypeDir:
		if _, seen := x.dirModes[rel]; seen || len(x.dirModes) < x.maxFiles {
			x.dirModes[rel] = fs.FileMode(hdr.Mode).Perm()
		}
		return nil
	case tar.TypeSymlink:
		x.stats.skip(rel, "symbolic link not extracted")
		return nil
	case tar.TypeLink:
		x.stats.skip(rel, "hard link not extracted")
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if x.wanted(rel) {
			x.stats.skip(rel, "device or FIFO not extracted")
		}
		return nil
	default:
		x.stats.skip(rel, fmt.Sprintf("entry of type %q not extracted", hdr.Typeflag))
		return nil
	}
	if !x.wanted(rel) {
		return nil
	}
	decision := Write
	if x.opts.Decide != nil {
		decision = x.opts.Decide(rel, hdr)
		if decision == Skip {
			return nil
		}
	}
	if hdr.Size < 0 {
		return fmt.Errorf("files: tar entry %q: negative size", hdr.Name)
	}
	if hdr.Size > x.maxBytes-x.stats.Bytes {
		return fmt.Errorf("files: %w: tar entry %q (%d bytes) would take the total past %d bytes", ErrLimit, hdr.Name, hdr.Size, x.maxBytes)
	}
	if err := x.mkdirs(hdr.Name, path.Dir(rel)); err != nil {
		return err
	}
	return x.write(ctx, tr, hdr, rel, decision)
}

func (x *extractor) wanted(rel string) bool {
	return x.opts.Filter == nil || x.opts.Filter(rel)
}

// count reserves one more created file or directory.
func (x *extractor) count() error {
	if x.created >= x.maxFiles {
		return fmt.Errorf("files: %w: more than %d files and directories", ErrLimit, x.maxFiles)
	}
	x.created++
	return nil
}

// mkdirs makes dir and its parents, refusing to go through anything but a
// real directory.
func (x *extractor) mkdirs(entry, dir string) error {
	if dir == "." || x.dirs[dir] {
		return nil
	}
	if err := x.mkdirs(entry, path.Dir(dir)); err != nil {
		return err
	}
	fi, err := x.root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.count(); err != nil {
			return err
		}
		if err := x.root.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("files: tar entry %q: %w", entry, err)
		}
		x.madeDirs = append(x.madeDirs, dir)
	case err != nil:
		return fmt.Errorf("files: tar entry %q: %w", entry, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafeEntry(entry, fmt.Sprintf("goes through the symbolic link %q in the destination", dir))
	case !fi.IsDir():
		return fmt.Errorf("files: tar entry %q: %q is not a directory in the destination", entry, dir)
	}
	x.dirs[dir] = true
	return nil
}

// write creates rel with O_EXCL, after moving aside (Overwrite) or removing
// (an earlier entry of this stream) what is there, and copies the content.
func (x *extractor) write(ctx context.Context, tr *tar.Reader, hdr *tar.Header, rel string, decision Decision) error {
	fi, err := x.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("files: tar entry %q: %w", hdr.Name, err)
	case fi.IsDir():
		return fmt.Errorf("files: tar entry %q: %q is a directory in the destination", hdr.Name, rel)
	case x.files[rel]: // written by an earlier entry of this stream
		if err := x.root.Remove(rel); err != nil {
			return fmt.Errorf("files: tar entry %q: replace the earlier entry: %w", hdr.Name, err)
		}
	case decision == WriteIfChanged && fi.Mode().IsRegular():
		return x.writeIfChanged(ctx, tr, hdr, rel)
	case !x.opts.Overwrite && decision != WriteIfChanged:
		return fmt.Errorf("files: tar entry %q: %q exists in the destination (Overwrite is off): %w", hdr.Name, rel, fs.ErrExist)
	default:
		if err := x.count(); err != nil {
			return err
		}
		if err := x.moveAside(rel); err != nil {
			return fmt.Errorf("files: tar entry %q: %w", hdr.Name, err)
		}
		return x.create(ctx, tr, hdr, rel)
	}
	if err := x.count(); err != nil {
		return err
	}
	return x.create(ctx, tr, hdr, rel)
}

// writeIfChanged compares the entry's content with the regular file at rel
// while reading it, and replaces the file only from the first difference
// on: the new file gets the bytes compared so far from the old one, then
// the rest of the entry.
func (x *extractor) writeIfChanged(ctx context.Context, tr *tar.Reader, hdr *tar.Header, rel string) error {
	old, err := x.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("files: tar entry %q: %w", hdr.Name, err)
	}
	defer old.Close()
	if fi, err := old.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != hdr.Size {
		return x.replace(ctx, tr, hdr, rel, nil) // not what was compared: replace
	}
	if x.cmp == nil {
		x.cmp = make([]byte, copyBufferSize)
	}
	var same int64
	in := ctxReader{ctx, tr}
	for {
		n, rerr := io.ReadFull(in, x.cmp)
		if n > 0 {
			m, _ := io.ReadFull(old, x.buf[:n])
			if m != n || !bytes.Equal(x.cmp[:n], x.buf[:n]) {
				pending := io.MultiReader(io.NewSectionReader(old, 0, same), bytes.NewReader(x.cmp[:n]), in)
				return x.replace(ctx, tr, hdr, rel, pending)
			}
			same += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("files: tar entry %q: %w", hdr.Name, rerr)
		}
	}
	if same != hdr.Size {
		return fmt.Errorf("files: tar entry %q: %d bytes of %d: %w", hdr.Name, same, hdr.Size, io.ErrUnexpectedEOF)
	}
	if n, _ := old.Read(x.buf[:1]); n > 0 { // the old file grew meanwhile
		return x.replace(ctx, tr, hdr, rel, io.NewSectionReader(old, 0, same))
	}
	x.stats.Unchanged++
	return nil
}

// replace moves the file at rel aside and writes the entry in its place,
// from content when set (what is left of the entry, preceded by what was
// already read of it), else from tr.
func (x *extractor) replace(ctx context.Context, tr *tar.Reader, hdr *tar.Header, rel string, content io.Reader) error {
	if err := x.count(); err != nil {
		return err
	}
	if err := x.moveAside(rel); err != nil {
		return fmt.Errorf("files: tar entry %q: %w", hdr.Name, err)
	}
	if content == nil {
		return x.create(ctx, tr, hdr, rel)
	}
	return x.createFrom(content, hdr, rel)
}

// create makes rel, which is free, and copies the entry's content into it.
func (x *extractor) create(ctx context.Context, tr *tar.Reader, hdr *tar.Header, rel string) error {
	return x.createFrom(ctxReader{ctx, tr}, hdr, rel)
}

// createFrom makes rel, which is free, and copies the entry's content,
// read from src, into it.
func (x *extractor) createFrom(src io.Reader, hdr *tar.Header, rel string) error {
	mode := fs.FileMode(hdr.Mode).Perm()&0o755 | 0o600
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("files: tar entry %q: %w", hdr.Name, err)
	}
	if hdr.Mode&0o6000 != 0 {
		x.stats.skip(rel, "written without its setuid/setgid bits")
	}
	if !x.files[rel] {
		x.files[rel] = true
		x.stats.Files = append(x.stats.Files, rel)
	}
	// Read at most one byte past what is left, whatever the header says.
	left := x.maxBytes - x.stats.Bytes
	n, err := io.CopyBuffer(writerOnly{f}, io.LimitReader(src, left+1), x.buf)
	x.stats.Bytes += n
	err = errors.Join(err, f.Close())
	switch {
	case err != nil:
		return fmt.Errorf("files: tar entry %q: %w", hdr.Name, err)
	case n > left:
		return fmt.Errorf("files: %w: tar entry %q takes the total past %d bytes", ErrLimit, hdr.Name, x.maxBytes)
	case n != hdr.Size:
		return fmt.Errorf("files: tar entry %q: %d bytes of %d: %w", hdr.Name, n, hdr.Size, io.ErrUnexpectedEOF)
	}
	return nil
}

// moveAside renames what is at rel to a fresh name in the same directory.
func (x *extractor) moveAside(rel string) error {
	for range 10 {
		aside := path.Join(path.Dir(rel), ".lading-replaced-"+rand.Text())
		if _, err := x.root.Lstat(aside); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := x.root.Rename(rel, aside); err != nil {
			return err
		}
		x.backups = append(x.backups, backup{rel: rel, aside: aside})
		return nil
	}
	return errors.New("no free name to move the existing file aside")
}

// rollback removes what this call created and puts back what it moved
// aside. It is best effort and reports what it could not undo.
func (x *extractor) rollback() error {
	var errs []error
	for rel := range x.files {
		if err := x.root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for i := len(x.backups) - 1; i >= 0; i-- {
		b := x.backups[i]
		if err := x.root.Rename(b.aside, b.rel); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(x.madeDirs) - 1; i >= 0; i-- {
		if err := x.root.Remove(x.madeDirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("files: undo a failed extraction: %w", err)
	}
	return nil
}

// commit gives the directories this call made the modes of their entries
// and removes what was moved aside.
func (x *extractor) commit() error {
	var errs []error
	for _, dir := range x.madeDirs {
		if mode, ok := x.dirModes[dir]; ok {
			if err := x.root.Chmod(dir, mode&0o755|0o700); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, b := range x.backups {
		if err := x.root.Remove(b.aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("files: finish extraction: %w", err)
	}
	return nil
}
