package links

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func udp(s string) net.Addr {
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		panic(err)
	}
	return a
}

// unlimitedGate is a gate whose node-wide rate (and so each prefix's share
// of it) never refuses: the slot and per-prefix rules alone.
func unlimitedGate() *gate { return newGateRate(1e6, 1e6) }

// TestGateShares checks the accounting of handshake slots: a prefix keeps
// its share, borrows only idle capacity, is rate limited, and IPv6
// addresses of one /64 share one prefix.
func TestGateShares(t *testing.T) {
	g := unlimitedGate()
	// Each attempt comes 1/handshakeRate later: the rates never refuse
	// here, only the slots do (the rates are checked below).
	now := time.Now()
	next := func() time.Time { now = now.Add(time.Second / handshakeRate); return now }
	var held []*slot
	// One address borrows up to handshakeBorrow slots, then is held to
	// its share while others are busy.
	for i := 0; ; i++ {
		s, err := g.enter(udp("10.0.0.1:1000"), false, next())
		if err != nil {
			if !errors.Is(err, ErrBusy) || i != handshakeBorrow {
				t.Fatalf("attempt %d refused with %v, want ErrBusy at %d", i, err, handshakeBorrow)
			}
			break
		}
		held = append(held, s)
		if i+1 == handshakeShare/2 && !g.verifySourceAt(udp("10.0.0.1:1001"), now) {
			t.Fatal("a prefix holding half its share is not asked to validate its addresses")
		}
	}
	// One busy prefix, refused beyond its share, is refused at once
	// rather than sent a Retry, and does not make the others validate
	// their address (see verifySource).
	if g.verifySourceAt(udp("10.0.0.1:1001"), now) {
		t.Fatal("a prefix refused anyway is sent a Retry")
	}
	if g.verifySourceAt(udp("10.0.3.1:1"), now) {
		t.Fatal("one busy prefix makes peers of another validate their address")
	}
	// Other prefixes still get every remaining slot outside the
	// reserve's, each up to its share (the total is above the borrow mark
	// now).
	for i := range maxPendingHandshakes - reserveSlots - handshakeBorrow {
		ip := "10.0.1." + string(rune('1'+i/handshakeShare)) + ":1"
		s, err := g.enter(udp(ip), false, next())
		if err != nil {
			t.Fatalf("slot %d for %s: %v", i, ip, err)
		}
		held = append(held, s)
	}
	// The reserve's slots are left: a new peer is asked to validate its
	// address, refused without, and admitted from the reserve with it,
	// up to the node's bound.
	if _, err := g.enter(udp("10.0.2.1:1"), false, next()); !errors.Is(err, ErrBusy) {
		t.Fatalf("an unvalidated address took one of the reserve's slots: %v", err)
	}
	if !g.verifySourceAt(udp("10.0.2.1:1"), now) {
		t.Fatal("a new peer is not asked to validate its address when only the reserve's slots are free")
	}
	for i := range reserveSlots {
		now = now.Add(time.Second / reserveHandshakeRate)
		s, err := g.enter(udp(fmt.Sprintf("10.0.2.%d:1", i+1)), true, now)
		if err != nil {
			t.Fatalf("reserve slot %d: %v", i, err)
		}
		held = append(held, s)
	}
	now = now.Add(time.Second)
	if _, err := g.enter(udp("10.0.3.2:1"), true, now); !errors.Is(err, ErrBusy) {
		t.Fatalf("a slot beyond the node's bound: %v", err)
	}
	if g.verifySourceAt(udp("10.0.3.1:1"), now) {
		t.Fatal("a full node sends a Retry instead of refusing")
	}
	for _, s := range held {
		s.release()
		s.release() // idempotent
	}
	if st := (&QUICTransport{gate: g}).HandshakeStats(); st.InProgress != 0 || st.Failed != uint64(len(held)) || st.RefusedFull == 0 || st.RefusedShare == 0 || st.Reserved != reserveSlots {
		t.Fatalf("stats after release: %+v", st)
	}
	if g.verifySourceAt(udp("10.0.3.1:1"), next()) {
		t.Fatal("an idle node asks for address validation")
	}
	// A prefix whose handshake failed within failQuiet is held to
	// failedBurst slots, even on an idle node.
	failing := udp("10.0.1.1:2") // its handshakes above failed
	taken, shareBefore := 0, g.refusedShare.Load()
	for ; taken < handshakeShare; taken++ {
		if _, err := g.enter(failing, false, next()); err != nil {
			break
		}
	}
	if taken != failedBurst || g.refusedShare.Load() != shareBefore+1 {
		t.Fatalf("a prefix whose handshakes failed took %d slots, refused %d times for its share; want %d and 1",
			taken, g.refusedShare.Load()-shareBefore, failedBurst)
	}
	// Not handshakes that proved a certificate: honest nodes behind one
	// NAT address, one of whose handshakes failed, keep linking at the
	// prefix's rate while theirs hold slots until their links are up.
	// Before, the prefix was held to failedBurst slots of any kind.
	nat := udp("10.0.5.1:1")
	s, err := g.enter(nat, false, next())
	if err != nil {
		t.Fatal(err)
	}
	s.releaseAt(next()) // failed
	proven := 0
	for ; proven < handshakeShare; proven++ {
		s, err := g.enter(nat, false, next())
		if err != nil {
			break
		}
		s.proveAt(fmt.Sprintf("n%d", proven), next())
	}
	if proven != handshakeShare {
		t.Fatalf("a prefix with a failed handshake took %d slots for handshakes that proved a certificate, want %d (its share)", proven, handshakeShare)
	}

	// Many busy prefixes: a new peer validates its address.
	g = unlimitedGate()
	for i := range handshakeRetryAt {
		if _, err := g.enter(udp(fmt.Sprintf("10.0.4.%d:1", i/(handshakeShare/2))), false, next()); err != nil {
			t.Fatal(err)
		}
	}
	if !g.verifySourceAt(udp("10.0.3.1:1"), now) {
		t.Fatalf("a node with %d handshakes from %d prefixes does not ask new peers to validate their address",
			handshakeRetryAt, handshakeRetryAt/(handshakeShare/2))
	}

	// Rate: a burst, then handshakeRate per second. The handshakes below
	// fail at the clock's time (release), so the test's time starts again
	// from it.
	g = unlimitedGate()
	now = time.Now()
	n := 0
	for ; n < 2*handshakeBurst; n++ {
		s, err := g.enter(udp("[2001:db8::1]:1"), false, now)
		if err != nil {
			break
		}
		s.linked.Store(true) // each ends in a link
		s.release()
	}
	if n != handshakeBurst {
		t.Fatalf("%d handshakes admitted at once, want the burst %d", n, handshakeBurst)
	}
	// A prefix that holds failedBurst slots has the smaller burst.
	held = nil
	for range 2 * handshakeBurst {
		s, err := g.enter(udp("10.5.0.1:1"), false, now.Add(time.Second)) // the node's rate has refilled
		if err != nil {
			break
		}
		held = append(held, s)
	}
	if len(held) != 2*failedBurst {
		t.Fatalf("%d handshakes held at once by one prefix, want %d", len(held), 2*failedBurst)
	}
	// So has a prefix whose handshakes fail, until failQuiet.
	for _, s := range held {
		s.release()
	}
	n = 0
	for ; n < 2*handshakeBurst; n++ {
		s, err := g.enter(udp("10.5.0.1:1"), false, now.Add(2*time.Second))
		if err != nil {
			break
		}
		s.linked.Store(true)
		s.release()
	}
	if n != failedBurst {
		t.Fatalf("%d handshakes at once from a prefix whose handshakes failed, want %d", n, failedBurst)
	}
	// Another address of the same /64 shares the allowance.
	if _, err := g.enter(udp("[2001:db8::2]:1"), false, now); !errors.Is(err, ErrBusy) {
		t.Fatalf("same /64 not rate limited: %v", err)
	}
	if _, err := g.enter(udp("[2001:db8:0:1::1]:1"), false, now); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if _, err := g.enter(udp("[2001:db8::2]:1"), false, now.Add(time.Second/handshakeRate)); err != nil {
		t.Fatalf("after 1/rate second: %v", err)
	}
}

// TestGateNodeRate checks the node-wide rate: one prefix alone never
// spends it; many prefixes whose handshakes fail do, and are then refused
// without a Retry, while a validated address of a prefix without failed
// handshakes still gets in from the reserve, which is bounded too.
func TestGateNodeRate(t *testing.T) {
	g := newGate()
	now := time.Now()
	// One prefix at its own rate for two seconds (many honest nodes
	// behind one address, on a quiet node) is held only by its own rate,
	// and never spends the node's rate: the others are never refused for
	// it.
	admitted := 0
	for i := range 2 * handshakeRate {
		at := now.Add(time.Duration(i) * time.Second / handshakeRate)
		if s, err := g.enter(udp("10.1.0.1:1"), false, at); err == nil {
			admitted++
			s.linked.Store(true)
			s.release()
		}
	}
	if admitted != 2*handshakeRate {
		t.Fatalf("one prefix at its own rate got %d of %d handshakes in 2 s on a quiet node", admitted, 2*handshakeRate)
	}
	if n := g.refusedNode.Load(); n != 0 {
		t.Fatalf("one prefix at its own rate made the node refuse %d times for the node's rate", n)
	}

	// Many prefixes at once, every handshake failing: the node admits its
	// burst, then refuses them, at once rather than with a Retry.
	g = newGate()
	admitted = 0
	for i := range 4 * nodeHandshakeBurst {
		a := udp(fmt.Sprintf("10.2.%d.1:1", i))
		if i < nodeHandshakeBurst && g.verifySourceAt(a, now) {
			t.Fatalf("attempt %d of a new prefix sent a Retry before the node's rate was spent", i)
		}
		s, err := g.enter(a, false, now)
		if err != nil {
			if !errors.Is(err, ErrBusy) {
				t.Fatal(err)
			}
			continue
		}
		admitted++
		s.release() // failed: never linked
	}
	if admitted != nodeHandshakeBurst {
		t.Fatalf("%d handshakes of new prefixes admitted at once, want the node's burst %d", admitted, nodeHandshakeBurst)
	}
	failedPrefix := udp("10.2.0.1:2")
	if g.verifySourceAt(failedPrefix, now) {
		t.Fatal("a prefix whose handshake failed is sent a Retry while the node's rate is spent")
	}
	if _, err := g.enter(failedPrefix, true, now); !errors.Is(err, ErrBusy) {
		t.Fatalf("a validated address of a failing prefix drew on the reserve: %v", err)
	}
	// A new prefix is asked to validate its address, then gets in from
	// the reserve, up to its burst.
	fresh := udp("10.3.0.1:1")
	if !g.verifySourceAt(fresh, now) {
		t.Fatal("a new peer is not asked to validate its address while the node's rate is spent")
	}
	if _, err := g.enter(fresh, false, now); !errors.Is(err, ErrBusy) {
		t.Fatalf("an unvalidated address got in while the node's rate is spent: %v", err)
	}
	reserved := 0
	for i := range 2 * reserveHandshakeBurst {
		s, err := g.enter(udp(fmt.Sprintf("10.4.%d.1:1", i)), true, now)
		if err != nil {
			continue
		}
		reserved++
		s.linked.Store(true)
		s.release()
	}
	if reserved != reserveHandshakeBurst {
		t.Fatalf("%d validated handshakes from the reserve at once, want its burst %d", reserved, reserveHandshakeBurst)
	}
	st := (&QUICTransport{gate: g}).HandshakeStats()
	if st.RefusedNodeRate == 0 || st.Reserved != reserveHandshakeBurst {
		t.Fatalf("stats: %+v", st)
	}
	// A failed handshake keeps its prefix off the reserve for failQuiet.
	g.mu.Lock()
	fp := SourcePrefix(failedPrefix)
	ps := g.prefixes[fp]
	before, after := g.mayReserveLocked(fp, ps, now.Add(failQuiet-time.Second)), g.mayReserveLocked(fp, ps, now.Add(failQuiet+time.Second))
	g.mu.Unlock()
	if before || !after {
		t.Fatalf("a prefix whose handshake failed may draw on the reserve %v before failQuiet and %v after, want false and true", before, after)
	}
}
