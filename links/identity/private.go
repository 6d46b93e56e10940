package identity

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrUnsafeFile: a private key, a file holding another secret, or the
// directory of a CA could be read or changed by a user other than this
// process's own user and root. CheckPrivate returns it wrapped in an
// *UnsafeFileError.
var ErrUnsafeFile = errors.New("unsafe owner or mode")

// UnsafeFileError names a file or directory that CheckPrivate refused,
// with its owner and mode and what to do about it.
type UnsafeFileError struct {
	Path string
	UID  uint32 // owner
	Mode fs.FileMode
	Why  string // what is wrong
	Fix  string // what to run or do
}

func (e *UnsafeFileError) Error() string {
	return fmt.Sprintf("refusing %s (owner uid %d, mode %04o): %s; %s", e.Path, e.UID, e.Mode.Perm(), e.Why, e.Fix)
}

// Unwrap returns ErrUnsafeFile.
func (e *UnsafeFileError) Unwrap() error { return ErrUnsafeFile }

// CheckPrivate refuses, as ssh does for a private key, a file holding a
// secret (or a CA's directory, when fi is a directory) that another user
// could read or change:
//   - its owner must be this process's effective user or root (a file or
//     directory of another user is theirs to replace, even for root);
//   - a directory must not be writable by group or others;
//   - a file must be neither readable nor writable by group or others,
//     except that a file root owns may be readable by its group when this
//     process is not root (root chose whom to give the key to: that is how
//     Kubernetes' fsGroup hands a Secret to a container's user).
//
// Where the owner is not known (not a Unix system), only the mode is
// checked.
func CheckPrivate(path string, fi fs.FileInfo) error {
	uid, known := fileOwner(fi)
	me := uint32(os.Geteuid())
	mode := fi.Mode().Perm()
	e := &UnsafeFileError{Path: path, UID: uid, Mode: mode}
	forbidden, what, chmod := fs.FileMode(0o077), "group or others may read or write it", "go-rwx"
	switch {
	case fi.IsDir():
		forbidden, what, chmod = 0o022, "group or others may write to it", "go-w"
	case known && uid == 0 && me != 0:
		forbidden, what = 0o037, "group may write it or others may read or write it"
	}
	switch {
	case known && uid != me && uid != 0:
		e.Why = fmt.Sprintf("owned by another user than this one (uid %d) or root, who can replace it", me)
		e.Fix = "use one this user or root owns"
	case mode&forbidden != 0:
		e.Why = what
		e.Fix = fmt.Sprintf("run `chmod %s %s`", chmod, path)
	default:
		return nil
	}
	return e
}

// ReadPrivate reads the file name holding a secret, once CheckPrivate has
// passed the file opened (so the file checked is the file read).
func ReadPrivate(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := CheckPrivate(name, fi); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// checkPrivateDir runs CheckPrivate on the directory dir.
func checkPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	return CheckPrivate(dir, fi)
}
