package memlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"golang.org/x/net/nettest"
)

// netConn adapts a Stream to net.Conn for nettest.
type netConn struct {
	links.Stream
	l links.Link
}

func (c netConn) LocalAddr() net.Addr  { return c.l.LocalAddr() }
func (c netConn) RemoteAddr() net.Addr { return c.l.RemoteAddr() }

func TestStreamIsNetConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		n := NewNetwork(Config{StreamBuffer: 64 << 10})
		a, err := n.Transport(TransportConfig{Name: "a", Mesh: "m"})
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := n.Transport(TransportConfig{Name: "b", Mesh: "m"})
		if err != nil {
			return nil, nil, nil, err
		}
		l, err := a.Dial(context.Background(), "b")
		if err != nil {
			return nil, nil, nil, err
		}
		r := b.Links()[0]
		s1, err := l.OpenStream(context.Background())
		if err != nil {
			return nil, nil, nil, err
		}
		s2, err := r.AcceptStream(context.Background())
		if err != nil {
			return nil, nil, nil, err
		}
		stop := func() { s1.Close(); s2.Close(); a.Close(); b.Close() }
		return netConn{s1, l}, netConn{s2, r}, stop, nil
	})
}

// twoEnds returns a stream's two ends on a fresh network.
func twoEnds(t *testing.T, cfg Config) (links.Stream, links.Stream, links.Link) {
	t.Helper()
	n := NewNetwork(cfg)
	ns := newNodes(t, n, "a", "b")
	l := dial(t, ns[0].t, "b")
	s1, s2 := streamPairOn(t, l, peerEnd(t, ns[1].t, "a"))
	return s1, s2, l
}

func TestHalfClose(t *testing.T) {
	s1, s2, _ := twoEnds(t, Config{})
	if _, err := s1.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := s1.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after CloseWrite = %v", err)
	}
	got, err := io.ReadAll(s2)
	if err != nil || string(got) != "request" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// The other direction still works after the half-close.
	if _, err := s2.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	got, err = io.ReadAll(s1)
	if err != nil || string(got) != "response" {
		t.Fatalf("opener read %q, %v", got, err)
	}
}

func TestReset(t *testing.T) {
	s1, s2, _ := twoEnds(t, Config{})
	if _, err := s1.Write([]byte("doomed")); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := s1.Read(make([]byte, 8))
		blocked <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s2.Reset(42)
	var re *links.StreamResetError
	if err := <-blocked; !errors.As(err, &re) || re.Code != 42 || !re.Remote {
		t.Fatalf("pending Read at the peer = %v, want remote reset 42", err)
	}
	if _, err := s1.Write([]byte("x")); !errors.As(err, &re) || re.Code != 42 || !re.Remote || !errors.Is(err, links.ErrStreamReset) {
		t.Fatalf("Write at the peer = %v, want remote reset 42", err)
	}
	if _, err := s2.Read(make([]byte, 8)); !errors.As(err, &re) || re.Code != 42 || re.Remote {
		t.Fatalf("Read at the resetting end = %v, want local reset 42", err)
	}
	if _, err := s2.Write([]byte("x")); !errors.As(err, &re) || re.Remote {
		t.Fatalf("Write at the resetting end = %v, want local reset", err)
	}
}

func TestCloseReadStopsPeer(t *testing.T) {
	s1, s2, _ := twoEnds(t, Config{})
	s2.CloseRead(7)
	var re *links.StreamResetError
	if _, err := s1.Write([]byte("x")); !errors.As(err, &re) || re.Code != 7 || !re.Remote {
		t.Fatalf("Write after peer CloseRead = %v, want remote code 7", err)
	}
	if _, err := s2.Read(make([]byte, 1)); !errors.As(err, &re) || re.Remote {
		t.Fatalf("Read after own CloseRead = %v", err)
	}
	// s2 can still send.
	if _, err := s2.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(s1, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestBackpressure(t *testing.T) {
	const size = 1024
	s1, s2, _ := twoEnds(t, Config{StreamBuffer: size})
	s1.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := s1.Write(make([]byte, 3*size))
	if n != size || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write into a full buffer = %d, %v; want %d and a timeout", n, err, size)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("deadline error %v is not a timeout net.Error", err)
	}
	// The writer proceeds as the reader drains.
	s1.SetWriteDeadline(time.Time{})
	want := bytes.Repeat([]byte("0123456789"), size)
	done := make(chan error, 1)
	go func() {
		_, err := s1.Write(want)
		if err == nil {
			err = s1.CloseWrite()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Write of 10 buffers returned (%v) before anyone read", err)
	case <-time.After(20 * time.Millisecond):
	}
	got, err := io.ReadAll(s2)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[size:], want) {
		t.Fatalf("read %d bytes, not what was written", len(got))
	}
}

func TestDeadlines(t *testing.T) {
	s1, _, _ := twoEnds(t, Config{})
	s1.SetReadDeadline(time.Now().Add(-time.Second))
	start := time.Now()
	if _, err := s1.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("Read past deadline = %v after %v", err, time.Since(start))
	}
	start = time.Now()
	s1.SetReadDeadline(start.Add(30 * time.Millisecond))
	if _, err := s1.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("Read with future deadline = %v after %v", err, time.Since(start))
	}
	// Moving the deadline into the past wakes a pending Read.
	s1.SetReadDeadline(time.Time{})
	res := make(chan error, 1)
	go func() {
		_, err := s1.Read(make([]byte, 1))
		res <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s1.SetDeadline(time.Now().Add(-time.Second))
	if err := <-res; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("pending Read after SetDeadline(past) = %v", err)
	}
}

func TestCloseUnblocksPending(t *testing.T) {
	s1, _, _ := twoEnds(t, Config{StreamBuffer: 1})
	reads, writes := make(chan error, 1), make(chan error, 1)
	go func() { _, err := s1.Read(make([]byte, 1)); reads <- err }()
	go func() { _, err := s1.Write(make([]byte, 10)); writes <- err }()
	time.Sleep(10 * time.Millisecond)
	s1.Close()
	for _, ch := range []chan error{reads, writes} {
		if err := <-ch; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("pending call after Close = %v, want net.ErrClosed", err)
		}
	}
}

func TestLostLinkFailsStreams(t *testing.T) {
	n := NewNetwork(Config{})
	ns := newNodes(t, n, "a", "b")
	l := dial(t, ns[0].t, "b")
	s1, s2 := streamPairOn(t, l, peerEnd(t, ns[1].t, "a"))
	pending := make(chan error, 1)
	go func() { _, err := s2.Read(make([]byte, 1)); pending <- err }()
	time.Sleep(10 * time.Millisecond)
	n.Cut("a", "b")
	if err := <-pending; !errors.Is(err, links.ErrLinkLost) {
		t.Fatalf("pending Read on a cut link = %v", err)
	}
	if _, err := s1.Write([]byte("x")); !errors.Is(err, links.ErrLinkLost) {
		t.Fatalf("Write on a cut link = %v", err)
	}
	if l.OpenStreams() != 0 {
		t.Fatalf("dead link counts %d streams", l.OpenStreams())
	}
}

// BenchmarkStreamThroughput copies through one stream in 32 KiB writes.
func BenchmarkStreamThroughput(b *testing.B) {
	n := NewNetwork(Config{})
	ta, _ := n.Transport(TransportConfig{Name: "a", Mesh: "m"})
	tb, _ := n.Transport(TransportConfig{Name: "b", Mesh: "m"})
	defer ta.Close()
	defer tb.Close()
	l, _ := ta.Dial(context.Background(), "b")
	s1, _ := l.OpenStream(context.Background())
	s2, _ := tb.Links()[0].AcceptStream(context.Background())
	buf := make([]byte, 32<<10)
	done := make(chan int64)
	go func() {
		n, _ := io.Copy(io.Discard, s2)
		done <- n
	}()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := s1.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	s1.CloseWrite()
	if got := <-done; got != int64(b.N*len(buf)) {
		b.Fatalf("copied %d bytes", got)
	}
}
