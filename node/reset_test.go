package node

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// tcpSource is a TCP server that sends bytes to every client until the
// connection fails. It returns its address.
func tcpSource(t *testing.T) string {
	return tcpServer(t, func(c net.Conn) {
		io.Copy(c, zeros{})
	})
}

// zeros reads as an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestRelayDeathResetsForwardedTCP downloads through a→r→b with --forward
// on a and --expose on b, kills r mid-transfer, and checks that the TCP
// client sees a connection reset, never a clean (truncated) EOF.
func TestRelayDeathResetsForwardedTCP(t *testing.T) {
	c := newCluster(t, true)
	sockets := map[string]*net.UDPConn{}
	c.tweak = func(cfg *Config) {
		ownSocket(t, sockets, cfg)
		cfg.ResumeTimeout = -1 // the circuit fails with its path
	}
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	stopExpose, err := c.nodes["b"].Expose("source", tcpSource(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stopExpose()
	addr, stopForward, err := c.nodes["a"].Forward("127.0.0.1:0", "b", "source")
	if err != nil {
		t.Fatal(err)
	}
	defer stopForward()

	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	sockets["r"].Close() // r's process "dies": no goodbye
	n, err := io.Copy(io.Discard, conn)
	t.Logf("read %d more bytes, then %v", n, err)
	if err == nil {
		t.Fatal("the download ended with a clean EOF after the relay died; want a reset")
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("download ended with %v, want connection reset", err)
	}
}

// TestExposeToDeadTCPServiceResetsUnavailable: a circuit to an exposed
// service whose TCP server is down ends with a reset saying so.
func TestExposeToDeadTCPServiceResetsUnavailable(t *testing.T) {
	a, b := fwdPair(t)
	stop, err := b.Expose("dead", refusingTCPAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// The reset may overtake the accepted result: then Dial reports it.
	conn, err := a.Dial(ctxT(t, 10*time.Second), "b", "dead")
	if err == nil {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(conn)
	}
	var re *links.StreamResetError
	if !errors.As(err, &re) || re.Code != circuit.CloseUnavailable {
		t.Fatalf("circuit to a dead TCP service: %v, want a reset with code %d", err, circuit.CloseUnavailable)
	}
}

// refusingTCPAddr returns the address of a TCP port that refuses every
// connection for the rest of the test: a socket bound to it and never
// listening holds the port, so no other test's listener can take it (a
// listener closed to free its port leaves it to the next one to bind).
func refusingTCPAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
}
