package node

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackTrickledHandshakesThroughRelayHoldNoSlots: m, a member linked
// to the honest relay r, opens sealed circuits to d through r, each
// writing its open header and the first bytes of a one-message handshake
// (its length and mode) and nothing more. r read the header and those
// bytes and forwarded the open, so d waited for the rest of the message
// within a slot of r's link's share of open headers being read
// (Limits.MaxPendingOpensPerLink): 64 such opens held r's whole share at
// d, and h's circuit through r to d found no room (refused overloaded,
// or waiting until m's opens timed out). Now r forwards a sealed open
// only once its first handshake message is complete, so m's opens hold
// slots of m's own link at r, and h's circuit is served.
func TestAttackTrickledHandshakesThroughRelayHoldNoSlots(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		// Longer than h's dial below: m's opens hold what they hold
		// for the whole test.
		cfg.Limits.HeaderTimeout = 45 * time.Second
	}
	c.build("m-r", "h-r", "r-d")
	c.waitRoute("m", "d", 2)
	c.waitRoute("h", "d", 2)
	r, d := c.nodes["r"], c.nodes["d"]
	share := d.cfg.Limits.MaxPendingOpensPerLink

	hdr, err := (&circuit.Open{Dest: "d", Source: "m", Service: EchoService, HopLimit: 8, Flags: circuit.FlagSealed}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A one-message first handshake message of 1000 bytes, of which
	// only its length and mode are sent.
	first := append(hdr, 0x03, 0xe8, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	l := c.nodes["m"].link("r")
	for range share + 8 {
		s, err := l.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(first); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { s.Reset(0) })
			defer stop()
			_, _ = io.Copy(io.Discard, s)
		})
	}
	// m's opens hold their slots: at d on r's link (before), or at r on
	// m's link (now).
	waitFor(t, "m's opens to hold a link's share", time.Minute, func() bool {
		return r.limits.pendingOn("m")+d.limits.pendingOn("r") >= share
	})
	t.Logf("open headers being read: %d at r from m, %d at d from r (share %d)",
		r.limits.pendingOn("m"), d.limits.pendingOn("r"), share)
	hc, err := c.nodes["h"].Dial(ctxT(t, 15*time.Second), "d", EchoService)
	if err != nil {
		t.Fatalf("h's circuit through r to d while m trickles handshakes through r: %v", err)
	}
	hc.Close()
	if n := d.limits.pendingOn("r"); n >= share {
		t.Fatalf("d holds %d open headers from r, its whole share", n)
	}
}

// dripStream gives its bytes, then times out, noting the largest read.
type dripStream struct {
	links.Stream
	data    []byte
	largest int
}

func (s *dripStream) SetReadDeadline(time.Time) error { return nil }

func (s *dripStream) Read(p []byte) (int, error) {
	s.largest = max(s.largest, len(p))
	if len(s.data) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, s.data[:1])
	s.data = s.data[n:]
	return n, nil
}

// TestRelayFirstMessageGrowsWithWhatArrives: a relay reading a sealed
// open's first handshake message does not make room for the length the
// message declares before its bytes come: three bytes declaring 64 KiB
// made it allocate 64 KiB.
func TestRelayFirstMessageGrowsWithWhatArrives(t *testing.T) {
	n := &Node{cfg: Config{Limits: Limits{HeaderTimeout: time.Second}}}
	s := &dripStream{data: []byte{0xff, 0xff, 1, 'x', 'y'}}
	_, err := n.readFirstPrefix(s, &circuit.Open{Flags: circuit.FlagSealed}, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a first message that stops coming: %v, want the deadline", err)
	}
	if s.largest > 4096 {
		t.Fatalf("the relay read into %d bytes for a message of which 5 bytes came", s.largest)
	}
}
