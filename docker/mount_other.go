//go:build !linux

package docker

import (
	"context"
	"io/fs"
)

// statOwner reports no owner: the owner-based handling of MOUNT is for
// Linux hosts; elsewhere lading opens what it made for the run instead.
func statOwner(fs.FileInfo) (uid, gid int, dev, ino uint64, ok bool) { return -1, -1, 0, 0, false }

type lease struct{}

// acquireLease keeps no record of the runs using a directory off Linux.
func acquireLease(context.Context, string, string, map[string]string, int, int) (*lease, bool, error) {
	return nil, false, nil
}

// releaseLease: each run handles the directory as the only one using it.
func releaseLease(context.Context, string, *lease) (bool, func(), error) {
	return true, func() {}, nil
}
