package node

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// levelCounter counts records at ERROR level and keeps one sample.
type levelCounter struct {
	errs   *atomic.Int64
	sample *atomic.Value
	text   slog.Handler // the daemon's text format, to count the bytes of ERROR lines
}

// byteCounter counts what is written to it.
type byteCounter struct{ n *atomic.Int64 }

func (w byteCounter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

func (h levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h levelCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errs.Add(1)
		h.sample.Store(r.Message)
		h.text.Handle(ctx, r)
	}
	return nil
}
func (h levelCounter) WithAttrs(as []slog.Attr) slog.Handler {
	h.text = h.text.WithAttrs(as)
	return h
}
func (h levelCounter) WithGroup(string) slog.Handler { return h }

// errLineBytes counts the bytes of the ERROR lines of the last
// errCountingGossipNode, in the daemon's text format.
var errLineBytes atomic.Int64

// errCountingGossipNode is a real node with gossip on 127.0.0.1 (key set
// or not) whose ERROR lines are counted, with a sample of the last.
func errCountingGossipNode(t *testing.T, key []byte) (*Node, *atomic.Int64, *atomic.Value) {
	errs, sample := new(atomic.Int64), new(atomic.Value)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key}
		cfg.Logger = slog.New(levelCounter{errs, sample, slog.NewTextHandler(byteCounter{&errLineBytes}, nil)})
	}
	return c.add("d"), errs, sample
}

// sendDatagrams sends pkt n times to d's gossip port from one socket.
func sendDatagrams(t *testing.T, d *Node, pkt []byte, n int) {
	addr, err := net.ResolveUDPAddr("udp", d.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // let the reader keep up (UDP buffer)
		}
	}
	time.Sleep(500 * time.Millisecond)
}

// TestAttackGossipUnknownTypesLogErrors: a stranger (no certificate, no
// gossip key) sends plaintext datagrams, each a compound of 64 one-byte
// parts of a type memberlist does not handle. memberlist logged "[ERR]
// memberlist: msg type (200) not supported" for each part, and each was
// an ERROR line of the node: before, 1,000 datagrams of 194 bytes gave
// 64,000 lines (8.96 MB of text log, 46 times what was sent). Now the
// gossip guard refuses such datagrams (counted, reason malformed), and
// memberlist's ERROR lines are rate-limited by kind.
func TestAttackGossipUnknownTypesLogErrors(t *testing.T) {
	d, errs, sample := errCountingGossipNode(t, nil)
	time.Sleep(200 * time.Millisecond)
	base := errs.Load()
	pkt := []byte{gmCompound, gossipPacketParts}
	for range gossipPacketParts {
		pkt = append(pkt, 0, 1)
	}
	for range gossipPacketParts {
		pkt = append(pkt, 200)
	}
	const packets = 1000
	start := time.Now()
	sendDatagrams(t, d, pkt, packets)
	got := errs.Load() - base
	t.Logf("%d datagrams of %d bytes (%d bytes in all) from a stranger: %d ERROR lines (%d bytes of text log) within %v (refused by guard: %d); sample: %v",
		packets, len(pkt), packets*len(pkt), got, errLineBytes.Load(), time.Since(start).Round(time.Millisecond), gossipRefused(d), sample.Load())
	if got > 10 {
		t.Errorf("a stranger's %d datagrams made d log %d ERROR lines", packets, got)
	}
	if r := gossipRefused(d); r < packets/2 {
		t.Errorf("the gossip guard refused %d of %d datagrams of unknown message types", r, packets)
	}
}

// TestAttackGossipUndecryptableLogErrors: the same with a gossip key set:
// every datagram that did not decrypt was an ERROR line ("Decrypt packet
// failed"), from anyone who reaches the UDP port (1,000 lines for 1,000
// datagrams of 64 bytes); now a few a minute.
func TestAttackGossipUndecryptableLogErrors(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	d, errs, sample := errCountingGossipNode(t, key)
	time.Sleep(200 * time.Millisecond)
	base := errs.Load()
	pkt := make([]byte, 64)
	rand.Read(pkt)
	pkt[0] = 1 // encryption version byte memberlist expects
	const packets = 1000
	sendDatagrams(t, d, pkt, packets)
	got := errs.Load() - base
	t.Logf("%d garbage datagrams of %d bytes to a keyed node: %d ERROR lines; sample: %v", packets, len(pkt), got, sample.Load())
	if got > 10 {
		t.Errorf("a stranger's %d datagrams made d log %d ERROR lines", packets, got)
	}
}

// TestAttackGossipStreamsLogErrors: a stranger opens TCP connections to
// the gossip port, each sending one byte of an unknown message type and
// closing: memberlist logged "[ERR] memberlist: Received invalid msgType"
// (or, with a key, "failed to receive: ... not encrypted") for each, one
// ERROR line per connection (300 for 300); now a few a minute.
func TestAttackGossipStreamsLogErrors(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		var key []byte
		if keyed {
			key = make([]byte, 32)
			rand.Read(key)
		}
		d, errs, sample := errCountingGossipNode(t, key)
		time.Sleep(200 * time.Millisecond)
		base := errs.Load()
		const conns = 300
		start := time.Now()
		for range conns {
			c, err := net.Dial("tcp", d.Status().GossipAddr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{200})
			buf := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			c.Read(buf) // until d closes it (or answers an error)
			c.Close()
		}
		time.Sleep(300 * time.Millisecond)
		got := errs.Load() - base
		t.Logf("keyed=%v: %d one-byte connections in %v: %d ERROR lines; sample: %v", keyed, conns, time.Since(start).Round(time.Millisecond), got, sample.Load())
		if got > 10 {
			t.Errorf("keyed=%v: a stranger's %d connections made d log %d ERROR lines", keyed, conns, got)
		}
	}
}
