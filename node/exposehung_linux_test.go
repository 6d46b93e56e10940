package node

import (
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	c, stopExpose, _ := forwardTo(t, a, b, "source", tcpSource(t))
	client := []*net.TCPConn{c.(*net.TCPConn)}
	// A fixed receive buffer: once full, it stays full.
	if err := client[0].SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	// The client stops reading: a's copy to it fills the buffers and
	// waits until it can write again, which it never can.
	last := -1
	waitFor(t, "a's copy to the client to wait for it to read", 30*time.Second, func() bool {
		_, unread := tcpState(t, client[0])
		stuck := unread == last && copyLoops("waitWrite") == 1
		last = unread
		time.Sleep(100 * time.Millisecond)
		return stuck
	})
	if err := stopExpose(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client's connection to be reset", 30*time.Second, func() bool { return establishedConns(t, client) == 0 })
	waitFor(t, "the copy loops to end", 30*time.Second, func() bool { return copyLoops("") <= loops })
}
