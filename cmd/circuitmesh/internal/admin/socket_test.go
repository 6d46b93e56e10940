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
	var out bytes.Buffer
	cmd := asNobody(t, shared, "TestClientRefusesASocketOfAnotherUser", "ADMIN_SOCKET_SERVE="+path)
	os.Chmod(shared, 0o1777) // like /tmp
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// Until the server listens (the socket file exists from its bind
	// on), a connection is refused, which the client takes for a socket
	// left over from a stopped daemon.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("nobody's server did not start: %s", out.String())
		}
	}
	key := "MDEyMzQ1Njc4OWFiY2RlZg=="
	err := NewClient(path).Post(context.Background(), PathKeys, KeyOp{Op: "install", Key: key}, nil)
	if !errors.Is(err, ErrUntrustedSocket) || !strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), path) {
		t.Fatalf("keys install through a socket nobody serves: %v; want it refused, naming the socket and uid 65534", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if strings.Contains(out.String(), "received") {
		t.Fatalf("nobody's server received: %s", out.String())
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
