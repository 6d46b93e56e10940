package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestE2EDialExitsOneWithTheReason: `circuitmesh dial` exits 0 only for a
// circuit that ended cleanly; a refusal, or a service down behind the far
// node, exits 1 with the reason on stderr.
func TestE2EDialExitsOneWithTheReason(t *testing.T) {
	l := newLab(t, "e2e")
	b := l.start("b", "", "--expose", "dead="+freeTCP(t))
	a := l.start("a", "", "--link", b.addr)
	a.waitRoute(t, "b", anyRoute)

	if out, err := l.try("dial", "b", "echo", "--data-dir", a.dir); err != nil {
		t.Fatalf("dial b echo with empty stdin: %v\n%s", err, out)
	}
	for service, want := range map[string]string{
		"dead":    "circuit to b/dead: circuit reset by the path: service unavailable (code 6)",
		"nothing": "no such service",
	} {
		out, err := l.try("dial", "b", service, "--data-dir", a.dir)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, want) {
			t.Errorf("dial b %s: %v, want exit status 1 saying %q\n%s", service, err, want, out)
		}
	}
}

// pausedGet sends GET / to the TCP address addr, reads the response head
// and the first MiB of the body, and returns a function that reads the
// rest and reports the body's size and hash.
func pausedGet(t *testing.T, addr string) func() (int64, [32]byte, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET through %s: %v", addr, err)
	}
	h := sha256.New()
	first, err := io.CopyN(h, resp.Body, 1<<20)
	if err != nil {
		t.Fatalf("first MiB through %s: %v", addr, err)
	}
	return func() (int64, [32]byte, error) {
		n, err := io.Copy(h, resp.Body)
		conn.Close() // done: the circuit ends both ways
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		return first + n, sum, err
	}
}

// TestE2EDrainOnSIGTERM sends SIGTERM to the relay a 64 MiB download
// crosses, mid-transfer: the relay says it is draining, a routes new
// circuits around it while it is still up, and the download, as well as
// one through the relay's own --forward, completes intact before the
// relay exits.
func TestE2EDrainOnSIGTERM(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 8 << 20
	}
	l := newLab(t, "e2e")
	web, wantSum := bodyServer(t, size)
	a, victim, other, _ := startDiamond(t, l, []string{"--expose", "web=" + web}, "--drain-timeout", "2m")
	fwd, own := a.forward(t, "d/web"), victim.forward(t, "d/web")

	through := pausedGet(t, fwd) // crosses the victim
	local := pausedGet(t, own)   // the victim's own tunnel
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, victim.name+" to report draining", func() bool {
		out, err := l.try("status", "--data-dir", victim.dir)
		return err == nil && strings.Contains(out, "draining")
	})
	a.waitRoute(t, "d", func(p node.PeerInfo) bool { return p.NextHop == other.name })
	if sum, _, err := fetch("http://"+fwd+"/", time.Minute); err != nil || sum != wantSum {
		t.Fatalf("new download while %s drains: %v", victim.name, err)
	}
	select {
	case <-victim.exited:
		t.Fatalf("%s exited before its circuits finished", victim.name)
	default:
	}
	for name, rest := range map[string]func() (int64, [32]byte, error){"through the relay": through, "through its own forward": local} {
		n, sum, err := rest()
		if err != nil || n != int64(size) || sum != wantSum {
			t.Fatalf("download %s: %d of %d bytes, intact %v, err %v", name, n, size, sum == wantSum, err)
		}
	}
	select {
	case <-victim.exited:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit after its circuits finished", victim.name)
	}
	if !victim.cmd.ProcessState.Success() {
		t.Fatalf("%s exited with %v", victim.name, victim.cmd.ProcessState)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
