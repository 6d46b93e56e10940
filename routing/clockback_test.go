package routing_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// TestRestartWithClockBackRenewsAttestation: line a - b - c - d. a's
// first life starts at epoch 5000 and signs 50 seqnos; a restarts with
// its clock behind (epoch 1000, the same first seqno, nothing kept), and
// then signs a new seqno every second for a minute (a certificate
// renewal, a new extra, requests); then the cost of link a - b changes,
// so that the route to a moves everywhere. The others held the previous
// life's last attestation, of the larger epoch, and no node sends an
// origin its own attestation (split horizon), so a never saw it: b and
// d ignored every new attestation of a for good (its certificate and
// extra never renewed), and b refused a's updates as uncertified once
// a's seqno passed the previous life's. Now b sends a the attestation it
// holds when a sends it an older one of its own, a jumps past it, and its
// attestations are taken as they come. Epoch 6000 (the clock moved
// forward) is the usual restart, for comparison.
func TestRestartWithClockBackRenewsAttestation(t *testing.T) {
	for _, ep2 := range []uint64{1000, 6000} {
		cfg := routing.Config{Certifier: plainCertifier{}}
		n := newNet(t, 1, cfg, "b", "c", "d")
		if err := n.AddNode(routing.Config{Self: "a", Seed: 1, Epoch: 5000, Certifier: cfg.Certifier}); err != nil {
			t.Fatal(err)
		}
		mustLink(t, n, "a", "b", 10)
		mustLink(t, n, "b", "c", 10)
		mustLink(t, n, "c", "d", 10)
		quiet(t, n)
		for range 50 {
			n.Engine("a").NewSeqno(n.Now)
			n.RunFor(100 * time.Millisecond)
		}
		n.RunFor(5 * time.Second)
		ps, pa, _ := n.Engine("a").Attestation("a") // the previous life's last
		pe := leadingEpoch(pa)
		n.Kill("a")
		n.RunFor(2 * time.Second)
		if err := n.AddNode(routing.Config{Self: "a", Seed: 1, Epoch: ep2, Certifier: cfg.Certifier}); err != nil {
			t.Fatal(err)
		}
		mustLink(t, n, "a", "b", 10)
		n.RunFor(5 * time.Second)
		u0 := n.Engine("b").Stats().Uncertified
		for range 60 {
			n.Engine("a").NewSeqno(n.Now)
			n.RunFor(time.Second)
		}
		n.RunFor(time.Second)
		as, aa, _ := n.Engine("a").Attestation("a")
		bs, ba, _ := n.Engine("b").Attestation("a")
		uncert := n.Engine("b").Stats().Uncertified - u0
		if err := n.SetCost("a", "b", 20); err != nil {
			t.Fatal(err)
		}
		n.RunFor(5 * time.Second)
		ds, da, _ := n.Engine("d").Attestation("a")
		de := leadingEpoch(da)
		r, ok := n.Engine("d").Lookup("a")
		t.Logf("epoch %d after 5000: the previous life signed up to %d/%d; a at %d/%d, b holds %d/%d, b refused %d of a's updates as uncertified; after the cost change d holds %d/%d, d's route %+v",
			ep2, ps, pe, as, leadingEpoch(aa), bs, leadingEpoch(ba), uncert, ds, de, r)
		if !bytes.Equal(aa, ba) {
			t.Errorf("epoch %d: a signed %d/%d, b holds %d/%d", ep2, as, leadingEpoch(aa), bs, leadingEpoch(ba))
		}
		if uncert > 0 {
			t.Errorf("epoch %d: b refused %d of a's updates as uncertified", ep2, uncert)
		}
		if de < pe || de == pe && ds <= ps {
			t.Errorf("epoch %d: d holds %d/%d, no newer than the previous life's last %d/%d", ep2, ds, de, ps, pe)
		}
		if !ok || !r.Reachable || r.Metric != 40 {
			t.Errorf("epoch %d: d's route to a is %+v (%v), want one of metric 40", ep2, r, ok)
		}
	}
}
