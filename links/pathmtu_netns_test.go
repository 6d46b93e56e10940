//go:build linux

package links

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// pathMTUNodeEnv tells TestPathMTUNodeProcess what to run:
// "listen|DIR|ADDR" or "dial|DIR|FROM|ADDR", DIR holding its identity.
const pathMTUNodeEnv = "CIRCUITMESH_TEST_PATHMTU_NODE"

// TestPathMTUNodeProcess is not a test: it is a node of
// TestDialOverNarrowPathSaysItsMTU, run in a process of its own inside a
// network namespace. A listener prints its address and runs until stdin
// ends; a dialler dials ADDR from FROM once and prints the outcome.
func TestPathMTUNodeProcess(t *testing.T) {
	args := strings.Split(os.Getenv(pathMTUNodeEnv), "|")
	if len(args) < 3 {
		t.Skip("the helper process of TestDialOverNarrowPathSaysItsMTU")
	}
	id, err := identity.LoadDir(args[1])
	if err != nil {
		t.Fatal(err)
	}
	switch args[0] {
	case "listen":
		n := newNode(t, id, func(c *QUICConfig) { c.ListenAddr = args[2]; c.OnRefused = nil })
		fmt.Printf("addr %s\n", n.LocalAddr())
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "dial":
		n := newNode(t, id, func(c *QUICConfig) {
			c.ListenAddr = args[2]
			c.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		if _, err := n.Dial(ctx, args[3]); err != nil {
			fmt.Printf("dial failed (ErrPathMTU %t): %v\n", errors.Is(err, ErrPathMTU), err)
			return
		}
		fmt.Println("dial linked")
	}
}

// TestDialOverNarrowPathSaysItsMTU: a router between two nodes forwards
// towards the listener over a hop of MTU 1,100 bytes (a tunnel, a
// misconfigured VPN), below the 1,228 a QUIC datagram of 1,200 bytes
// needs over IPv4. The dialler's datagrams never arrive; the router says
// why in an ICMP "fragmentation needed", which quic-go does not read.
// The dial failed after HandshakeTimeout with "timeout: no recent network
// activity", as to an address where nothing listens, and the operator
// had no hint of the MTU. The dial must fail saying the path's MTU. The
// nodes run in processes of their own in network namespaces (a, r, b);
// over the same path at MTU 1,500 the dial links. Needs root and
// network namespaces; it says so and skips without them.
func TestDialOverNarrowPathSaysItsMTU(t *testing.T) {
	if testing.Short() {
		t.Skip("NOT RUN: three network namespaces and two node processes, a dial waits out HandshakeTimeout (5 s); run without -short, as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("NOT RUN: needs root (network namespaces and veth pairs)")
	}
	prefix := fmt.Sprintf("mtu%d", os.Getpid()%100000)
	ns := func(n string) string { return prefix + n }
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", ns("a")).CombinedOutput(); err != nil {
		t.Skipf("NOT RUN: cannot create network namespaces here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		for _, n := range []string{"a", "r", "b"} {
			_ = exec.Command("ip", "netns", "del", ns(n)).Run()
		}
	})
	ip("netns", "add", ns("r"))
	ip("netns", "add", ns("b"))
	// a (10.98.1.1) — r — b (10.98.2.1); r's hop towards a is the narrow one.
	ip("link", "add", prefix+"a", "netns", ns("a"), "type", "veth", "peer", "name", prefix+"ra", "netns", ns("r"))
	ip("link", "add", prefix+"b", "netns", ns("b"), "type", "veth", "peer", "name", prefix+"rb", "netns", ns("r"))
	for _, c := range [][]string{
		{ns("a"), "addr", "add", "10.98.1.1/24", "dev", prefix + "a"},
		{ns("r"), "addr", "add", "10.98.1.254/24", "dev", prefix + "ra"},
		{ns("b"), "addr", "add", "10.98.2.1/24", "dev", prefix + "b"},
		{ns("r"), "addr", "add", "10.98.2.254/24", "dev", prefix + "rb"},
		{ns("a"), "link", "set", prefix + "a", "up"},
		{ns("r"), "link", "set", prefix + "ra", "up"},
		{ns("b"), "link", "set", prefix + "b", "up"},
		{ns("r"), "link", "set", prefix + "rb", "up"},
		{ns("a"), "route", "add", "default", "via", "10.98.1.254"},
		{ns("b"), "route", "add", "default", "via", "10.98.2.254"},
	} {
		ip(append([]string{"-n"}, c...)...)
	}
	ip("netns", "exec", ns("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1")

	ca := testCA(t, "m")
	dirA, dirB := t.TempDir(), t.TempDir()
	for dir, name := range map[string]string{dirA: "a", dirB: "b"} {
		if err := identity.SaveIdentity(dir, issue(t, ca, name), false); err != nil {
			t.Fatal(err)
		}
	}
	node := func(netns, spec string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", netns, os.Args[0], "-test.run=^TestPathMTUNodeProcess$", "-test.v")
		cmd.Env = append(os.Environ(), pathMTUNodeEnv+"="+spec)
		return cmd
	}
	listener := node(ns("a"), "listen|"+dirA+"|10.98.1.1:0")
	stdin, err := listener.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := listener.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr logBuf
	listener.Stderr = &stderr
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = listener.Wait()
	}()
	var addr string
	for sc := bufio.NewScanner(stdout); addr == "" && sc.Scan(); {
		if rest, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
			addr = rest
		}
	}
	if addr == "" {
		t.Fatalf("the listener's process printed no address: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	// dial returns the dialler's outcome and its log.
	dial := func() (outcome, log string) {
		t.Helper()
		out, err := node(ns("b"), "dial|"+dirB+"|10.98.2.1:0|"+addr).CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "dial ") {
				return line, string(out)
			}
		}
		t.Fatalf("the dialler's process printed no outcome: %v\n%s", err, out)
		return "", ""
	}

	if got, _ := dial(); got != "dial linked" {
		t.Fatalf("over the path at MTU 1500: %s, want it linked", got)
	}
	ip("-n", ns("r"), "link", "set", prefix+"ra", "mtu", "1100")
	began := time.Now()
	got, log := dial()
	t.Logf("over the path at MTU 1100, after %v: %s", time.Since(began).Round(time.Millisecond), got)
	if !strings.Contains(got, "(ErrPathMTU true)") || !strings.Contains(got, "MTU towards 10.98.1.1 is 1100 bytes") {
		t.Errorf("over a path of MTU 1100: %s; want the dial's error to say the path's MTU", got)
	}
	if !strings.Contains(log, `level=WARN msg="link dial crossed a path too narrow for QUIC"`) {
		t.Errorf("over a path of MTU 1100, the dialler logged no warning of it:\n%s", log)
	}
}
