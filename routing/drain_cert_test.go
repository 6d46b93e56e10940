package routing

import "testing"

// A neighbour's retraction of its own route is a drain only once the
// certifier covers its seqno, as any update of it is.
func TestUncertifiedPeerDrainIgnored(t *testing.T) {
	e := certEngine(t, &fakeCertifier{})
	e.LinkUp(ct0, "m", 10, false)
	recvEntries(t, e, "m", upd("m", 7, DefaultInfinity))
	if _, peer := e.Draining("m"); peer {
		t.Fatal("a retraction of m's own route at a seqno no attestation covers drained the link")
	}
	recvEntries(t, e, "m", att("m", 7, "att:m/7"), upd("m", 7, DefaultInfinity))
	if _, peer := e.Draining("m"); !peer {
		t.Fatal("m's attested retraction of its own route did not drain the link")
	}
}

// safeMove keeps the nodes behind feasible against what this node
// advertised (its feasibility distance), not against a selected metric
// that was never advertised: a move to a route at the same seqno and a
// metric above the advertised one would be refused behind.
func TestSafeMoveAgainstAdvertised(t *testing.T) {
	e := certEngine(t, &fakeCertifier{})
	o := &origin{}
	o.fdValid, o.fdSeqno, o.fdMetric = true, 5, 100
	o.advertised = true
	o.rtSeqno, o.rtMetric = 5, 300 // selected since, not advertised yet
	r := &routeEntry{seqno: 5, life: routeExpiring}
	if e.safeMove(o, r, 200) {
		t.Error("a move at the advertised seqno to metric 200 counted safe, above the advertised 100")
	}
	if !e.safeMove(o, r, 100) {
		t.Error("a move at the advertised seqno and metric counted unsafe")
	}
	r.seqno = 6
	if !e.safeMove(o, r, 1000) {
		t.Error("a move to a newer seqno than advertised counted unsafe")
	}
}
