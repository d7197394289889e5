package files

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DefaultMaxSanitizeEntries is the number of entries [Sanitize] looks at
// when [SanitizeOptions.MaxEntries] is zero.
const DefaultMaxSanitizeEntries = 1_000_000

// SanitizeOptions changes what [Sanitize] does. The zero value strips modes
// and removes special files, and changes no owner.
type SanitizeOptions struct {
	// Owner, when true, gives every entry owned by neither root nor UID to
	// UID:GID (with lchown: a symbolic link itself, never its target), so
	// that no other local user owns, and may change, anything left. It
	// needs the right to change owners (root).
	Owner    bool
	UID, GID int
	// MaxEntries bounds the entries looked at; zero means
	// [DefaultMaxSanitizeEntries]. Past it, Sanitize stops with an error
	// matching [ErrLimit].
	MaxEntries int
}

// SanitizeStats says what [Sanitize] changed. Paths are relative to the
// directory, slash-separated, in walk order.
type SanitizeStats struct {
	// Entries is the number of entries looked at, the directory itself
	// excluded.
	Entries int
	// Removed lists the devices, FIFOs and sockets removed, and the files
	// whose mode could not be changed and were removed instead.
	Removed []string
	// Cleared lists the entries whose setuid or setgid bit was cleared.
	Cleared []string
	// Restricted counts the entries that lost the group or other write bit
	// or the sticky bit (and nothing else).
	Restricted int
	// Chowned counts the entries given to SanitizeOptions.UID:GID.
	Chowned int
	// Failed lists the entries that could not be made safe (an owner or a
	// mode that could not be changed, a special file that could not be
	// removed), with the reason.
	Failed []string
}

// Sanitize walks the tree under dir, which a container may have written
// into, and leaves in it nothing that another local user could use: devices,
// FIFOs and sockets are removed (a process opening a FIFO would block, a
// device would give the container's choice of disk); the setuid, setgid and
// sticky bits and the group and other write bits are cleared (modes within
// 0o755); with Owner, entries owned by another user are given to UID:GID.
// dir itself is not changed. Symbolic links are left as they are, and never
// followed: like [Collect], a reader that follows no link is safe.
//
// The walk goes through an [os.Root] on dir, parents before children, so a
// directory is closed to others before its entries are read. It honours ctx
// between entries and stops at MaxEntries with an error matching
// [ErrLimit]; the stats then tell what was done so far. It is meant for a
// tree no process writes into any more (a container that has exited).
func Sanitize(ctx context.Context, dir string, opts SanitizeOptions) (SanitizeStats, error) {
	var st SanitizeStats
	maxEntries := opts.MaxEntries
	if maxEntries <= 0 {
		maxEntries = DefaultMaxSanitizeEntries
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, fmt.Errorf("files: sanitize %s: %w", dir, err)
	}
	defer root.Close()
	fail := func(rel string, err error) {
		st.Failed = append(st.Failed, fmt.Sprintf("%s: %v", rel, err))
	}
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			if rel == "." {
				return err
			}
			fail(rel, err) // an unreadable directory: reported, the walk goes on
			return nil
		}
		if rel == "." {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if st.Entries >= maxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, maxEntries)
		}
		st.Entries++
		fi, err := root.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			fail(rel, err)
			return nil
		}
		mode := fi.Mode()
		if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0 {
			if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
				fail(rel, err)
			} else {
				st.Removed = append(st.Removed, rel)
			}
			return nil
		}
		if opts.Owner {
			if uid, ok := fileUID(fi); ok && uid != 0 && uid != opts.UID {
				if err := root.Lchown(rel, opts.UID, opts.GID); err != nil {
					fail(rel, err)
				} else {
					st.Chowned++
				}
			}
		}
		if mode&fs.ModeSymlink != 0 {
			return nil
		}
		bad := mode & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o022)
		if bad == 0 {
			return nil
		}
		// Chmod through the Root follows no link out of dir; rel is no
		// link (Lstat above), and nothing else writes into dir.
		if err := root.Chmod(rel, mode.Perm()&0o755); err != nil {
			if mode.IsDir() || root.Remove(rel) != nil {
				fail(rel, err)
				if mode.IsDir() {
					return fs.SkipDir // not safe to go on below it
				}
				return nil
			}
			st.Removed = append(st.Removed, rel)
			return nil
		}
		if bad&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			st.Cleared = append(st.Cleared, rel)
		} else {
			st.Restricted++
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("files: sanitize %s: %w", dir, err)
	}
	return st, nil
}
