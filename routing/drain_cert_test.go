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
