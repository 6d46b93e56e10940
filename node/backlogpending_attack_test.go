package node

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// acceptAll has the service's application accept every circuit at once
// and close it, until lis closes.
func acceptAll(lis net.Listener) {
	for {
		a, err := lis.Accept()
		if err != nil {
			return
		}
		a.Close()
	}
}

// openPending has name, a neighbour of p, send k full-handshake first
// messages (mk makes the open of each) to p and never the third: it
// returns how many p answered accepted. The streams are reset when the
// test ends.
func openPending(t *testing.T, c *cluster, name string, k int, mk func(i int) *circuit.Open) int {
	t.Helper()
	nd := c.nodes[name]
	l := nd.link("p")
	accepted := 0
	for i := range k {
		s, code, err := openByHand(ctxT(t, 10*time.Second), nd, l, mk(i), nil)
		if s != nil {
			t.Cleanup(func() { s.Reset(circuit.CloseCancelled) })
		}
		if err != nil {
			t.Fatalf("%s's first message %d: %v", name, i, err)
		}
		if code == circuit.Accepted {
			accepted++
		}
	}
	return accepted
}

// pendingCluster is m-p, h-p and the members others, each p's neighbour,
// with a service on p whose application accepts every circuit at once.
// p waits a minute for a handshake's third message, so that the
// handshakes the test leaves unfinished stay so while it runs.
func pendingCluster(t *testing.T, others ...string) *cluster {
	t.Helper()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.HeaderTimeout = time.Minute
	}
	edges := []string{"m-p", "h-p"}
	for _, o := range others {
		edges = append(edges, o+"-p")
	}
	c.build(edges...)
	for _, n := range append([]string{"m", "h"}, others...) {
		c.waitRoute(n, "p", 1)
	}
	lis, err := c.nodes["p"].Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go acceptAll(lis)
	return c
}

// TestAttackFiveMembersPendingHandshakes: m and four other members, each
// with its own certificate and no forgery, send first messages of full
// handshakes to p's service and never the third: m Backlog-backlogReserve,
// the others backlogFloor each. p's application accepts every circuit at
// once. Before, each took a place in the backlog when admitted, before
// its handshake, and held it until the handshake timed out: all Backlog
// places were held and h's circuit was refused overloaded. Now a place is
// taken only once the handshake proved the source: they hold none.
func TestAttackFiveMembersPendingHandshakes(t *testing.T) {
	c := pendingCluster(t, "a1", "a2", "a3", "a4")
	self := func(name string) func(int) *circuit.Open {
		return func(int) *circuit.Open {
			return &circuit.Open{Dest: "p", Source: name, Service: "svc", HopLimit: 15}
		}
	}
	got := openPending(t, c, "m", Backlog-backlogReserve, self("m"))
	for _, a := range []string{"a1", "a2", "a3", "a4"} {
		got += openPending(t, c, a, backlogFloor, self(a))
	}
	t.Logf("p answered %d first messages never followed by a third", got)
	if got < Backlog {
		t.Fatalf("p answered %d of the %d first messages: the attack did not run", got, Backlog)
	}
	hc, err := c.nodes["h"].Dial(ctxT(t, 20*time.Second), "p", "svc")
	if err != nil {
		t.Fatalf("h's circuit to a service whose application accepts at once: %v", err)
	}
	hc.Close()
}

// TestAttackOneMemberPendingVsHonestBurst: m, with its own certificate,
// leaves Backlog-backlogReserve full handshakes to p's service
// unfinished; p's application accepts every circuit at once; then h opens
// a burst of 20. Before, m's handshakes held their places and some of
// h's burst was refused overloaded; now none is.
func TestAttackOneMemberPendingVsHonestBurst(t *testing.T) {
	c := pendingCluster(t)
	h := c.nodes["h"]
	// p learns h's key: the burst opens with one-message handshakes.
	if e, err := h.Dial(ctxT(t, 20*time.Second), "p", EchoService); err != nil {
		t.Fatal(err)
	} else {
		e.Close()
	}
	got := openPending(t, c, "m", Backlog-backlogReserve, func(int) *circuit.Open {
		return &circuit.Open{Dest: "p", Source: "m", Service: "svc", HopLimit: 15}
	})
	if got < Backlog-backlogReserve {
		t.Fatalf("p answered %d of m's %d first messages: the attack did not run", got, Backlog-backlogReserve)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := h.Dial(ctxT(t, 20*time.Second), "p", "svc")
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			conn.Close()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("h's circuit: %v", err)
	}
}

// TestAttackRelayedPendingHandshakesFillTheBacklog: m, p's neighbour,
// sends Backlog first messages of full handshakes to p's service, each
// claiming a different made-up source that m relays for, and never the
// third; p's application accepts every circuit at once. Before, each
// held a place in the backlog, counted against m as their neighbour,
// until its handshake timed out, and h's circuit was refused; now none
// holds one.
func TestAttackRelayedPendingHandshakesFillTheBacklog(t *testing.T) {
	c := pendingCluster(t)
	got := openPending(t, c, "m", Backlog, func(i int) *circuit.Open {
		return &circuit.Open{Dest: "p", Source: fmt.Sprintf("fake%d", i), Service: "svc", Hop: 1, HopLimit: 15, Path: []string{"m"}}
	})
	t.Logf("p answered %d of m's %d first messages", got, Backlog)
	if got == 0 {
		t.Fatal("p answered none of m's first messages: the attack did not run")
	}
	hc, err := c.nodes["h"].Dial(ctxT(t, 20*time.Second), "p", "svc")
	if err != nil {
		t.Fatalf("h's circuit to a service whose application accepts at once: %v", err)
	}
	hc.Close()
}

// TestAttackPathPrefixesTakeTheBacklog: m, a router member, completes
// Backlog full handshakes to p's service as itself, each open naming a
// different made-up relay before m in its path; p's application does not
// accept. Counted by each claim, every made-up relay was a source with a
// share of the backlog's reserve, and m's circuits took all Backlog
// places: h's circuit was refused overloaded. Counted against m, proven
// by the handshake, they take at most Backlog-backlogReserve.
func TestAttackPathPrefixesTakeTheBacklog(t *testing.T) {
	c := newCluster(t, true)
	c.build("m-p", "h-p")
	c.waitRoute("m", "p", 1)
	c.waitRoute("h", "p", 1)
	lis := listenBacklog(t, c.nodes["p"])
	m := c.nodes["m"]
	l := m.link("p")
	done := 0
	for i := range Backlog {
		o := &circuit.Open{Dest: "p", Source: "m", Service: backlogService, Hop: 2, HopLimit: 15, Path: []string{fmt.Sprintf("x%d", i), "m"}, Flags: circuit.FlagSealed}
		if m.seal.Load().StatesLarge() {
			o.Flags |= circuit.FlagLargeRecords
		}
		s, err := l.OpenStream(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset(circuit.CloseCancelled) })
		b, err := o.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		ini, err := m.seal.Load().Initiate(seal.Prologue(o.Dest, o.Source, o.Service, uint16(o.Flags)), o.Dest, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, err = ini.First(b, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
		res, err := circuit.ReadResult(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != circuit.Accepted {
			continue
		}
		reply, err := circuit.ReadHandshake(s)
		if err != nil {
			t.Fatal(err)
		}
		_, third, err := ini.Finish(reply, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(third); err != nil {
			t.Fatal(err)
		}
		done++
	}
	t.Logf("m completed %d of %d handshakes", done, Backlog)
	if done < Backlog-backlogReserve {
		t.Fatalf("m completed %d handshakes, want at least %d: the attack did not run", done, Backlog-backlogReserve)
	}
	hc, err := c.nodes["h"].Dial(ctxT(t, 20*time.Second), "p", backlogService)
	if err != nil {
		t.Fatalf("h's circuit to a backlog m's made-up relays filled: %v", err)
	}
	hc.Close()
	if held := backlogHeld(lis, "m"); held > Backlog-backlogReserve {
		t.Fatalf("m holds %d places, more than the %d a source may", held, Backlog-backlogReserve)
	}
}

// TestAttackPendingHandshakesThroughAnHonestRelay: m reaches p only
// through r, an honest relay, and sends first messages of full handshakes
// to p's service through it, never the third; p's application accepts
// every circuit at once. Then h, also behind r and whose key p does not
// know (a full handshake too), opens a circuit to the service. Counted
// against r, the neighbour relaying them, until their third message, m's
// unfinished handshakes held r's share of the backlog and h's circuit was
// refused overloaded; counted only once proven, they hold nothing. r's
// bound on full handshakes it relays a second is raised so that m's
// arrive at once; it slows the attack, it does not stop it.
func TestAttackPendingHandshakesThroughAnHonestRelay(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.HeaderTimeout = time.Minute
		cfg.Limits.RelayFullHandshakesPerLink = 4 * Backlog
	}
	c.build("m-r", "h-r", "r-p")
	c.waitRoute("m", "p", 2)
	c.waitRoute("h", "p", 2)
	lis, err := c.nodes["p"].Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go acceptAll(lis)
	m := c.nodes["m"]
	l := m.link("r")
	accepted := 0
	for i := range Backlog {
		o := &circuit.Open{Dest: "p", Source: "m", Service: "svc", HopLimit: 15}
		s, code, err := openByHand(ctxT(t, 10*time.Second), m, l, o, nil)
		if s != nil {
			t.Cleanup(func() { s.Reset(circuit.CloseCancelled) })
		}
		if err != nil {
			t.Fatalf("m's first message %d: %v", i, err)
		}
		if code == circuit.Accepted {
			accepted++
		}
	}
	t.Logf("p answered %d of m's %d first messages through r", accepted, Backlog)
	if accepted < Backlog-backlogReserve {
		t.Fatalf("p answered %d of m's first messages, want at least %d: the attack did not run", accepted, Backlog-backlogReserve)
	}
	hc, err := c.nodes["h"].Dial(ctxT(t, 20*time.Second), "p", "svc")
	if err != nil {
		t.Fatalf("h's circuit through r to a service whose application accepts at once: %v", err)
	}
	hc.Close()
}
