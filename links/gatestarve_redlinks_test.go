package links

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/cpuquota"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestStarvedNodeLinksHonestPeerDuringFlood runs the handshake gate on a
// process starved of CPU for real (20 ms of CPU per 100 ms, beside a
// goroutine that computes without pause: about a tenth of what the
// process would take) while strangers flood it: silent handshakes with a
// certificate of another CA from one address, more than the node has
// slots, and handshakes that fail at once from 8 other prefixes. A node
// of the mesh at another address, with the default configuration (starved
// too: it shares the process), must still link every time within a
// dialer's retries, and the gate must never count one of its handshakes
// as failed (which would bar its prefix from the reserve for failQuiet):
// slow is not failed. Needs root and the cgroup v1 cpu controller; it
// says so and skips without them.
func TestStarvedNodeLinksHonestPeerDuringFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: link setups under a CPU quota during a handshake flood (make test-long)")
	}
	spinUnder(t, 20*time.Millisecond)
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) { c.OnRefused = nil })
	udp, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn = udp })

	floods := startStrangerFloods(t, a.LocalAddr(), 8)

	const rounds = 6
	began := time.Now()
	// A dialer's retries: three tries, 200 ms apart (each may take
	// 2 × HandshakeTimeout).
	ok := linkSetups(t, b, a, rounds, 3)
	took := time.Since(began)
	st := a.HandshakeStats()
	lastFail := a.gate.failedAt(udp.LocalAddr())
	floods.stop()
	t.Logf("honest link setups under the quota during the floods: %d/%d in %v; %v; node: %+v",
		ok, rounds, took.Round(time.Millisecond), floods, st)
	if ok != rounds {
		t.Fatalf("a starved node linked %d of %d honest setups during the floods, want every one", ok, rounds)
	}
	if !lastFail.IsZero() {
		t.Fatalf("the gate counted a handshake of the honest node's prefix as failed (at %v, %v after the setups began)",
			lastFail.Format(time.RFC3339Nano), lastFail.Sub(began).Round(time.Millisecond))
	}
}

// starvedNodeEnv names the directory of the identity the helper process
// of TestStarvedProcessLinksUnstarvedPeerDuringFlood runs a node with.
const starvedNodeEnv = "CIRCUITMESH_TEST_STARVED_NODE"

// TestStarvedNodeProcess is not a test: it is the starved node of
// TestStarvedProcessLinksUnstarvedPeerDuringFlood, run in a process of
// its own. It starts a node with the identity in $starvedNodeEnv under a
// CPU quota, prints its address, and for each address read on stdin
// prints whether the gate counted a handshake of its prefix as failed,
// until stdin ends.
func TestStarvedNodeProcess(t *testing.T) {
	dir := os.Getenv(starvedNodeEnv)
	if dir == "" {
		t.Skip("the helper process of TestStarvedProcessLinksUnstarvedPeerDuringFlood")
	}
	id, err := identity.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	spinUnder(t, 20*time.Millisecond)
	a := newNode(t, id, func(c *QUICConfig) { c.OnRefused = nil; c.ListenAddr = "127.0.0.1:0" })
	fmt.Printf("addr %s\n", a.LocalAddr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("failed %t %+v\n", !a.gate.failedAt(net.UDPAddrFromAddrPort(ap)).IsZero(), a.HandshakeStats())
	}
}

// TestStarvedProcessLinksUnstarvedPeerDuringFlood: the node under test
// runs in a process of its own starved of CPU (20 ms per 100 ms beside a
// goroutine that computes without pause), while strangers that are not
// starved (this process) flood it: silent handshakes with a certificate
// of another CA from one address, as many as the node has slots, and
// handshakes that fail at once from 16 other prefixes. A node of the mesh
// at another address, not starved, with the default configuration, must
// link every time within a dialer's retries, and the starved node's gate
// must never count one of its handshakes as failed: a handshake slow
// because the node is, is not a failed one. Needs root and the cgroup v1
// cpu controller (the helper process skips without them, and so does
// this test).
func TestStarvedProcessLinksUnstarvedPeerDuringFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: link setups to a node under a CPU quota during a handshake flood (make test-long)")
	}
	ca := testCA(t, "m")
	dir := t.TempDir()
	if err := identity.SaveIdentity(dir, issue(t, ca, "a"), false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStarvedNodeProcess$", "-test.v")
	cmd.Env = append(os.Environ(), starvedNodeEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr logBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewScanner(stdout)
	var transcript []string
	next := func(prefix string) string {
		t.Helper()
		for out.Scan() {
			line := out.Text()
			transcript = append(transcript, line)
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return rest
			}
		}
		_ = stdin.Close()
		_ = cmd.Wait()
		if s := strings.Join(transcript, "\n"); strings.Contains(s, "SKIP") {
			t.Skipf("the starved node's process skipped:\n%s", s)
		}
		t.Fatalf("the starved node's process ended before %q:\n%s\n%s", prefix, strings.Join(transcript, "\n"), stderr.String())
		return ""
	}
	defer func() {
		_ = stdin.Close()
		for out.Scan() {
			transcript = append(transcript, out.Text())
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("the starved node's process: %v\n%s\n%s", err, strings.Join(transcript, "\n"), stderr.String())
		}
	}()
	target, err := net.ResolveUDPAddr("udp", next("addr "))
	if err != nil {
		t.Fatal(err)
	}

	udp, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn = udp })
	floods := startStrangerFloods(t, target, 16)

	const rounds, tries = 6, 3
	began := time.Now()
	ok := linkSetupsTo(t, b, target.String(), rounds, tries, func() bool { return len(b.Links()) == 0 })
	took := time.Since(began)
	fmt.Fprintln(stdin, udp.LocalAddr().String())
	verdict := next("failed ")
	floods.stop()
	t.Logf("honest link setups to the starved node during the floods: %d/%d in %v; %v; starved node: failed %s",
		ok, rounds, took.Round(time.Millisecond), floods, verdict)
	if ok != rounds {
		t.Fatalf("%d of %d honest setups to a starved node linked during the floods, want every one", ok, rounds)
	}
	if strings.HasPrefix(verdict, "true") {
		t.Fatalf("the starved node's gate counted a handshake of the honest node's prefix as failed: %s", verdict)
	}
}

// strangerFloods are the two floods of the starvation tests: silent
// handshakes with a certificate of another CA from 127.0.0.2, as many as
// the node has slots, and handshakes that fail at once from prefixes
// other addresses (127.0.2.x).
type strangerFloods struct {
	silent  *handshakeFlood
	failing *failingHandshakes
}

func startStrangerFloods(t *testing.T, target net.Addr, prefixes int) *strangerFloods {
	t.Helper()
	stranger := issue(t, testCA(t, "m"), "x")
	ips := make([]string, prefixes)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.2.%d", i+1)
	}
	f := &strangerFloods{
		silent:  startHandshakeFlood(t, target, "127.0.0.2", maxPendingHandshakes, stranger),
		failing: startFailingHandshakes(t, target, ips, stranger),
	}
	waitFor(t, "the floods to make as many attempts as the node has slots", patience, func() bool {
		return f.silent.complete.Load()+f.silent.refused.Load()+f.failing.complete.Load()+f.failing.refused.Load() >= maxPendingHandshakes
	})
	return f
}

func (f *strangerFloods) stop() {
	f.silent.stop()
	f.failing.stop()
}

func (f *strangerFloods) String() string {
	return fmt.Sprintf("silent flood: %d completed TLS, %d refused; failing flood: %d completed, %d refused",
		f.silent.complete.Load(), f.silent.refused.Load(), f.failing.complete.Load(), f.failing.refused.Load())
}

// spinUnder puts this process under a CPU quota of quota per 100 ms
// beside a goroutine that computes without pause, which it ends when the
// test does.
func spinUnder(t *testing.T, quota time.Duration) {
	cpuquota.Under(t, quota, 100*time.Millisecond)
	var stop atomic.Bool
	var spin sync.WaitGroup
	spin.Go(func() {
		for x := 0; !stop.Load(); x++ {
		}
	})
	t.Cleanup(func() {
		stop.Store(true)
		spin.Wait()
	})
}

// TestStarvedNodeDoesNotBarHonestPeerThatTimedOut: a node starved of CPU
// (4 ms per 100 ms beside a goroutine that computes without pause) while
// strangers flood it (handshakes with a certificate of another CA, silent
// from one address and failing at once from 16 other prefixes, which keep
// the node's rate spent: only the reserve admits) admits a handshake of
// an honest node of the mesh and cannot finish it in time: it times out
// before TLS completed, the node itself too slow. The gate must not count
// it as failed, which bars the honest node's prefix from the reserve for
// failQuiet as a stranger's is; and once the node has CPU again (the
// failing flood going on) the honest node must link. The node's handshake
// timeout is 1 s, so that a handshake it admits under the quota times
// out; the honest node dials until one did (at most 2 minutes, else the
// test skips, saying so). Needs root and the cgroup v1 cpu controller.
func TestStarvedNodeDoesNotBarHonestPeerThatTimedOut(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: link setups under a CPU quota of 4 ms per 100 ms during a handshake flood (make test-long)")
	}
	const timeout = time.Second
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.OnRefused, c.HandshakeTimeout, c.testHandshakeRate = nil, timeout, 4
	})
	udp, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn, c.HandshakeTimeout = udp, timeout })
	stranger := issue(t, testCA(t, "m"), "x")
	ips := make([]string, 16)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.2.%d", i+1)
	}
	failing := startFailingHandshakes(t, a.LocalAddr(), ips, stranger)
	defer failing.stop()

	var timedOut time.Time // when the node ended the honest handshake that timed out
	tries := 0
	t.Run("starved", func(t *testing.T) {
		spinUnder(t, 4*time.Millisecond)
		silent := startHandshakeFlood(t, a.LocalAddr(), "127.0.0.2", maxPendingHandshakes, stranger)
		defer silent.stop()
		for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); {
			tries++
			admitted, err := dialWatched(b, a, udp.LocalAddr())
			if !admitted || err == nil || errors.Is(err, ErrHandshakeSlow) {
				continue // not admitted, linked, or past TLS (then proven)
			}
			// b never completed QUIC's handshake, so the node's TLS
			// never completed: its handshake ends unproven.
			waitFor(t, "the node to end the honest handshake", patience, func() bool { return a.handshakesFrom(udp.LocalAddr()) == 0 })
			timedOut = time.Now()
			t.Logf("try %d: the node admitted the honest handshake and it timed out: %v", tries, err)
			if lf := a.gate.failedAt(udp.LocalAddr()); !lf.IsZero() {
				t.Fatalf("the gate counted the honest node's handshake, which timed out while the node was starved, as failed (%v before the test saw it end): its prefix is barred from the reserve for %v",
					timedOut.Sub(lf).Round(time.Millisecond), failQuiet)
			}
			return
		}
	})
	if t.Failed() {
		return
	}
	if timedOut.IsZero() {
		t.Skipf("no honest handshake the starved node admitted timed out in %d tries", tries)
	}
	// The node has CPU again. A first contact: a first packet of the
	// honest node's the node read late, admitted after its dialer gave up,
	// bars its prefix as a stranger's (TestHandshakeFloodFromManyPrefixes).
	if ok := linkSetups(t, b, a, 1, int((3*time.Second+failQuiet)/(200*time.Millisecond))); ok != 1 {
		t.Fatalf("the honest node did not link once the node had CPU: %+v", a.HandshakeStats())
	}
}

// dialWatched dials to from from, whose address is fromAddr, and says
// whether to's gate held a handshake slot of fromAddr's prefix meanwhile;
// a link that came up is closed.
func dialWatched(from, to *node, fromAddr net.Addr) (admitted bool, err error) {
	var held atomic.Bool
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			if to.handshakesFrom(fromAddr) > 0 {
				held.Store(true)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	l, err := from.Dial(context.Background(), to.LocalAddr().String())
	close(stop)
	watch.Wait()
	if err == nil {
		_ = l.Close("again")
		<-l.Done()
	}
	return held.Load(), err
}

// failedAt is when a handshake of addr's prefix last counted as failed
// (zero: never, or the gate forgot the prefix).
func (g *gate) failedAt(addr net.Addr) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ps := g.prefixes[SourcePrefix(addr)]; ps != nil {
		return ps.lastFail
	}
	return time.Time{}
}
