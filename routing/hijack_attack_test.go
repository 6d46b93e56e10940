package routing_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// rawEntry is one routing entry as an attacker encodes it from the wire
// format (routing/wire.go, docs/PROTOCOL.md §2).
type rawEntry struct {
	kind   byte // 1 update, 2 request, 3 attestation, 6 attested update
	origin string
	seqno  uint16
	metric uint32
	hops   uint16
	att    []byte
}

func rawMessage(version byte, es ...rawEntry) []byte {
	b := []byte{version}
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	for _, e := range es {
		b = append(b, e.kind, byte(len(e.origin)))
		b = append(b, e.origin...)
		b = binary.BigEndian.AppendUint16(b, e.seqno)
		switch e.kind {
		case 1, 6:
			b = binary.BigEndian.AppendUint32(b, e.metric)
			b = binary.BigEndian.AppendUint16(b, e.hops)
			if e.kind == 1 {
				break
			}
			fallthrough
		case 3:
			b = binary.BigEndian.AppendUint16(b, uint16(len(e.att)))
			b = append(b, e.att...)
		}
	}
	return b
}

// hijackMessages are every form in which neighbour m, a member with a
// valid certificate of its own (its key signs attestations), can advertise
// origin at distance 0 (and 1, one hop) under a seqno past the one the
// origin signed last (signed): bare updates, b's real attestation of
// signed replayed for the newer seqno, one m signed itself, each as an
// attestation followed by the update (version 3) and as an attested
// update (version 4); and distance 0 at the signed seqno itself.
func hijackMessages(origin string, signed uint16) [][]byte {
	real, _ := testCertifier.Attest(origin, 0, signed)
	var out [][]byte
	for _, seqno := range []uint16{signed + 1, signed + 10, signed + 0x7fff} {
		own := append(make([]byte, 8), ed25519.Sign(testCertifier.key("m"), attestMsg(origin, 0, seqno))...) // epoch 0
		for _, d := range []struct {
			metric uint32
			hops   uint16
		}{{0, 0}, {1, 1}} {
			upd := rawEntry{kind: 1, origin: origin, seqno: seqno, metric: d.metric, hops: d.hops}
			out = append(out, rawMessage(3, upd))
			for _, att := range [][]byte{real, own} {
				out = append(out,
					rawMessage(3, rawEntry{kind: 3, origin: origin, seqno: seqno, att: att}, upd),
					rawMessage(4, rawEntry{kind: 6, origin: origin, seqno: seqno, metric: d.metric, hops: d.hops, att: att}))
			}
		}
	}
	return append(out, rawMessage(3, rawEntry{kind: 1, origin: origin, seqno: signed, metric: 0, hops: 0}))
}

// TestAttackRefusedHijackLeavesRouteAlone: m, a neighbour of a with a
// valid certificate of its own, advertises b (reached from a through c)
// at distance 0 and 1 under newer seqnos in every form it can produce,
// every round for 10 s, through periodic refreshes and route expiries
// (a advertises b to m, so a holds a feasibility distance for b). Refused, the advertisements must cost a nothing: at every round a
// routes to b through c at the honest metric, and a reports no change of
// its route to b at all (no peer-down, no next hop moved and back), so
// no refused advertisement was selected and withdrawn, or made the route
// through c unfeasible, even for a moment.
func TestAttackRefusedHijackLeavesRouteAlone(t *testing.T) {
	cfg := routing.Config{Certifier: testCertifier, UpdateInterval: time.Second}
	n := newNet(t, 3, cfg, "a", "b", "c")
	mustLink(t, n, "a", "c", 100)
	mustLink(t, n, "c", "b", 100)
	n.Do("a", func(e *routing.Engine) { e.LinkUp(n.Now, "m", 10, false) })
	quiet(t, n)
	n.RunFor(3 * time.Second)
	a := n.Engine("a")
	want, ok := a.Lookup("b")
	if !ok || want.NextHop != "c" || want.Metric != 200 {
		t.Fatalf("before the attack a routes to b as %+v, want via c at metric 200", want)
	}
	var changes []string
	n.OnEvent = func(node string, ev routing.Event) {
		if node == "a" && ev.Dest == "b" {
			changes = append(changes, fmt.Sprintf("%v %+v", ev.Kind, ev.Route))
		}
	}
	before := a.Stats()
	for round := range 200 {
		signed, _ := a.Lookup("b")
		n.Do("a", func(e *routing.Engine) {
			for _, p := range hijackMessages("b", signed.Seqno) {
				if err := e.Receive(n.Now, "m", p); err != nil {
					t.Fatalf("round %d: a refused m's message: %v", round, err)
				}
			}
		})
		n.StepRound()
		if r, ok := a.Lookup("b"); !ok || r.NextHop != "c" || r.Metric != want.Metric {
			t.Fatalf("round %d of the attack: a routes to b as %+v, want via c at metric %d", round, r, want.Metric)
		}
		if len(changes) > 0 {
			t.Fatalf("round %d of the attack: a's route to b changed %d times, first %v", round, len(changes), changes[:min(2, len(changes))])
		}
	}
	st := a.Stats()
	t.Logf("200 rounds (10 s): uncertified updates %d, bad attestations %d, throttled %d, implausible %d",
		st.Uncertified-before.Uncertified, st.BadAttestations-before.BadAttestations,
		st.ThrottledAttestations-before.ThrottledAttestations, st.Implausible-before.Implausible)
	if st.Uncertified == before.Uncertified || st.BadAttestations == before.BadAttestations || st.Implausible == before.Implausible {
		t.Fatal("a did not process the attack (no uncertified update, bad attestation or implausible update counted)")
	}
	if r, _ := n.Engine("c").Lookup("b"); r.NextHop != "b" {
		t.Fatalf("c routes to b as %+v", r)
	}
}

// TestHonestCostRisePastFeasibilityKeepsRoute: what a node does see
// without any attacker. a reaches b only through c and advertises b to
// its other neighbour d, so it holds a feasibility distance for b (200).
// When c-b's cost rises from 100 to 250, c's update (b at 250, same
// seqno) is unfeasible at a (docs/PROTOCOL.md §2.3, Feasibility), but
// within half of a's feasibility distance above it: a keeps its route
// through c, at metric 350 at once, and its request draws b's new seqno,
// which makes the route feasible again. (Before routes were kept, a had
// no route to b for 4 rounds of 10 ms, a request round trip.)
func TestHonestCostRisePastFeasibilityKeepsRoute(t *testing.T) {
	cfg := routing.Config{Certifier: testCertifier}
	n := newNet(t, 5, cfg, "a", "b", "c", "d")
	n.Step = 10 * time.Millisecond
	mustLink(t, n, "a", "c", 100)
	mustLink(t, n, "c", "b", 100)
	mustLink(t, n, "a", "d", 100)
	quiet(t, n)
	a := n.Engine("a")
	before, ok := a.Lookup("b")
	if !ok || before.NextHop != "c" || before.Metric != 200 {
		t.Fatalf("a routes to b as %+v, want via c at metric 200", before)
	}
	if err := n.SetCost("c", "b", 250); err != nil {
		t.Fatal(err)
	}
	for round := 1; ; round++ {
		if round > 20 {
			t.Fatalf("b's seqno did not move past %d at a after %d rounds of %v", before.Seqno, round-1, n.Step)
		}
		n.StepRound()
		r, ok := a.Lookup("b")
		if !ok || r.NextHop != "c" {
			t.Fatalf("round %d: a routes to b as %+v, want via c throughout", round, r)
		}
		if r.Metric == 350 && r.Seqno != before.Seqno {
			t.Logf("a kept its route to b; at metric 350 and seqno %d (was %d) after %d rounds of %v", r.Seqno, before.Seqno, round, n.Step)
			return
		}
	}
}
