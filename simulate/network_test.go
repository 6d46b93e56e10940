package simulate

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func listenPair(t *testing.T) (*packetNet, *packetConn, *packetConn) {
	t.Helper()
	return listenPairSeed(t, 1)
}

// listenPairSeed binds a and b on a new network with the given seed.
func listenPairSeed(t *testing.T, seed uint64) (*packetNet, *packetConn, *packetConn) {
	t.Helper()
	n := newPacketNet(seed)
	a, err := n.listen("a", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: simPort})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.listen("b", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: simPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
		n.close()
	})
	return n, a, b
}

// received counts the packets b gets within d.
func received(t *testing.T, b *packetConn, d time.Duration) int {
	t.Helper()
	b.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	for got := 0; ; got++ {
		if _, _, err := b.ReadFrom(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read: %v, want a deadline error", err)
			}
			return got
		}
	}
}

func TestPacketNetLatencyLossAndBlocks(t *testing.T) {
	n, a, b := listenPair(t)
	n.setParams("a", "b", LinkParams{Latency: 30 * time.Millisecond})
	start := time.Now()
	a.WriteTo([]byte("hi"), b.LocalAddr())
	buf := make([]byte, 8)
	k, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "hi" || from.String() != a.LocalAddr().String() {
		t.Fatalf("read %q from %v: %v", buf[:k], from, err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("packet arrived after %v, before the 30ms latency", d)
	}

	n.setParams("a", "b", LinkParams{Loss: 0.5})
	for range 400 {
		a.WriteTo([]byte("x"), b.LocalAddr())
	}
	// Without latency a packet is in b's buffer when WriteTo returns:
	// count them there rather than racing a read deadline.
	got := 0
	for len(b.in) > 0 {
		<-b.in
		got++
	}
	if got < 120 || got > 280 {
		t.Fatalf("%d of 400 packets arrived at 50%% loss", got)
	}

	n.setParams("a", "b", LinkParams{})
	n.setBlocked("a", "b", true)
	a.WriteTo([]byte("x"), b.LocalAddr())
	n.setBlocked("a", "b", false)
	n.setDown("b", true)
	a.WriteTo([]byte("x"), b.LocalAddr())
	if got := received(t, b, 30*time.Millisecond); got != 0 {
		t.Fatalf("%d packets crossed a block or reached a dead node", got)
	}
	n.setDown("b", false)
	a.WriteTo([]byte("x"), b.LocalAddr())
	if got := received(t, b, 30*time.Millisecond); got != 1 {
		t.Fatalf("%d packets after the node came back, want 1", got)
	}
}

func TestPacketConnCloseAndRebind(t *testing.T) {
	n, a, b := listenPair(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := b.ReadFrom(make([]byte, 8))
		done <- err
	}()
	b.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
	}
	if _, err := a.WriteTo([]byte("x"), b.LocalAddr()); err != nil {
		t.Fatalf("a write to a closed peer must vanish silently: %v", err)
	}
	if _, err := n.listen("a2", a.addr); err == nil {
		t.Fatal("bound an address in use")
	}
	b2, err := n.listen("b", b.addr)
	if err != nil {
		t.Fatalf("rebind after close: %v", err)
	}
	defer b2.Close()
	a.WriteTo([]byte("x"), b2.LocalAddr())
	if got := received(t, b2, 20*time.Millisecond); got != 1 {
		t.Fatalf("rebound socket got %d packets, want 1", got)
	}
}

// Each path draws its losses from its own stream derived from the seed:
// which packets of a→b are lost does not change when other paths carry
// traffic in between, and does change with the seed.
func TestPacketNetLossStreamPerPath(t *testing.T) {
	arrivals := func(seed uint64, interleave bool) []byte {
		n := newPacketNet(seed)
		defer n.close()
		conns := map[string]*packetConn{}
		for i, name := range []string{"a", "b", "c", "d"} {
			c, err := n.listen(name, &net.UDPAddr{IP: net.IPv4(10, 0, 0, byte(i+1)), Port: simPort})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns[name] = c
		}
		n.setParams("a", "b", LinkParams{Loss: 0.5})
		n.setParams("c", "d", LinkParams{Loss: 0.5})
		for i := range 500 {
			if interleave {
				conns["c"].WriteTo([]byte("x"), conns["d"].addr)
				conns["b"].WriteTo([]byte("y"), conns["a"].addr)
				conns["d"].WriteTo([]byte("z"), conns["c"].addr)
			}
			conns["a"].WriteTo([]byte{byte(i), byte(i >> 8)}, conns["b"].addr)
		}
		var got []byte
		for len(conns["b"].in) > 0 {
			p := <-conns["b"].in
			got = append(got, p.data...)
		}
		return got
	}
	alone := arrivals(7, false)
	if len(alone) < 2*150 || len(alone) > 2*350 {
		t.Fatalf("%d of 500 packets arrived at 50%% loss", len(alone)/2)
	}
	if mixed := arrivals(7, true); !bytes.Equal(alone, mixed) {
		t.Errorf("the packets lost on a→b changed when other paths carried traffic: %d arrived alone, %d with other traffic", len(alone)/2, len(mixed)/2)
	}
	if other := arrivals(8, false); bytes.Equal(alone, other) {
		t.Error("seeds 7 and 8 lost the same packets of a→b")
	}
}
