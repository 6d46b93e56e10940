package links

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestGateFourPrefixesCannotSpendNodeRate: four prefixes whose handshakes
// all fail, each at its own full rate (together twice the node's rate),
// for 40 s, alongside a third party starting a few handshakes a second.
// Once the node's rate is contended the four draw at most their shares of
// it, so it is never spent: the other prefix is never refused, and the
// four together get no more than the node's rate.
func TestGateFourPrefixesCannotSpendNodeRate(t *testing.T) {
	g := newGate()
	start := time.Now()
	const seconds, honestRate, attackers = 40, 4, 4
	step := time.Second / (attackers * handshakeRate)
	honestEvery := attackers * handshakeRate / honestRate
	flooded, honestRefused := 0, 0
	for i := range seconds * attackers * handshakeRate {
		now := start.Add(time.Duration(i) * step)
		attacker := udp(fmt.Sprintf("10.7.0.%d:1", 1+i%attackers)) // in turn: each at handshakeRate
		if s, err := g.enter(attacker, false, now); err == nil {
			flooded++
			s.releaseAt(now) // fails
		}
		if i%honestEvery == 0 {
			s, err := g.enter(udp("10.8.0.1:1"), false, now)
			if err != nil {
				honestRefused++
				continue
			}
			s.linked.Store(true)
			s.releaseAt(now)
		}
	}
	if honestRefused != 0 {
		t.Fatalf("%d failing prefixes at their own rate got %d handshakes in %d s and the node refused %d of another prefix's %d a second",
			attackers, flooded, seconds, honestRefused, honestRate)
	}
	if most := nodeHandshakeBurst + seconds*nodeHandshakeRate; flooded > most {
		t.Fatalf("%d prefixes got %d handshakes in %d s, more than the node's rate (%d)", attackers, flooded, seconds, most)
	}
}

// spentGate is a gate whose node-wide rate is always spent: only the
// reserve admits.
func spentGate() *gate { return newGateRate(0, 0) }

// linkedAt runs a handshake from the validated address a that proves a
// certificate of the mesh (a node named after a) and links at at, its
// slot released.
func linkedAt(t *testing.T, g *gate, a net.Addr, at time.Time) {
	t.Helper()
	s, err := g.enter(a, true, at)
	if err != nil {
		t.Fatalf("%v at %v: %v", a, at, err)
	}
	s.proveAt(a.String(), at)
	s.linked.Store(true)
	s.releaseAt(at)
}

// firstContact admits a new peer's handshake from the validated address
// a at at from g's reserve, or fails the test.
func firstContact(t *testing.T, g *gate, a net.Addr, at time.Time) *slot {
	t.Helper()
	s, err := g.enter(a, true, at)
	if err != nil {
		t.Fatalf("a new validated prefix is refused the reserve: %v", err)
	}
	return s
}

// TestGateReserveOneInFlight: a fresh prefix that answers the Retry and
// then stalls its handshake holds one reserve handshake; it cannot draw
// on the reserve again until that one ends.
func TestGateReserveOneInFlight(t *testing.T) {
	g := spentGate()
	now := time.Now()
	a := udp("10.9.0.1:1")
	s := firstContact(t, g, a, now)
	for i := 1; i <= 2*reserveHandshakeBurst; i++ {
		at := now.Add(time.Duration(i) * time.Second)
		if g.verifySourceAt(udp("10.9.0.1:2"), at) {
			t.Fatalf("a prefix with a reserve handshake in progress is sent a Retry %d s later", i)
		}
		if _, err := g.enter(udp("10.9.0.1:2"), true, at); !errors.Is(err, ErrBusy) {
			t.Fatalf("a prefix with a reserve handshake in progress drew on the reserve again %d s later: %v", i, err)
		}
	}
	// The stalled handshake times out: a failure bars the prefix for
	// failQuiet.
	end := now.Add(5 * time.Second)
	s.releaseAt(end)
	if _, err := g.enter(a, true, end.Add(failQuiet/2)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a prefix whose handshake just failed drew on the reserve: %v", err)
	}
	// Another new prefix still gets in.
	if _, err := g.enter(udp("10.9.1.1:1"), true, end); err != nil {
		t.Fatalf("another new prefix is refused the reserve: %v", err)
	}
}

// TestGateReserveChurningCertifiedPrefix: a certificate holder links and
// closes again as fast as the gate lets it, for 10 s, while the node's
// rate is spent. It gets at most its own share of the reserve.
func TestGateReserveChurningCertifiedPrefix(t *testing.T) {
	g := spentGate()
	start := time.Now()
	const seconds = 10
	got := 0
	for i := range seconds * handshakeRate {
		now := start.Add(time.Duration(i) * time.Second / handshakeRate)
		s, err := g.enter(udp("10.10.0.1:1"), true, now)
		if err != nil {
			continue
		}
		got++
		s.proven.Store(true)
		s.linked.Store(i%2 == 0) // some link, some fail after proving
		s.releaseAt(now)
	}
	if most := prefixReserveBurst + seconds*prefixReserveRate; got > most || got == 0 {
		t.Fatalf("a churning certificate holder got %d reserve handshakes in %d s, want 1..%d", got, seconds, most)
	}
	// The reserve stays for others.
	if _, err := g.enter(udp("10.10.1.1:1"), true, start.Add(seconds*time.Second)); err != nil {
		t.Fatalf("a new prefix is refused the reserve after one prefix churned: %v", err)
	}
}

// TestGateSpoofedInitialsLeaveNoState: while the node's rate and the
// reserve admit nothing new, first packets from 5000 spoofed addresses
// are refused and leave the prefix table empty; an honest new prefix is
// then admitted once the reserve has a token.
func TestGateSpoofedInitialsLeaveNoState(t *testing.T) {
	g := spentGate()
	now := time.Now()
	g.reserve.Tokens, g.reserve.Last = 0, now
	for i := range 5000 {
		a := udp(fmt.Sprintf("10.%d.%d.%d:1", 20+i/65536, i/256%256, i%256))
		if _, err := g.enter(a, i%2 == 0, now); !errors.Is(err, ErrBusy) {
			t.Fatalf("spoofed first packet %d: %v, want ErrBusy", i, err)
		}
	}
	g.mu.Lock()
	n := len(g.prefixes)
	g.mu.Unlock()
	if n != 0 {
		t.Fatalf("refused first packets left %d prefixes in the gate's table", n)
	}
	if _, err := g.enter(udp("192.0.2.1:1"), true, now.Add(time.Second)); err != nil {
		t.Fatalf("an honest new prefix is refused after the spoofed flood: %v", err)
	}
}

// TestGateMemberAbortKeepsReserve: while only the reserve admits, a
// prefix that proved a certificate has handshakes of its own end before
// proving anything: one its peer gave up on (QUIC retransmits a first
// packet, and a copy the node admits after refusing the other holds a
// slot until the handshake timeout, its peer gone). Its next handshakes,
// while that one is held and for failQuiet after it timed out, still draw
// on the reserve, as does one started while its linked handshake's slot
// is still held (the link being adopted). A stranger's prefix whose
// handshake ended the same way is barred for failQuiet.
func TestGateMemberAbortKeepsReserve(t *testing.T) {
	g := spentGate()
	start := time.Now()
	member, stranger := udp("10.11.0.1:1"), udp("10.11.1.1:1")
	// link sets up a link from the member's prefix at at, its slot
	// released when done (or later by the caller).
	link := func(at time.Time, done bool) (*slot, error) {
		s, err := g.enter(member, true, at)
		if err != nil {
			return nil, err
		}
		s.proveAt("m", at)
		s.linked.Store(true)
		if done {
			s.releaseAt(at)
		}
		return s, nil
	}
	if _, err := link(start, true); err != nil {
		t.Fatalf("a new validated prefix is refused the reserve: %v", err)
	}
	// A linked handshake whose slot is still held.
	held, err := link(start.Add(time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := link(start.Add(2*time.Second), true); err != nil {
		t.Fatalf("a member's prefix whose linked handshake is being adopted is refused the reserve: %v", err)
	}
	held.releaseAt(start.Add(2 * time.Second))
	// The abandoned handshake: admitted, never answered.
	began := start.Add(3 * time.Second)
	orphan, err := g.enter(member, true, began)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := link(began.Add(time.Second), true); err != nil {
		t.Fatalf("a member's prefix is refused the reserve while a handshake it gave up on is held: %v", err)
	}
	end := began.Add(DefaultHandshakeTimeout)
	orphan.releaseAt(end)
	for at := end; at.Before(end.Add(failQuiet)); at = at.Add(time.Second) {
		if _, err := link(at, true); err != nil {
			t.Fatalf("a member's prefix is refused the reserve %v after a handshake it gave up on timed out: %v", at.Sub(end), err)
		}
	}
	// A stranger's prefix, the same way.
	s, err := g.enter(stranger, true, start)
	if err != nil {
		t.Fatal(err)
	}
	s.releaseAt(start.Add(DefaultHandshakeTimeout))
	if _, err := g.enter(stranger, true, start.Add(DefaultHandshakeTimeout+failQuiet/2)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a stranger's prefix drew on the reserve within failQuiet of its unproven handshake's end: %v", err)
	}
}

// floodReserve runs, on a gate whose node rate is spent, 8 prefixes
// whose handshakes all end unproven 10 ms after admission, each trying
// every 50 ms for 60 s, alongside a new honest prefix each second. With
// member, a certificate holder proved a certificate from each of the 8
// prefixes once at the start, from memberPort; the flood comes from port
// 1. It returns the flood's admissions and the honest prefixes admitted.
func floodReserve(t *testing.T, member bool, memberPort int) (flooded, honestIn int) {
	t.Helper()
	g := spentGate()
	start := time.Now()
	var flood []net.Addr
	for i := range 8 {
		flood = append(flood, udp(fmt.Sprintf("10.20.%d.1:1", i)))
		if member {
			linkedAt(t, g, udp(fmt.Sprintf("10.20.%d.1:%d", i, memberPort)), start)
		}
	}
	for ms := 1000; ms < 61000; ms += 50 {
		now := start.Add(time.Duration(ms) * time.Millisecond)
		for _, a := range flood {
			if s, err := g.enter(a, true, now); err == nil {
				flooded++
				s.releaseAt(now.Add(10 * time.Millisecond))
			}
		}
		if ms%1000 == 0 {
			if honestLinks(g, udp(fmt.Sprintf("10.30.0.%d:1", ms/1000)), fmt.Sprint("honest", ms), now) {
				honestIn++
			}
		}
	}
	return flooded, honestIn
}

// honestLinks has a new honest peer named name at addr enter g at now
// (reserve allowed), prove its certificate, link and hang up; it says
// whether the gate admitted it.
func honestLinks(g *gate, addr net.Addr, name string, now time.Time) bool {
	s, err := g.enter(addr, true, now)
	if err != nil {
		return false
	}
	s.proveAt(name, now)
	s.linked.Store(true)
	s.releaseAt(now)
	return true
}

// TestGateStrangersInMemberPrefixes: strangers behind 8 members'
// addresses (NAT) abort every reserve handshake they get. They get no
// more of the reserve than 8 strangers' own prefixes do (plus one ending
// forgiven per member's proof when they share its port too), and new
// honest prefixes still get in. Before, the members' proofs exempted
// their prefixes from the failure bar for 10 minutes: 967 admissions in
// 60 s, and no honest prefix got in.
func TestGateStrangersInMemberPrefixes(t *testing.T) {
	alone, honestAlone := floodReserve(t, false, 0)
	for _, port := range []int{2, 1} {
		shared, honest := floodReserve(t, true, port)
		t.Logf("strangers alone: %d admitted, %d of 60 honest in; behind members (member port %d): %d admitted, %d honest in",
			alone, honestAlone, port, shared, honest)
		most := alone
		if port == 1 {
			most += 8 // one forgiven ending per proof
		}
		if shared > most || honest < 58 {
			t.Fatalf("strangers behind members' addresses (member port %d) got %d reserve handshakes in 60 s (alone %d) and %d of 60 new honest prefixes got in",
				port, shared, alone, honest)
		}
	}
}

// TestGateProofForgivesOneEnding: a handshake from an address that
// proved a certificate ends unproven: it does not bar the prefix, but
// only one such ending per proof, only from that address (not another
// port of the same IP), and only within forgiveWindow of the proof.
func TestGateProofForgivesOneEnding(t *testing.T) {
	start := time.Now()
	// barred says whether the member's prefix is refused the reserve
	// after a proof from proofFrom at start and a handshake from from,
	// admitted at start+d, ending unproven a second later.
	barred := func(proofFrom, from string, d time.Duration) bool {
		g := spentGate()
		linkedAt(t, g, udp(proofFrom), start)
		at := start.Add(d)
		o, err := g.enter(udp(from), true, at)
		if err != nil {
			t.Fatalf("%s at %v: %v", from, d, err)
		}
		o.releaseAt(at.Add(time.Second))
		_, err = g.enter(udp(proofFrom), true, at.Add(2*time.Second))
		return err != nil
	}
	m := "10.12.0.1:1"
	if barred(m, m, time.Second) {
		t.Fatal("a member's retransmitted first packet ending unproven barred its prefix")
	}
	if !barred(m, "10.12.0.1:2", time.Second) {
		t.Fatal("a stranger behind the member's address (another port) was not barred")
	}
	if !barred(m, m, 2*DefaultHandshakeTimeout) {
		t.Fatal("an unproven ending long after the proof was forgiven")
	}
	// Cap: a second unproven ending from the same address.
	g := spentGate()
	linkedAt(t, g, udp(m), start)
	for i := range 2 {
		at := start.Add(time.Duration(1+i) * time.Second)
		o, err := g.enter(udp(m), true, at)
		if err != nil {
			t.Fatalf("ending %d: %v", i, err)
		}
		o.releaseAt(at)
	}
	if _, err := g.enter(udp(m), true, start.Add(3*time.Second)); !errors.Is(err, ErrBusy) {
		t.Fatalf("one proof forgave two unproven endings: %v", err)
	}
}

// TestGateForgetsMembersLast: when the prefix table is full, a new
// prefix makes the gate forget idle prefixes, those that proved no
// certificate first: a member's prefix stays a member's.
func TestGateForgetsMembersLast(t *testing.T) {
	g := unlimitedGate()
	start := time.Now()
	member := udp("10.13.0.1:1")
	linkedAt(t, g, member, start)
	for i := range maxGatePrefixes - 1 {
		s, err := g.enter(udp(fmt.Sprintf("10.14.%d.%d:1", i/256, i%256)), true, start)
		if err != nil {
			t.Fatal(err)
		}
		s.linked.Store(true)
		s.releaseAt(start)
	}
	later := start.Add(failQuiet + time.Second)
	if _, err := g.enter(udp("10.15.0.1:1"), true, later); err != nil {
		t.Fatalf("a new prefix is refused with the table full of idle prefixes: %v", err)
	}
	g.mu.Lock()
	ps := g.prefixes[SourcePrefix(member)]
	g.mu.Unlock()
	if ps == nil || !ps.member(later) {
		t.Fatal("the gate forgot a member's prefix that proved a certificate 11 s before, as idle")
	}
}

// TestGateSpoofedSourceDoesNotBarMember: a first packet with a member's
// source address (another port, or its exact IP and port), admitted
// without a validated address while the node is quiet, ends unproven at
// the handshake timeout: the member's prefix still draws on the reserve,
// and from the exact address the member's proof still forgives one of its
// own validated handshakes ending unproven.
func TestGateSpoofedSourceDoesNotBarMember(t *testing.T) {
	for _, spoof := range []string{"10.50.0.1:9999", "10.50.0.1:4433"} {
		g := newGate()
		start := time.Now()
		m := udp("10.50.0.1:4433")
		linkedAt(t, g, m, start)
		at := start.Add(time.Second)
		if g.verifySourceAt(udp(spoof), at) {
			t.Fatal("a quiet node asked a Retry")
		}
		sp, err := g.enter(udp(spoof), false, at)
		if err != nil {
			t.Fatalf("unvalidated first packet from %s refused on a quiet node: %v", spoof, err)
		}
		sp.releaseAt(at.Add(DefaultHandshakeTimeout))
		later := at.Add(DefaultHandshakeTimeout + time.Second)
		g.node.Rate, g.node.Tokens = 0, 0 // the node's rate spent by others
		o, err := g.enter(m, true, later)
		if err != nil {
			t.Fatalf("member refused the reserve after one spoofed packet from %s: %v", spoof, err)
		}
		o.releaseAt(later.Add(time.Second))
		if _, err := g.enter(m, true, later.Add(2*time.Second)); err != nil {
			t.Errorf("spoofed packet from %s used up the member's proof: its own unproven ending barred it: %v", spoof, err)
		}
	}
}

// TestGateTimeoutWhileBehindDoesNotBar: while only the reserve admits, a
// new peer's handshake times out before TLS completed while the node was
// behind (starved of CPU): the peer's prefix is not barred, its next
// handshake draws on the reserve. The same ending while the node was not
// behind bars it for failQuiet (TestGateReserveOneInFlight).
func TestGateTimeoutWhileBehindDoesNotBar(t *testing.T) {
	g := spentGate()
	start := time.Now()
	a := udp("10.60.0.1:1")
	s := firstContact(t, g, a, start)
	s.behind.Store(true)
	end := start.Add(2 * DefaultHandshakeTimeout)
	s.releaseAt(end)
	if _, err := g.enter(a, true, end.Add(time.Second)); err != nil {
		t.Fatalf("a prefix whose handshake timed out while the node was behind is refused the reserve: %v", err)
	}
	if st := g.stats(); st.Failed != 1 || st.Excused != 1 {
		t.Fatalf("handshake stats %+v, want the ending counted as failed and excused", st)
	}
}

// TestGateStallingStrangerWhileBehind: a stranger answers the Retry and
// then stalls every handshake until it times out (5 s), from one prefix,
// for 10 minutes, trying again every 100 ms, while only the reserve
// admits. When the node was behind throughout, the stranger's timeouts are
// excused at most excuseBurst at once and one a minute after: it gets no
// more reserve handshakes than on a node that was never behind plus those,
// and its excuseBurst+1st stall bars it for failQuiet.
func TestGateStallingStrangerWhileBehind(t *testing.T) {
	const span = 10 * time.Minute
	stall := func(behind bool) (admitted int, firstBar time.Duration) {
		g := spentGate()
		start := time.Now()
		a := udp("10.61.0.1:1")
		var held *slot
		var heldUntil time.Time
		for d := time.Duration(0); d < span; d += 100 * time.Millisecond {
			now := start.Add(d)
			if held != nil && !now.Before(heldUntil) {
				held.behind.Store(behind)
				held.releaseAt(heldUntil)
				held = nil
				if firstBar == 0 && !g.failedAt(a).IsZero() {
					firstBar = d
				}
			}
			if held != nil {
				continue
			}
			if s, err := g.enter(a, true, now); err == nil {
				admitted++
				held, heldUntil = s, now.Add(DefaultHandshakeTimeout)
			}
		}
		return admitted, firstBar
	}
	quick, quickBar := stall(false)
	behind, behindBar := stall(true)
	t.Logf("reserve handshakes of a stranger stalling for %v: %d on a node never behind (first barred after %v), %d on one behind throughout (after %v)",
		span, quick, quickBar, behind, behindBar)
	if most := quick + excuseBurst + int(span/excuseEvery); behind > most {
		t.Fatalf("a stranger stalling while the node was behind got %d reserve handshakes in %v, more than %d (%d never behind, plus the excuses)",
			behind, span, most, quick)
	}
	// Each stall holds its slot 5 s; the excuseBurst+1st ends after
	// (excuseBurst+1) × 5 s, with the stranger's retries 100 ms apart.
	if want := time.Duration(excuseBurst+1) * (DefaultHandshakeTimeout + 100*time.Millisecond); behindBar == 0 || behindBar > want {
		t.Fatalf("a stranger stalling while the node was behind was first barred after %v, want by %v", behindBar, want)
	}
}

// TestGateRefusesANewPrefixWhileEveryPrefixIsBusy: with the prefix table
// full of prefixes whose handshakes failed within the last 10 s (none
// idle), a new prefix is refused as full and leaves no entry; once they
// have been quiet for 10 s, it is admitted in place of one of them.
func TestGateRefusesANewPrefixWhileEveryPrefixIsBusy(t *testing.T) {
	g := unlimitedGate()
	start := time.Now()
	for i := range maxGatePrefixes {
		s, err := g.enter(udp(fmt.Sprintf("10.16.%d.%d:1", i/256, i%256)), true, start)
		if err != nil {
			t.Fatal(err)
		}
		s.releaseAt(start) // ended unproven: a failure
	}
	full := g.refusedFull.Load()
	if _, err := g.enter(udp("10.17.0.1:1"), true, start.Add(time.Second)); !errors.Is(err, ErrBusy) || g.refusedFull.Load() != full+1 {
		t.Fatalf("a new prefix with %d busy prefixes tracked: %v, want ErrBusy counted as full", maxGatePrefixes, err)
	}
	g.mu.Lock()
	n, left := len(g.prefixes), g.prefixes[SourcePrefix(udp("10.17.0.1:1"))] != nil
	g.mu.Unlock()
	if n != maxGatePrefixes || left {
		t.Fatalf("the refused prefix left the table at %d prefixes (its entry kept: %v)", n, left)
	}
	if _, err := g.enter(udp("10.17.0.1:1"), true, start.Add(failQuiet+time.Second)); err != nil {
		t.Fatalf("a new prefix once the others were quiet for 10 s: %v", err)
	}
}
