package node

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// backlogService is a service whose application does not accept until
// the test says so.
const backlogService = "slow"

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
	lis, err := c.nodes["p"].Listen(backlogService)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	m, h := c.nodes["m"], c.nodes["h"]
	var held []net.Conn
	defer func() {
		for _, conn := range held {
			conn.Close()
		}
	}()
	// m opens them batch after batch, the circuits of a batch at once
	// (fewer than the per-link bound on open headers being read), so
	// that a place counted only after a circuit's check would let a
	// batch pass together.
	var (
		mu      sync.Mutex
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
				conn, err := m.Dial(ctxT(t, 20*time.Second), "p", backlogService)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					held = append(held, conn)
				case errors.Is(err, circuit.ErrOverloaded):
					refused++
				default:
					failed = append(failed, err)
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("m: %d circuits queued at p, %d refused overloaded", len(held), refused)
	if len(failed) > 0 {
		t.Fatalf("m's circuits failed: %v", failed)
	}
	if len(held) < Backlog-backlogReserve {
		t.Fatalf("m queued %d circuits, want at least %d: the attack did not run", len(held), Backlog-backlogReserve)
	}
	hc, err := h.Dial(ctxT(t, 20*time.Second), "p", backlogService)
	if err != nil {
		t.Fatalf("h's circuit to a backlog m filled: %v", err)
	}
	defer hc.Close()
	if len(held) > Backlog-backlogReserve {
		t.Fatalf("m queued %d circuits, more than the %d a source may while it holds %d or more", len(held), Backlog-backlogReserve, backlogFloor)
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
	lis, err := c.nodes["p"].Listen(backlogService)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
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
