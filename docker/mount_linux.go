//go:build linux

package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lading-dev/lading/runner"
)

// statOwner returns the owner, group, device and inode of the file fi
// describes.
func statOwner(fi fs.FileInfo) (uid, gid int, dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, 0, 0, false
	}
	return int(st.Uid), int(st.Gid), uint64(st.Dev), st.Ino, true
}

// leaseAttr is the extended attribute of a caller's working directory that
// records, while MOUNT runs use it, which runs they are and the directory's
// own owner and mode from before the first of them. It is in the trusted
// namespace, which only the host's root can write (a container's root
// cannot: it lacks CAP_SYS_ADMIN), so a script cannot forge it.
const leaseAttr = "trusted.lading.runs"

// lease is one run's entry in a working directory's record.
type lease struct{ holder string }

// leaseRecord is the content of leaseAttr.
type leaseRecord struct {
	uid, gid int
	mode     fs.FileMode
	grant    int      // the uid the directory was given to, -1 for none
	holders  []string // "host pid start runid", "-" for an empty field
}

const leaseMagic = "lading-runs 1"

func (rec *leaseRecord) encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%d %d %d %d\n", leaseMagic, rec.uid, rec.gid, uint32(rec.mode), rec.grant)
	for _, h := range rec.holders {
		b.WriteString(h + "\n")
	}
	return []byte(b.String())
}

func decodeLease(data []byte) (*leaseRecord, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 2 || lines[0] != leaseMagic {
		return nil, errors.New("unknown format")
	}
	f := strings.Fields(lines[1])
	if len(f) != 4 {
		return nil, errors.New("unknown format")
	}
	var n [4]int64
	for i, s := range f {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, errors.New("unknown format")
		}
		n[i] = v
	}
	return &leaseRecord{uid: int(n[0]), gid: int(n[1]), mode: fs.FileMode(uint32(n[2])), grant: int(n[3]), holders: lines[2:]}, nil
}

// readLease returns the directory's record, nil when it has none, or an
// error matching errLeaseUnsupported where the file system or the
// process's rights allow no record.
func readLease(dir string) (*leaseRecord, error) {
	buf := make([]byte, 64<<10)
	n, err := syscall.Getxattr(dir, leaseAttr, buf)
	switch {
	case errors.Is(err, syscall.ENODATA):
		return nil, nil
	case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return nil, errLeaseUnsupported
	case err != nil:
		return nil, err
	}
	rec, err := decodeLease(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("the record of the runs using it (%s): %w", leaseAttr, err)
	}
	return rec, nil
}

var errLeaseUnsupported = errors.New("no record of the runs using a directory")

func writeLease(dir string, rec *leaseRecord) error {
	return syscall.Setxattr(dir, leaseAttr, rec.encode(), 0)
}

// liveHolders drops the holders whose process is gone.
func liveHolders(holders []string) []string {
	var live []string
	for _, h := range holders {
		f := strings.Fields(h)
		if len(f) != 4 {
			continue
		}
		labels := map[string]string{LabelOwnerHost: f[0], LabelOwnerPID: f[1]}
		if f[0] == "-" {
			labels[LabelOwnerHost] = ""
		}
		if f[2] != "-" {
			labels[LabelOwnerBoot] = f[2]
		}
		if ownerMayBeAlive(labels) {
			live = append(live, h)
		}
	}
	return live
}

// lockDir takes an exclusive flock on dir, waiting at most cleanupTimeout
// (or until ctx is done) for another run to let go of it.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	deadline := time.Now().Add(cleanupTimeout)
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(fd, syscall.LOCK_UN); _ = syscall.Close(fd) }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = syscall.Close(fd)
			return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = syscall.Close(fd)
			return nil, fmt.Errorf("another run held the lock on %s for more than %s", dir, cleanupTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// acquireLease records runID as using the caller's working directory dir
// and, when wantUID >= 0, gives dir to that user (unless a run using it
// already did). It returns a nil lease, and changes nothing, where no
// record can be kept (not root, or a file system without extended
// attributes): the run then handles dir as the only one using it.
func acquireLease(ctx context.Context, dir, runID string, owner map[string]string, wantUID, wantGID int) (*lease, bool, error) {
	if os.Geteuid() != 0 {
		return nil, false, nil
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return nil, false, fmt.Errorf("docker: working directory: %w", err)
	}
	defer unlock()
	rec, err := readLease(dir)
	if errors.Is(err, errLeaseUnsupported) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("docker: working directory %s: %w", dir, err)
	}
	if rec == nil {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, false, fmt.Errorf("docker: working directory: %w", err)
		}
		uid, gid, _, _, _ := statOwner(fi)
		rec = &leaseRecord{uid: uid, gid: gid, mode: fi.Mode(), grant: -1}
	}
	// A record whose runs are all gone (their process died) keeps the
	// directory's own owner and mode: the next last run puts them back.
	rec.holders = liveHolders(rec.holders)
	if len(rec.holders) == 0 {
		rec.grant = -1
	}
	given := false
	if wantUID >= 0 {
		switch rec.grant {
		case wantUID:
			given = true
		case -1:
			if err := os.Chown(dir, wantUID, wantGID); err != nil {
				return nil, false, fmt.Errorf("docker: give the working directory to the container's user: %w", err)
			}
			rec.grant, given = wantUID, true
		default:
			return nil, false, &runner.FieldError{Field: "workingDir", Value: dir,
				Problem: fmt.Sprintf("is in use by another MOUNT run whose user has uid %d; runs that share a working directory under MOUNT must run as the same user", rec.grant),
				Err:     runner.ErrInvalidTask}
		}
	}
	field := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	holder := strings.Join([]string{field(owner[LabelOwnerHost]), field(owner[LabelOwnerPID]), field(owner[LabelOwnerBoot]), runID}, " ")
	rec.holders = append(rec.holders, holder)
	if err := writeLease(dir, rec); err != nil {
		if given && len(rec.holders) == 1 {
			_ = os.Chown(dir, rec.uid, rec.gid)
		}
		return nil, false, fmt.Errorf("docker: working directory %s: record the run using it: %w", dir, err)
	}
	return &lease{holder: holder}, given, nil
}

// releaseLease takes the run's entry (l, nil for none) out of dir's record
// and reports whether no run uses dir any more. Then it has given dir its
// own owner and mode back and removed the record, and unlock, to call once
// the hygiene walk is done, keeps other runs from starting meanwhile.
func releaseLease(ctx context.Context, dir string, l *lease) (last bool, unlock func(), err error) {
	noop := func() {}
	if os.Geteuid() != 0 {
		return true, noop, nil
	}
	unlock, err = lockDir(ctx, dir)
	if err != nil {
		return false, noop, fmt.Errorf("docker: working directory: %w", err)
	}
	rec, err := readLease(dir)
	if errors.Is(err, errLeaseUnsupported) || (err == nil && rec == nil) {
		return true, unlock, nil
	}
	if err != nil {
		return false, unlock, fmt.Errorf("docker: working directory %s: %w", dir, err)
	}
	holders := rec.holders[:0]
	for _, h := range rec.holders {
		if l == nil || h != l.holder {
			holders = append(holders, h)
		}
	}
	rec.holders = liveHolders(holders)
	if len(rec.holders) > 0 {
		if err := writeLease(dir, rec); err != nil {
			return false, unlock, fmt.Errorf("docker: working directory %s: record the runs using it: %w", dir, err)
		}
		return false, unlock, nil
	}
	var errs []error
	fi, err := os.Stat(dir)
	if err != nil {
		return true, unlock, fmt.Errorf("docker: working directory: %w", err)
	}
	if uid, gid, _, _, _ := statOwner(fi); uid != rec.uid || gid != rec.gid {
		errs = append(errs, os.Chown(dir, rec.uid, rec.gid))
	}
	if fi.Mode() != rec.mode {
		errs = append(errs, os.Chmod(dir, rec.mode))
	}
	if err := syscall.Removexattr(dir, leaseAttr); err != nil && !errors.Is(err, syscall.ENODATA) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return true, unlock, fmt.Errorf("docker: give the working directory %s back: %w", dir, err)
	}
	return true, unlock, nil
}
