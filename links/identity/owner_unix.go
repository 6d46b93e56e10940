//go:build unix

package identity

import (
	"io/fs"
	"syscall"
)

// fileOwner is the user id owning fi's file.
func fileOwner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
