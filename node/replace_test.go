package node

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// holeConn is a UDP socket that can be cut: from then on it drops every
// packet both ways, as a node that vanished without a word.
type holeConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (h *holeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := h.PacketConn.ReadFrom(p)
		if err != nil || !h.cut.Load() {
			return n, addr, err
		}
	}
}

func (h *holeConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if h.cut.Load() {
		return len(p), nil
	}
	return h.PacketConn.WriteTo(p, addr)
}

// addHoled adds a node named name whose UDP socket can be cut (holeConn),
// with no c.tweak.
func addHoled(t *testing.T, c *cluster, name string) (*Node, *holeConn) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hole := &holeConn{PacketConn: pc}
	c.tweak = func(cfg *Config) { cfg.PacketConn = hole }
	n := c.add(name)
	c.tweak = nil
	return n, hole
}

// A circuit open sent on a link that is then replaced by a newer link to
// the same neighbour (here: the neighbour restarted on the same address
// and linked again) is made again on the new link rather than refused:
// the old link's loss is not the neighbour's.
func TestDialInFlightMovesToReplacementLink(t *testing.T) {
	c := newCluster(t, true)
	a := c.add("a")
	b, hole := addHoled(t, c, "b")
	pc := hole.PacketConn
	c.link("b", "a")
	c.waitRoute("a", "b", 1)
	old := a.link("b")
	before := old.OpenStreams()

	hole.cut.Store(true) // b vanishes: the open below waits on the old link
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		conn Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		conn, err := a.Dial(ctx, "b", EchoService)
		res <- result{conn, err}
	}()
	for old.OpenStreams() <= before {
		select {
		case r := <-res:
			t.Fatalf("dial ended before it used the old link: %v", r.err)
		case <-ctx.Done():
			t.Fatal("the dial never opened a stream on the link to b")
		case <-time.After(5 * time.Millisecond):
		}
	}
	_ = b.Close()

	// b comes back on the same address and links to a again.
	addr := pc.LocalAddr().String()
	c.tweak = func(cfg *Config) { cfg.ListenAddr = addr }
	b2 := c.add("b")
	c.tweak = nil
	for {
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		err := b2.Link(lctx, a.Addr().String())
		lcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("b could not link to a again: %v", err)
		}
		// a refuses a second live "b" until the old link falls silent.
		time.Sleep(50 * time.Millisecond)
	}

	r := <-res
	if r.err != nil {
		t.Fatalf("dial in flight when the link to b was replaced: %v", r.err)
	}
	defer r.conn.Close()
	if _, err := r.conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := r.conn.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("echo over the circuit: %q, %v", buf, err)
	}
	if l := a.link("b"); l == old || l == nil {
		t.Fatal("a does not hold the new link to b")
	}
	// The replaced link is gone from the link gauge too.
	var gauge dto.Metric
	if err := a.metrics.links.Write(&gauge); err != nil {
		t.Fatal(err)
	}
	if got, want := gauge.GetGauge().GetValue(), float64(len(a.Links())); got != want {
		t.Fatalf("circuitmesh_links is %v at a, which holds %v links", got, want)
	}
}
