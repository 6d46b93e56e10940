package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Listen creates the admin socket at path: mode 0600 from the moment it
// exists (it is bound inside a private 0700 directory and renamed into
// place), and it only accepts connections whose peer process runs as root
// or as this process's user (SO_PEERCRED), whatever the file's mode later
// becomes. A stale socket left by a crashed daemon is replaced; a live one
// is an error, and so is anything else at path (a file, a directory, a
// symbolic link), which is left alone. Closing the listener removes the
// socket. Refused peers are logged on log (one line per minute at most)
// when it is not nil.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	private, err := os.MkdirTemp(filepath.Dir(path), ".admin-")
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ul.SetUnlinkOnClose(false) // the bound name moves; Close removes path
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &credListener{UnixListener: ul, path: path, uid: uint32(os.Geteuid()), log: log}, nil
}

// removeStaleSocket removes the socket at path unless a daemon listens on
// it. Whatever is there and is not a socket is refused: `--admin node.key`
// must not delete the key.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("admin socket %s: %w", path, err)
	case fi.Mode()&os.ModeSocket == 0:
		return fmt.Errorf("%w: %s exists and is not a socket (mode %s), so it is not a stale admin socket to replace: give --admin another path",
			ErrConflict, path, fi.Mode())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%w: a daemon is running with the admin socket %s (stop it, or give this one another --data-dir or --admin)", ErrConflict, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket: %w", err)
	}
	return nil
}

// credListener accepts only peers running as root or as uid.
type credListener struct {
	*net.UnixListener
	path string
	uid  uint32
	log  *slog.Logger

	mu        sync.Mutex
	refused   int       // refused since the last log line
	lastLog   time.Time // when the last refusal was logged
	closeOnce sync.Once
}

// Accept returns the next connection from an allowed user; others are
// closed at once.
func (l *credListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, ok, err := peerAllowed(c, l.uid)
		if ok {
			return c, nil
		}
		c.Close()
		l.noteRefused(uid, err)
	}
}

func (l *credListener) noteRefused(uid uint32, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	if l.log == nil || time.Since(l.lastLog) < time.Minute {
		return
	}
	l.log.Warn("admin socket refused a connection from another user", "uid", uid, "err", err,
		"refused_since_last_warning", l.refused, "socket", l.path)
	l.refused, l.lastLog = 0, time.Now()
}

// Close stops listening and removes the socket file.
func (l *credListener) Close() error {
	err := l.UnixListener.Close()
	l.closeOnce.Do(func() { os.Remove(l.path) })
	return err
}

// peerAllowed returns the user id of the process at the other end of c
// and whether it is root or me: the only users either end of the admin
// socket talks to.
func peerAllowed(c *net.UnixConn, me uint32) (uid uint32, ok bool, err error) {
	uid, err = peerUID(c)
	return uid, err == nil && (uid == 0 || uid == me), err
}

// dirOf reports whether the socket at path lies in a directory of uid
// that only uid and root can change, above which every directory only
// root (or uid) can change: then only uid or root made the socket, and
// the process of uid serving it is the daemon of that directory, as a
// systemd unit's dynamic user is of its state directory, not whoever
// made the path first. A directory others may write to (the sticky /tmp)
// is allowed above an entry root owns, which they cannot replace. The
// path as named (absolute: a relative one's directories above the
// working directory count too), each symbolic link met on the way, and
// the directories it leads to are checked: a link anyone may have made,
// or replaced, fails.
func dirOf(path string, uid uint32) bool {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return false
	}
	real, ok := resolveSafe(dir, uid)
	return ok && ownChain(dir, uid) && ownChain(real, uid)
}

// resolveSafe resolves the links of dir, an absolute path, one component
// at a time as the kernel does, and refuses a link that another user than
// root and uid owns or could have replaced (chainSafe of the directory
// holding it).
func resolveSafe(dir string, uid uint32) (string, bool) {
	rest := strings.Split(dir, "/")
	cur := "/"
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		var st syscall.Stat_t
		if syscall.Lstat(next, &st) != nil {
			return "", false
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			cur = next
			continue
		}
		if links++; links > 40 || st.Uid != 0 && st.Uid != uid || !chainSafe(cur, st.Uid, uid) {
			return "", false
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", false
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, true
}

// ownChain is dirOf's check of one chain of directories: dir is uid's
// and only uid and root can change it (Stat: the directory it leads to),
// and so are the directories above it (chainSafe), the entry below a
// shared one judged by its own owner (Lstat: a link's, not its target's).
func ownChain(dir string, uid uint32) bool {
	var st, entry syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Lstat(dir, &entry) != nil || st.Uid != uid || st.Mode&0o022 != 0 {
		return false
	}
	return filepath.Dir(dir) == dir || chainSafe(filepath.Dir(dir), entry.Uid, uid)
}

// chainSafe reports whether dir, holding an entry of the user child, and
// every directory above it are root's or uid's and changed only by their
// owner, or by others only where sticky above an entry of root's.
func chainSafe(dir string, child, uid uint32) bool {
	for {
		var st, entry syscall.Stat_t
		if syscall.Stat(dir, &st) != nil || syscall.Lstat(dir, &entry) != nil {
			return false
		}
		if st.Uid != 0 && st.Uid != uid || st.Mode&0o022 != 0 && (st.Mode&syscall.S_ISVTX == 0 || child != 0) {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir, child = parent, entry.Uid
	}
}

// peerUID is the user id of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred.Uid, nil
}
