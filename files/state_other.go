//go:build !linux

package files

import "io/fs"

// fileState is what tells one version of a file from another.
type fileState struct {
	size  int64
	mtime int64 // nanoseconds
	mode  fs.FileMode
}

func stateOf(fi fs.FileInfo) fileState {
	return fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}
