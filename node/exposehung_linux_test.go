package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// tcpState is the state of c's socket (unix.BPF_TCP_*) and the bytes it
// received that were not read, as c's own end sees them, without reading.
func tcpState(t *testing.T, c *net.TCPConn) (state uint8, unread int) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); serr == nil {
			state = info.State
			unread, serr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return state, unread
}

// establishedConns counts the connections of conns still established.
func establishedConns(t *testing.T, conns []*net.TCPConn) int {
	t.Helper()
	open := 0
	for _, c := range conns {
		if state, _ := tcpState(t, c); state == unix.BPF_TCP_ESTABLISHED {
			open++
		}
	}
	return open
}

// copyLoops counts the goroutines of the process copying between a TCP
// connection and a circuit (Expose, Forward) whose stack holds also.
func copyLoops(also string) int {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for g := range strings.SplitSeq(b.String(), "\n\n") {
		if strings.Contains(g, "node.copyHalf") && strings.Contains(g, also) {
			n++
		}
	}
	return n
}

// hungService is a TCP service that accepts connections and never reads
// from them (nor writes, nor closes them) until the test ends. It returns
// its address and its connections so far.
func hungService(t *testing.T) (string, func() []*net.TCPConn) {
	var mu sync.Mutex
	var conns []*net.TCPConn
	addr := tcpServer(t, func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c.(*net.TCPConn))
		mu.Unlock()
		<-t.Context().Done()
	})
	return addr, func() []*net.TCPConn {
		mu.Lock()
		defer mu.Unlock()
		return append([]*net.TCPConn(nil), conns...)
	}
}

// TestExposeToHungServiceClosesResetCircuits: a exposes a TCP service
// that never reads; b opens resumable circuits to it and writes without
// end, and a's budget of resumable circuits resets them. Each circuit's
// TCP connection to the service closes with it (the service sees no more
// connections than b has circuits), and once b resets the rest, none
// stays open and the copy loops end. Before, the copy loop of a circuit
// reset while it waited for the service to read never learnt of it: the
// connection, its two goroutines and its unread bytes (no longer counted
// in the budget) stayed until the service read, and a hung service grew
// the exposing node's heap without bound.
func TestExposeToHungServiceClosesResetCircuits(t *testing.T) {
	const circuits = 3
	a, b := fwdPair(t, func(cfg *Config) {
		cfg.Limits.ResumeBuffer = 4 * MinResumeBuffer
		cfg.Limits.ResumeBufferPerSource = MinResumeBuffer
	})
	loops := copyLoops("")
	addr, conns := hungService(t)
	stop, err := a.Expose("hung", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	attacker := startResumeAttacker(t, b, "a", "hung", circuits)
	drops := func() int { return int(counterValue(a.rbudget.drops.WithLabelValues(dropSourceShare))) }
	waitFor(t, "a's budget to reset more circuits than b keeps open", 2*time.Minute, func() bool { return drops() > circuits })
	waitFor(t, "the service to see no more connections than b has circuits", 30*time.Second, func() bool {
		return establishedConns(t, conns()) <= circuits
	})
	attacker.halt()
	waitFor(t, "the service to see every connection closed once b reset its circuits", 30*time.Second, func() bool {
		return establishedConns(t, conns()) == 0
	})
	waitFor(t, "the copy loops to end", 30*time.Second, func() bool { return copyLoops("") <= loops })
	t.Logf("%d circuits opened, %d reset by a's budget, %d connections to the service", attacker.opened.Load(), drops(), len(conns()))
}

// TestForwardClosesHungClientOfResetCircuit: a forwards a local port to
// an endless source b exposes; its client reads a MiB and then neither
// reads nor writes. When b withdraws the service, resetting the circuit,
// the client's connection is reset. Before, a's copy loop waited for the
// client to read and never learnt that the circuit had ended.
func TestForwardClosesHungClientOfResetCircuit(t *testing.T) {
	a, b := fwdPair(t)
	forwardToHungClient(t, a, b)
}

// TestForwardClosesHungClientOfResetPlainCircuit is
// TestForwardClosesHungClientOfResetCircuit with a circuit that does not
// resume (a's ResumeTimeout is negative): the reset reaches a as the
// circuit's far end stopping reading it. Before, a's copy loop learnt of
// it only by writing to the circuit, which it never did while the client
// neither read nor wrote.
func TestForwardClosesHungClientOfResetPlainCircuit(t *testing.T) {
	a, b := fwdPair(t, func(cfg *Config) { cfg.ResumeTimeout = -1 })
	forwardToHungClient(t, a, b)
}

// forwardToHungClient forwards a local port of a to an endless source b
// exposes, stops the client reading, withdraws the service at b and
// waits for the client's connection to be reset and the copy loops to end.
func forwardToHungClient(t *testing.T, a, b *Node) {
	loops := copyLoops("")
	client, stopExpose := hangForwardClient(t, a, b)
	if err := stopExpose(); err != nil {
		t.Fatal(err)
	}
	waitHungClientReset(t, client, loops)
}

// hangForwardClient forwards a local port of a to an endless source b
// exposes and returns the client's connection once it read a MiB and
// stopped reading, with a's copy to it waiting for it to read and its
// copy from it waiting for it to write.
func hangForwardClient(t *testing.T, a, b *Node) (client *net.TCPConn, stopExpose func() error) {
	c, stopExpose, _ := forwardTo(t, a, b, "source", tcpSource(t))
	client = c.(*net.TCPConn)
	// A fixed receive buffer: once full, it stays full.
	if err := client.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	// The client stops reading: a's copy to it fills the buffers and
	// waits until it can write again, which it never can.
	last := -1
	waitFor(t, "a's copy to the client to wait for it to read", 30*time.Second, func() bool {
		_, unread := tcpState(t, client)
		stuck := unread == last && copyLoops("waitWrite") == 1
		last = unread
		time.Sleep(100 * time.Millisecond)
		return stuck
	})
	return client, stopExpose
}

// waitHungClientReset waits for c, a hung TCP peer's connection (a
// forward's client, an exposed service), to be reset (its socket closed
// by a RST, not ended by a FIN, whether or not the peer half-closed it)
// and for the copy loops to fall back to loops.
func waitHungClientReset(t *testing.T, c *net.TCPConn, loops int) {
	t.Helper()
	waitFor(t, "the hung peer's connection to be reset", 30*time.Second, func() bool {
		state, _ := tcpState(t, c)
		return state == unix.BPF_TCP_CLOSE
	})
	waitFor(t, "the copy loops to end", 30*time.Second, func() bool { return copyLoops("") <= loops })
}

// TestForwardClosesHungClientWhenPlainCircuitLosesItsLink: a forwards a
// local port to an endless source b exposes over a circuit that does not
// resume; its client reads a MiB and then neither reads nor writes. When
// b's process dies (its socket closed, no goodbye), a's end of the
// circuit ends with an error wrapping links.ErrLinkLost (Done, Err), the
// client's connection is reset and both copy loops end. Before, nothing
// told a's copy loops, one waiting for the client to read and one for it
// to write: the connection and both goroutines stayed until the client
// moved.
func TestForwardClosesHungClientWhenPlainCircuitLosesItsLink(t *testing.T) {
	a, b, sockets := plainLinkPair(t)
	loops := copyLoops("")
	client, _ := hangForwardClient(t, a, b)
	// A circuit of its own over the same link, not read: what its Done and
	// Err say once the link is lost.
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", "source", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	plain, ok := conn.(circuitEnd)
	if _, resumable := conn.(*circuit.Resumable); !ok || resumable {
		t.Fatalf("a dialled a %T, want a plain circuit", conn)
	}
	sockets["b"].Close() // b's process dies: no goodbye
	waitHungClientReset(t, client, loops)
	select {
	case <-plain.Done():
	case <-time.After(patience):
		t.Fatalf("a's circuit still not done %v after b died", patience)
	}
	if err := plain.Err(); !errors.Is(err, links.ErrLinkLost) {
		t.Fatalf("a's circuit ended with %v, want link lost", err)
	}
}

// TestForwardClosesHalfClosedHungClientWhenPlainCircuitLosesItsLink is
// TestForwardClosesHungClientWhenPlainCircuitLosesItsLink with a client
// that half-closed (sent FIN, which a passed on as the circuit's end of
// stream) before it stopped reading: the lost link still resets its
// connection and ends the copy loop waiting for it to read. Before, the
// circuit's own half-close had ended the only watch a had, and the loop
// waited for the client to read.
func TestForwardClosesHalfClosedHungClientWhenPlainCircuitLosesItsLink(t *testing.T) {
	a, b, sockets := plainLinkPair(t)
	loops := copyLoops("")
	client, _ := hangForwardClient(t, a, b)
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// a's copy from the client ends, and so does b's copy to the source
	// once the FIN reached it; b's copy from the source waits for a.
	waitFor(t, "the copies of the FIN to end", 30*time.Second, func() bool {
		return copyLoops("") == loops+2 && copyLoops("waitWrite") == 1
	})
	sockets["b"].Close() // b's process dies: no goodbye
	waitHungClientReset(t, client, loops)
}

// plainLinkPair starts a and b, linked, on sockets the test owns (closing
// b's is b's process dying), with circuits that do not resume.
func plainLinkPair(t *testing.T) (a, b *Node, sockets map[string]*net.UDPConn) {
	c := newCluster(t, true)
	sockets = map[string]*net.UDPConn{}
	c.tweak = func(cfg *Config) {
		ownSocket(t, sockets, cfg)
		cfg.ResumeTimeout = -1 // the circuit fails with its link
	}
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	return c.nodes["a"], c.nodes["b"], sockets
}

// TestForwardDeliversCompleteDownloadWhenPlainCircuitLosesItsLink: a
// forwards a local port to a service b exposes that sends 256 KiB and
// closes, over a circuit that does not resume. The client reads none of
// it and keeps its own direction open; a passes the whole download and
// its end on to the client's connection, part of it still in a's socket
// buffer, when b's process dies. The client still reads the 256 KiB and
// a clean end, and the copy loops end: the circuit's end already went to
// the client, so a closes its connection rather than resetting it, which
// would drop what a's socket had not sent yet.
func TestForwardDeliversCompleteDownloadWhenPlainCircuitLosesItsLink(t *testing.T) {
	a, b, sockets := plainLinkPair(t)
	body := make([]byte, 256<<10)
	rand.Read(body)
	loops := copyLoops("")
	conn, _, _ := forwardTo(t, a, b, "download", tcpServer(t, func(c net.Conn) { c.Write(body) }))
	client := conn.(*net.TCPConn)
	// a's copy to the client ends once it handed the download and its end
	// to a's socket; the copy from the client waits for it, and so does
	// b's copy to the service, whose own copy from it ended.
	last := -1
	waitFor(t, "a to pass the whole download on while the client reads none", 30*time.Second, func() bool {
		state, unread := tcpState(t, client)
		passed := unread == last && unread > 0 && state == unix.BPF_TCP_ESTABLISHED &&
			copyLoops("") == loops+2 && copyLoops("waitWrite") == 0
		last = unread
		time.Sleep(100 * time.Millisecond)
		return passed
	})
	sockets["b"].Close() // b's process dies: no goodbye
	waitFor(t, "the copy loops to end", 30*time.Second, func() bool { return copyLoops("") <= loops })
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("the client read %d bytes of %d, then %v; want the whole download and a clean end", len(got), len(body), err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("the client read %d bytes that are not the %d sent", len(got), len(body))
	}
}

// TestExposeClosesHungServiceWhenPlainCircuitLosesItsLink: b exposes a
// TCP service that neither reads nor writes; a forwards a local port to
// it over a circuit that does not resume, and a's client writes until
// every buffer on the way is full. When a's process dies, b resets its
// connection to the service and the copy loops end. Before, b's copies,
// one waiting for the service to read and one for it to write, never
// learnt that the circuit's link was gone.
func TestExposeClosesHungServiceWhenPlainCircuitLosesItsLink(t *testing.T) {
	a, b, sockets := plainLinkPair(t)
	addr, conns := hungService(t)
	loops := copyLoops("")
	client, _, _ := forwardTo(t, a, b, "hung", addr)
	go io.Copy(client, zeros{}) // ends when the test closes client
	last := -1
	waitFor(t, "b's copy to the service to wait for it to read", 30*time.Second, func() bool {
		if len(conns()) != 1 {
			return false
		}
		_, unread := tcpState(t, conns()[0])
		stuck := unread == last && copyLoops("waitWrite") == 1
		last = unread
		time.Sleep(100 * time.Millisecond)
		return stuck
	})
	sockets["a"].Close() // a's process dies: no goodbye
	waitHungClientReset(t, conns()[0], loops)
}
