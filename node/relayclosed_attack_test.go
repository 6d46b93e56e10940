package node

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackUnreadDestinationKeepsClosedCircuitsCounted: m, a member, has
// a service that accepts circuits and never reads them (its own reclaim
// of stalled readers turned off by a ReaderStall of an hour). h, an
// honest neighbour of the honest relay r, opens circuits to it through r
// (h-r-m), writes 1 MiB into each, gives each up after 3 s with its
// bytes unread (the Write runs into its deadline), and closes it. That
// Close sent FIN, behind the bytes m took no more of, and stop-sending
// with code 0, which ends only r's direction toward h: r's splice of
// each stayed blocked writing h's bytes to m, which gives no credit,
// until Limits.RelayStall (2 min), the circuit counted against h at r
// all that while. With r's MaxCircuitsPerSource at 4, after four such
// circuits r refused h's circuit to x, r's other neighbour (h-r-x, not
// through m), 2 s later, `overloaded` ("4 circuits open from h, the
// per-source limit"): a destination made the honest relay before it
// refuse the source's circuits on every other path, as the silent next
// hop of TestAttackSilentNextHopKeepsClosedCircuitsCounted did. Now
// h's Close after a Write cut by its deadline resets the circuit
// (cancelled): r's splice ends at once, freeing h's count, and h's
// circuit to x opens and echoes.
func TestAttackUnreadDestinationKeepsClosedCircuitsCounted(t *testing.T) {
	t.Parallel()
	c := newCluster(t, true)
	c.tweak = takesNothingBeyond("m", nil)
	c.build("h-r", "r-m", "r-x")
	c.waitRoute("h", "m", 2)
	c.waitRoute("h", "x", 2)
	h, m := c.nodes["h"], c.nodes["m"]

	pre, err := h.DialWith(ctxT(t, 10*time.Second), "x", EchoService, DialOptions{NoResume: true})
	if err != nil {
		t.Fatalf("h's circuit to x before the attack: %v", err)
	}
	echoOnce(t, pre, "before")
	pre.Close()

	sink, err := m.Listen("sink")
	if err != nil {
		t.Fatal(err)
	}
	var heldMu sync.Mutex
	var held []net.Conn
	defer func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, conn) // accepted, never read
			heldMu.Unlock()
		}
	}()

	giveUpThenReachX(t, h, c.nodes["r"], "m", "sink", "to m, which reads nothing")
}

// unreadStream is a relay's stream that its splice stops reading once it
// read pass bytes (a Read then waits until the test ends), and never ends:
// the relay's resets and closes of it are dropped.
type unreadStream struct {
	links.Stream
	pass int
	read *int
	done <-chan struct{}
}

func (s unreadStream) Read(p []byte) (int, error) {
	if left := s.pass - *s.read; left > 0 {
		k, err := s.Stream.Read(p[:min(len(p), left)])
		*s.read += k
		return k, err
	}
	<-s.done
	return 0, io.EOF
}

func (s unreadStream) Reset(uint64)      {}
func (s unreadStream) CloseRead(uint64)  {}
func (s unreadStream) CloseWrite() error { return nil }
func (s unreadStream) Close() error      { return nil }

// TestAttackUnreadingRelayKeepsClosedCircuitsCounted is
// TestAttackUnreadDestinationKeepsClosedCircuitsCounted with the bytes
// held by a relay: n, a member relaying h's circuits to d (h-r-n-d),
// forwards each open and its first 64 KiB and then neither reads nor
// ends what comes from r (its own reclaim of stalled readers turned
// off). n passes d's answers back, so h's circuits open (one-message
// handshakes, h holding d's key). h's circuits to d, each given 1 MiB
// to carry and closed after 3 s, stayed at r, blocked writing to n and
// counted against h, until Limits.RelayStall: r refused h's circuit to
// x (h-r-x, not through n) `overloaded`, 4 circuits open from h. Now
// h's Close resets each (its Write cut by the deadline), r's splice
// ends at once, and h's circuit to x opens and echoes.
func TestAttackUnreadingRelayKeepsClosedCircuitsCounted(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	c := newCluster(t, true)
	c.tweak = takesNothingBeyond("n", &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
		return unreadStream{in, 64 << 10, new(int), done}, out
	}})
	c.build("h-r", "r-n", "n-d", "r-x")
	t.Cleanup(func() { close(done) }) // before the cluster closes
	c.waitRoute("h", "d", 3)
	c.waitRoute("h", "x", 2)
	h := c.nodes["h"]

	pre, err := h.DialWith(ctxT(t, 10*time.Second), "x", EchoService, DialOptions{NoResume: true})
	if err != nil {
		t.Fatalf("h's circuit to x before the attack: %v", err)
	}
	echoOnce(t, pre, "before")
	pre.Close()
	// h learns d's key: its circuits to d then take one-message
	// handshakes, done once d's reply is back.
	if err := roundTrip(t, h, "d", EchoService, []byte("warm")); err != nil {
		t.Fatal(err)
	}

	giveUpThenReachX(t, h, c.nodes["r"], "d", EchoService, "through n, which reads nothing")
}

// takesNothingBeyond configures r, the honest relay, with a per-source
// limit of 4, and next, the node beyond it that reads nothing (with h),
// with small stream windows, its own reclaim of stalled readers off.
func takesNothingBeyond(next string, h *hooks) func(*Config) {
	return func(cfg *Config) {
		switch cfg.Name {
		case "r":
			cfg.Limits.MaxCircuitsPerSource = 4
		case next:
			cfg.Limits.StreamWindow = 16 << 10
			cfg.Limits.LinkWindow = 1 << 30
			cfg.Limits.ReaderStall = time.Hour
			cfg.hooks = h
		}
	}
}

// giveUpThenReachX opens 4 circuits from h to dest's service (r's
// per-source limit), writes 1 MiB into each under a 3 s deadline and
// closes it; once r let them go (at most 30 s, well within RelayStall),
// h's circuit to x, through r, must open and echo.
// how says how the 4 circuits went, for the failure.
func giveUpThenReachX(t *testing.T, h, r *Node, dest, service, how string) {
	t.Helper()
	body := make([]byte, 1<<20)
	for i := range 4 {
		conn, err := h.DialWith(ctxT(t, 10*time.Second), dest, service, DialOptions{NoResume: true})
		if err != nil {
			t.Fatalf("h's circuit %d to %s: %v", i, dest, err)
		}
		conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
		_, werr := conn.Write(body)
		if !errors.Is(werr, os.ErrDeadlineExceeded) {
			t.Fatalf("h's circuit %d to %s: write %v, want its deadline: the test needs a next hop that takes nothing", i, dest, werr)
		}
		conn.Close()
	}
	// The resets reach r: well within RelayStall (2 min), which held
	// them before.
	for deadline := time.Now().Add(30 * time.Second); r.circuits.relayed() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	conn, err := h.DialWith(ctxT(t, 10*time.Second), "x", EchoService, DialOptions{NoResume: true})
	if err != nil {
		if errors.Is(err, circuit.ErrOverloaded) {
			t.Fatalf("h's circuit to x refused at r after h closed its 4 circuits %s: %v", how, err)
		}
		t.Fatalf("h's circuit to x: %v", err)
	}
	defer conn.Close()
	echoOnce(t, conn, "after")
}
