//go:build linux

package files

import (
	"io/fs"
	"syscall"
)

// fileState is what tells one version of a file from another.
type fileState struct {
	size         int64
	mtime, ctime int64 // nanoseconds
	ino, dev     uint64
	mode         fs.FileMode
}

func stateOf(fi fs.FileInfo) fileState {
	s := fileState{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
		s.ino, s.dev = uint64(st.Ino), uint64(st.Dev)
	}
	return s
}
