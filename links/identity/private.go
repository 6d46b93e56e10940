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
	o := ownerOf(fi)
	forbidden, what, chmod := fs.FileMode(0o077), "group or others may read or write it", "go-rwx"
	switch {
	case fi.IsDir():
		forbidden, what, chmod = 0o022, "group or others may write to it", "go-w"
	case o.known && o.uid == 0 && o.me != 0:
		forbidden, what = 0o037, "group may write it or others may read or write it"
	}
	return o.check(path, fi, "replace it", forbidden, what, chmod)
}

// CheckUnwritable refuses a file holding no secret that decides what this
// process does (an authorization policy) and that another user could
// change: its owner must be this process's effective user or root, and
// neither its group nor others may write it. Others may read it. rewrite
// names what such a user would rewrite ("the policy"), for the error.
// Where the owner is not known (not a Unix system), only the mode is
// checked.
func CheckUnwritable(path string, fi fs.FileInfo, rewrite string) error {
	return ownerOf(fi).check(path, fi, "rewrite "+rewrite, 0o022, "group or others may write it, and so rewrite "+rewrite, "go-w")
}

// owner is the user owning a file, if known, and this process's
// effective user.
type owner struct {
	uid, me uint32
	known   bool
}

// ownerOf is the owner of fi's file, and this process's effective user.
func ownerOf(fi fs.FileInfo) owner {
	uid, known := fileOwner(fi)
	return owner{uid: uid, me: uint32(os.Geteuid()), known: known}
}

// check refuses (an *UnsafeFileError) the file or directory path, of
// fi, when a user other than this one and root owns it (who then can, for
// instance, "replace it"), or when its mode has a bit of forbidden (what
// says which, and `chmod chmod path` clears them).
func (o owner) check(path string, fi fs.FileInfo, can string, forbidden fs.FileMode, what, chmod string) error {
	mode := fi.Mode().Perm()
	e := &UnsafeFileError{Path: path, UID: o.uid, Mode: mode}
	switch {
	case o.known && o.uid != o.me && o.uid != 0:
		e.Why = fmt.Sprintf("owned by another user than this one (uid %d) or root, who can %s", o.me, can)
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
	return ReadChecked(name, 0, CheckPrivate)
}

// errTooLarge: ReadChecked refused a file above its limit.
var errTooLarge = errors.New("larger than")

// ReadChecked reads the file name once check has passed the file opened
// (so the file checked is the file read). A limit above 0 refuses a file
// larger than limit bytes, before check and while reading.
func ReadChecked(name string, limit int64, check func(path string, fi fs.FileInfo) error) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if limit > 0 && fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w %d bytes", name, errTooLarge, limit)
	}
	if err := check(name, fi); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return io.ReadAll(f)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w %d bytes", name, errTooLarge, limit)
	}
	return b, nil
}

// checkPrivateDir runs CheckPrivate on the directory dir.
func checkPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	return CheckPrivate(dir, fi)
}
