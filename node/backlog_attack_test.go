package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// backlogService is a service whose application does not accept until
// the test says so.
const backlogService = "slow"

// listenBacklog publishes backlogService on n, whose application accepts
// nothing until the test calls Accept; the listener closes with the test.
func listenBacklog(t *testing.T, n *Node) net.Listener {
	t.Helper()
	lis, err := n.Listen(backlogService)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// TestAttackOneMemberTakesTheBacklog: m, a member with a valid
// certificate, opens Backlog circuits to p's service, whose application
// has not accepted any, and holds them; then h, another member, opens one.
// Before, m's circuits took the whole backlog and h's was refused
// overloaded until the application accepted. Now the last backlogReserve
// places are kept for sources holding fewer than backlogFloor: m queues
// Backlog-backlogReserve, and h's circuit is admitted and accepted once
// the application accepts.
func TestAttackOneMemberTakesTheBacklog(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-p", "h-p")
	c.waitRoute("m", "p", 1)
	c.waitRoute("h", "p", 1)
	lis := listenBacklog(t, c.nodes["p"])
	m, h := c.nodes["m"], c.nodes["h"]
	var held []net.Conn
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	held = fillBacklog(t, m, "p")
	hc, err := h.Dial(ctxT(t, 20*time.Second), "p", backlogService)
	if err != nil {
		t.Fatalf("h's circuit to a backlog m filled: %v", err)
	}
	defer hc.Close()
	if n := backlogHeld(lis, "m"); n > Backlog-backlogReserve {
		t.Fatalf("m holds %d places, more than the %d a source may while it holds %d or more", n, Backlog-backlogReserve, backlogFloor)
	}
	// The application accepts: h's circuit is among those queued.
	for i := range len(held) + 1 {
		a, err := acceptWithin(lis, 20*time.Second)
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		a.Close()
		if a.RemoteAddr().(circuit.Addr).Node == "h" {
			return
		}
	}
	t.Fatalf("h's circuit was admitted but not among the %d accepted", len(held)+1)
}

// backlogHeld is how many places of lis's backlog src, proven, holds.
func backlogHeld(lis net.Listener, src string) int {
	l := lis.(*listener)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bySource[links.ProvenSource(src)]
}

// fillBacklog has m open Backlog circuits to p's backlogService and
// returns those p accepted, at least Backlog-backlogReserve: refused
// overloaded at admission, or reset once accepted because the backlog
// had no place left for m by the time the handshake proved it. It opens them
// batch after batch, the circuits of a batch at once (fewer than the
// per-link bound on open headers being read), so that a place counted
// only after a circuit's check would let a batch pass together.
func fillBacklog(t *testing.T, m *Node, p string) []net.Conn {
	t.Helper()
	var (
		mu      sync.Mutex
		held    []net.Conn
		refused int
		failed  []error
	)
	const batch = 32
	for range Backlog / batch {
		var wg sync.WaitGroup
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := m.Dial(ctxT(t, 20*time.Second), p, backlogService)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					held = append(held, conn)
				case errors.Is(err, circuit.ErrOverloaded) || noPlaceReset(err):
					refused++
				default:
					failed = append(failed, err)
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("%s: %d circuits accepted by %s, %d refused overloaded or reset for want of a place", m.cfg.Name, len(held), p, refused)
	if len(failed) > 0 {
		t.Fatalf("%s's circuits failed: %v", m.cfg.Name, failed)
	}
	if len(held) < Backlog-backlogReserve {
		t.Fatalf("%s had %d circuits accepted, want at least %d: the attack did not run", m.cfg.Name, len(held), Backlog-backlogReserve)
	}
	return held
}

// noPlaceReset reports whether err is a circuit the destination reset,
// once accepted, with circuit.CloseUnavailable: its service's backlog had
// no place left for its source.
func noPlaceReset(err error) bool {
	var re *circuit.ResetError
	return errors.As(err, &re) && re.Code.Reason() == circuit.CloseUnavailable
}

// TestAttackForgedFirstContactsTakeTheBacklogReserve: m queues its
// Backlog-backlogReserve circuits to p's service; then f, another member
// and p's neighbour, sends backlogReserve full-handshake first messages
// to it that claim to relay for h, each naming a different made-up relay
// before f, and never sends a third message: p holds each until its
// handshake times out. Counted by their claims, each would hold a place
// of the reserve of its own and h's circuit would be refused overloaded;
// counted by the neighbour that relays them until the handshake proves a
// source, f's hold at most backlogFloor and h's circuit is admitted.
func TestAttackForgedFirstContactsTakeTheBacklogReserve(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.HeaderTimeout = time.Minute // p holds the opens while the test runs
	}
	c.build("m-p", "h-p", "f-p")
	c.waitRoute("m", "p", 1)
	c.waitRoute("h", "p", 1)
	c.waitRoute("f", "p", 1)
	listenBacklog(t, c.nodes["p"])
	m, h, f := c.nodes["m"], c.nodes["h"], c.nodes["f"]
	held := fillBacklog(t, m, "p")
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	l := f.link("p")
	accepted := 0
	for i := range backlogReserve {
		o := &circuit.Open{Dest: "p", Source: "h", Service: backlogService, Hop: 2, HopLimit: 15, Path: []string{fmt.Sprintf("x%d", i), "f"}}
		s, code, err := openByHand(ctxT(t, 10*time.Second), f, l, o, nil)
		if s != nil {
			defer s.Reset(circuit.CloseCancelled)
		}
		if err != nil {
			t.Fatalf("f's forged first contact %d: %v", i, err)
		}
		if code == circuit.Accepted {
			accepted++
		}
	}
	t.Logf("p answered %d of f's %d forged first contacts", accepted, backlogReserve)
	if accepted == 0 {
		t.Fatal("p answered none of f's forged first contacts: the attack did not run")
	}
	hc, err := h.Dial(ctxT(t, 20*time.Second), "p", backlogService)
	if err != nil {
		t.Fatalf("h's circuit to a backlog m filled and f's forged first contacts hold: %v", err)
	}
	hc.Close()
}

// TestBacklogHonestBurstLosesNone: h, alone, opens 100 circuits at once to
// p's service, whose application has not accepted yet. The backlog's
// share per source applies only to its reserve, so none of h's circuits
// is refused for the backlog: a share checked before the circuit was
// queued and counted only once it was let concurrent circuits of one
// source all pass its check, and then refused about a third of such a
// burst. The bound on open headers being read per link is raised above
// the burst so that it alone is measured.
func TestBacklogHonestBurstLosesNone(t *testing.T) {
	const burst = 100
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.MaxPendingOpens = 4 * burst
		cfg.Limits.MaxPendingOpensPerLink = 2 * burst
	}
	c.build("h-p")
	c.waitRoute("h", "p", 1)
	lis := listenBacklog(t, c.nodes["p"])
	h := c.nodes["h"]
	// A first circuit, so that p holds h's key and the burst opens with
	// one-message handshakes.
	if e, err := h.Dial(ctxT(t, 20*time.Second), "p", EchoService); err != nil {
		t.Fatal(err)
	} else {
		e.Close()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		errs  []error
	)
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := h.Dial(ctxT(t, 60*time.Second), "p", backlogService)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			conns = append(conns, conn)
		}()
	}
	wg.Wait()
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	t.Logf("h's burst of %d: %d queued, %d refused", burst, len(conns), len(errs))
	for _, err := range errs {
		if strings.Contains(err.Error(), "waiting to be accepted") || errors.Is(err, circuit.ErrOverloaded) {
			t.Errorf("refused for the backlog: %v", err)
		} else {
			t.Errorf("refused: %v", err)
		}
	}
	for i := range len(conns) {
		a, err := acceptWithin(lis, 20*time.Second)
		if err != nil {
			t.Fatalf("accept %d of %d: %v", i, len(conns), err)
		}
		a.Close()
	}
	// Every place was freed once, when Accept took its circuit.
	l := lis.(*listener)
	l.mu.Lock()
	reserved, sources := l.reserved, len(l.bySource)
	l.mu.Unlock()
	if reserved != 0 || sources != 0 {
		t.Fatalf("after accepting all: %d places reserved by %d sources, want none", reserved, sources)
	}
}

// acceptWithin is lis.Accept, failing after d (the listener is then
// closed).
func acceptWithin(lis net.Listener, d time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { lis.Close() })
	defer stop()
	return lis.Accept()
}

// TestBacklogPlaceTakenWhenQueued: a place is taken, check and count in
// one step, when a circuit is queued, and the admission check counts
// nothing: a source holding its floor of a backlog down to its reserve is
// refused, another is not, and Accept frees each place once.
func TestBacklogPlaceTakenWhenQueued(t *testing.T) {
	l := &listener{service: backlogService, backlog: make(chan queued, Backlog), done: make(chan struct{}), bySource: make(map[links.SourceKey]int)}
	m, h := links.ProvenSource("m"), links.ProvenSource("h")
	for i := range Backlog - backlogReserve {
		if err := l.hasRoom(m); err != nil {
			t.Fatalf("admission %d: %v", i, err)
		}
		if l.reserved != i {
			t.Fatalf("the admission check took a place: %d taken, want %d", l.reserved, i)
		}
		if err := l.enqueue(nil, m); err != nil {
			t.Fatalf("place %d: %v", i, err)
		}
	}
	if err := l.hasRoom(m); err == nil {
		t.Fatal("admission for a source holding its floor of a backlog down to its reserve")
	}
	if err := l.enqueue(nil, m); err == nil {
		t.Fatal("place for a source holding its floor of a backlog down to its reserve")
	}
	if err := l.enqueue(nil, h); err != nil {
		t.Fatalf("place for another source: %v", err)
	}
	for i := range Backlog - backlogReserve + 1 {
		if _, err := l.Accept(); err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if l.reserved != 0 || len(l.bySource) != 0 {
		t.Fatalf("after accepting all: %d places taken by %d sources, want none", l.reserved, len(l.bySource))
	}
}
