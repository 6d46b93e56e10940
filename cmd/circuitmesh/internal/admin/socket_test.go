package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestAdminSocketIsPrivateAndLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	ln, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want a 0600 socket", fi.Mode(), err)
	}
	ln.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left behind after Close: %v", entries)
	}
}

// TestAdminSocketRefusesOtherUsers connects as the unprivileged user nobody
// to a socket whose mode was opened up (as a careless chmod would): the
// daemon still refuses the connection by the peer's credentials.
func TestAdminSocketRefusesOtherUsers(t *testing.T) {
	if os.Getenv("ADMIN_SOCKET_CLIENT") != "" {
		err := NewClient(os.Getenv("ADMIN_SOCKET_CLIENT")).Get(context.Background(), PathStatus, nil, nil)
		if err == nil {
			os.Exit(0)
		}
		os.Stderr.WriteString(err.Error())
		os.Exit(3)
	}
	if os.Geteuid() != 0 {
		t.Skip("CANNOT RUN: needs root to run a client as another user")
	}
	c, path := startServer(t, newFake())
	if err := c.Get(context.Background(), PathStatus, nil, nil); err != nil {
		t.Fatalf("the daemon's own user: %v", err)
	}
	// Open the way for nobody to the socket.
	os.Chmod(path, 0o666)
	out, err := asNobody(t, filepath.Dir(path), "TestAdminSocketRefusesOtherUsers", "ADMIN_SOCKET_CLIENT="+path).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("client as nobody: %v, output %q; want it refused", err, out)
	}
	if strings.Contains(string(out), "permission denied") {
		t.Fatalf("refused by the file mode, not by credentials: %s", out)
	}
	// The daemon's own user still gets in.
	if err := c.Get(context.Background(), PathStatus, nil, nil); err != nil {
		t.Fatalf("after the refusal: %v", err)
	}
}

// TestAdminSocketLeavesOtherFilesAlone: --admin pointed at a file that is
// not a socket (node.key, a directory, a symbolic link to a file) is
// refused and the file kept; before, the daemon deleted whatever was
// there, taking it for a stale socket. A stale socket is still replaced.
func TestAdminSocketLeavesOtherFilesAlone(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "node.key")
	if err := os.WriteFile(key, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(key, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{key, link, sub} {
		ln, err := Listen(p, nil)
		if err == nil {
			ln.Close()
			t.Fatalf("Listen(%s) took it for a stale socket", p)
		}
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("Listen(%s): %v; want a conflict naming it as not a socket", p, err)
		}
	}
	if b, err := os.ReadFile(key); err != nil || string(b) != "secret" {
		t.Fatalf("node.key after the refusals: %q %v", b, err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("symbolic link removed: %v", err)
	}
	if _, err := os.Stat(sub); err != nil {
		t.Fatalf("directory removed: %v", err)
	}

	// A socket left behind by a daemon that died is replaced.
	stale := filepath.Join(dir, "admin.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	ln, err := Listen(stale, nil)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()
}

// TestClientRefusesASocketOfAnotherUser: another user (nobody) makes the
// admin socket path first and serves it, as if it were the daemon. The
// CLI's client must not send it a request (here the gossip key of `keys
// install`): it checks the listener's user (SO_PEERCRED) and refuses,
// naming that uid. Before, it sent the key and took the answer.
func TestClientRefusesASocketOfAnotherUser(t *testing.T) {
	if path := os.Getenv("ADMIN_SOCKET_SERVE"); path != "" {
		ln, err := net.Listen("unix", path)
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		os.Chmod(path, 0o666)
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Printf("received %s %s %s\n", r.Method, r.URL.Path, body)
			w.Write([]byte("{}"))
		}))
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("CANNOT RUN: needs root to serve the socket as another user")
	}
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shared, "admin.sock")
	stop := serveAsNobody(t, shared, path, func() { os.Chmod(shared, 0o1777) }) // like /tmp
	key := "MDEyMzQ1Njc4OWFiY2RlZg=="
	err := NewClient(path).Post(context.Background(), PathKeys, KeyOp{Op: "install", Key: key}, nil)
	if !errors.Is(err, ErrUntrustedSocket) || !strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), path) {
		t.Fatalf("keys install through a socket nobody serves: %v; want it refused, naming the socket and uid 65534", err)
	}
	if out := stop(); strings.Contains(out, "received") {
		t.Fatalf("nobody's server received: %s", out)
	}
}

// serveAsNobody runs, as nobody, a server on the socket at path that
// prints each request it receives, and waits until it listens; before
// runs once nobody can reach binDir, before the server starts. stop ends
// it and returns what it printed.
func serveAsNobody(t *testing.T, binDir, path string, before func()) (stop func() string) {
	t.Helper()
	var out bytes.Buffer
	cmd := asNobody(t, binDir, "TestClientRefusesASocketOfAnotherUser", "ADMIN_SOCKET_SERVE="+path)
	before()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return out.String()
	}
	t.Cleanup(func() { stop() })
	// Until the server listens (the socket file exists from its bind
	// on), a connection is refused, which the client takes for a socket
	// left over from a stopped daemon.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody's server did not start: %s", stop())
		}
	}
}

// TestClientTrustsTheDaemonOfItsDirectory: a systemd unit runs the daemon
// as a dynamic user in a state directory of its own (behind root's link
// /var/lib/circuitmesh), and root runs the CLI against it. The client
// takes a socket served by another user than root and itself when that
// user owns the socket's directory and no one else can change it or a
// directory above it, as named and as the links lead: only that user or
// root can have made the socket. Before, root's status, peers and reload
// were refused there. A directory of that user in a directory anyone may
// write to (the sticky /tmp) is still refused, named directly, through a
// link that user made in a shared directory (named, or met behind root's
// link), or relative to a working directory inside it.
func TestClientTrustsTheDaemonOfItsDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("CANNOT RUN: needs root to serve the socket as another user")
	}
	// Each case names the socket in own (parent/state, nobody's, mode
	// 0700) from base, parent given the mode.
	for _, tc := range []struct {
		name    string
		parent  os.FileMode
		path    func(t *testing.T, base, own string) string
		trusted bool
	}{
		{"state directory under root's", 0o755, direct, true},
		{"through root's link", 0o755, func(t *testing.T, base, own string) string {
			link := filepath.Join(base, "link")
			mustSymlink(t, filepath.Dir(own), link, 0)
			return filepath.Join(link, filepath.Base(own), "admin.sock")
		}, true},
		{"own directory under a sticky shared one", 0o1777, direct, false},
		{"its link in a sticky shared directory", 0o755, func(t *testing.T, base, own string) string {
			return filepath.Join(nobodysLinkInShared(t, base, own), "admin.sock")
		}, false},
		{"root's link to its link in a sticky shared directory", 0o755, func(t *testing.T, base, own string) string {
			link := filepath.Join(base, "rootlink")
			mustSymlink(t, nobodysLinkInShared(t, base, own), link, 0)
			return filepath.Join(link, "admin.sock")
		}, false},
		{"relative, from inside a sticky shared one", 0o1777, func(t *testing.T, base, own string) string {
			t.Chdir(own)
			return "admin.sock"
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			parent := filepath.Join(base, "parent")
			own := filepath.Join(parent, "state")
			if err := os.MkdirAll(own, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(own, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(parent, 0o755); err != nil { // nobody reaches its directory
				t.Fatal(err)
			}
			stop := serveAsNobody(t, base, filepath.Join(own, "admin.sock"), func() {})
			if err := os.Chmod(parent, tc.parent); err != nil {
				t.Fatal(err)
			}
			path := tc.path(t, base, own)
			err := NewClient(path).Get(context.Background(), PathStatus, nil, &struct{}{})
			out := stop()
			if tc.trusted {
				if err != nil || !strings.Contains(out, "received GET "+PathStatus) {
					t.Fatalf("status through %s, the socket of the owner of its directory: %v (server saw %q); want it sent", path, err, out)
				}
				return
			}
			if !errors.Is(err, ErrUntrustedSocket) || strings.Contains(out, "received") {
				t.Fatalf("status through %s, nobody's socket: %v (server saw %q); want it refused", path, err, out)
			}
		})
	}
}

// direct names the socket in own by its path.
func direct(_ *testing.T, _, own string) string { return filepath.Join(own, "admin.sock") }

// nobodysLinkInShared makes base/shared, a sticky directory anyone may
// write to, holding nobody's link to own, and returns the link.
func nobodysLinkInShared(t *testing.T, base, own string) string {
	t.Helper()
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(shared, "cm")
	mustSymlink(t, own, link, 65534)
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	return link
}

// mustSymlink makes link point at target, owned by uid.
func mustSymlink(t *testing.T, target, link string, uid int) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// asNobody returns a command that runs the test named test of this test
// binary as the user nobody (uid 65534), with env added: from a copy in
// dir, which it and the directories above it let nobody reach.
func asNobody(t *testing.T, dir, test string, env ...string) *exec.Cmd {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	bin := filepath.Join(dir, "nobody.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}
