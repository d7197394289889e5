//go:build unix

package files

import (
	"io/fs"
	"syscall"
)

// fileUID returns the owner of the file fi describes, where the platform
// says.
func fileUID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
