package routing

import (
	"testing"
	"time"
)

// v1Certifier is fakeCertifier for an origin of the release before,
// which signs version 1 attestations: no epoch (read as 0), whatever its
// engine's epoch. Like hostCertifier, its verdicts are not shared.
type v1Certifier struct {
	f *fakeCertifier
	_ []byte
}

func (h v1Certifier) Attest(o string, _ uint64, s uint16) ([]byte, error) {
	return h.f.Attest(o, 0, s)
}
func (h v1Certifier) Epoch(a []byte) uint64 { return h.f.Epoch(a) }
func (h v1Certifier) Verify(o string, ep uint64, s uint16, a []byte) error {
	return h.f.Verify(o, ep, s, a)
}

// newV1Net is newReplayNet where a is an origin of the release before
// (version 1 attestations, seed aSeed) and the others sign epochs.
func newV1Net(t *testing.T, aSeed int64, names ...string) *replayNet {
	return newReplayNetWith(t, func(cfg *Config) {
		cfg.Epoch = 1_700_000_000_000
		if cfg.Self == "a" {
			cfg.Seed, cfg.Certifier, cfg.Epoch = aSeed, v1Certifier{f: &fakeCertifier{}}, 0
		}
	}, names...)
}

// TestV1OriginWrapsSeqno: line a - b - c - d, a an origin of the release
// before (version 1 attestations, epoch 0) whose seqno starts 135 short
// of 0; m (linked to d) asks for a's seqno 64 ahead of d's route once a
// second for 10 s, and a's seqno passes 0. Ordered by plain seqno, a's
// attestations after 0 read as older than the one held, at every node,
// forever: d kept a's attestation and route of 65529 while a was at 57.
// Of two attestations of epoch 0, the seqnos now compare modulo 2^16, as
// the release before compared them.
func TestV1OriginWrapsSeqno(t *testing.T) {
	n := newV1Net(t, 4167, "a", "b", "c", "d")
	n.run(10*time.Second, nil, "")
	a, d := n.eng["a"], n.eng["d"]
	s0 := a.seqno
	for range 10 {
		r, _ := d.Lookup("a")
		mustReceive(t, d, n.now, "m", encodeMessage([]entry{{kind: kindRequest, origin: "a", seqno: r.Seqno + 64, hopcnt: 127}}))
		n.run(time.Second, nil, "")
	}
	n.run(5*time.Second, nil, "")
	if a.seqno >= s0 {
		t.Fatalf("a's seqno moved from %d to %d without passing 0", s0, a.seqno)
	}
	held, _, _ := d.Attestation("a")
	r, ok := d.Lookup("a")
	t.Logf("a's seqno moved from %d to %d; d holds a's attestation of %d and a route at %d (%v)", s0, a.seqno, held, r.Seqno, ok)
	if held != a.seqno || !ok || r.Seqno != a.seqno {
		t.Errorf("a at %d: d holds its attestation of %d and a route at %d (%v), want both at %d", a.seqno, held, r.Seqno, ok, a.seqno)
	}
}

// TestAttackV1AttestationFromBeforeWrap: line a - b - c - d, a an
// origin of the release before (version 1, epoch 0) at seqno 992, and m
// linked to d. m replays a genuine attestation of a of seqno 64,528,
// 2,000 seqnos before a's current one on the circle (a signed it before
// its seqno passed 0, in a life that went round), with a route at its
// seqno, for 6 s, then leaves. Ordered by plain seqno it read as newer
// than a's current one: d took it, dropped a's routes (their seqnos are
// newer than it on the circle) and then ignored every attestation a
// signed until a's seqno would pass 64,528 again, refusing a's updates
// as uncertified: no route to a for the whole 600 s. Compared modulo
// 2^16, as the release before compared them, it is older than the one
// held and is ignored. (One that is newer on the circle, a previous
// life's of a larger seqno, is still taken, as by the release before:
// the epoch protects only origins that sign one.)
func TestAttackV1AttestationFromBeforeWrap(t *testing.T) {
	n := newV1Net(t, 207, "a", "b", "c", "d")
	n.run(10*time.Second, nil, "")
	a, d := n.eng["a"], n.eng["d"]
	s0, _, _ := a.Attestation("a")
	old := s0 - 2000
	if old < s0 {
		t.Fatalf("a at %d: %d is not past 0", s0, old)
	}
	down := n.replayThenLeave(d, "a", old, fakeAtt("a", 0, old))
	r, ok := d.Lookup("a")
	held, _, _ := d.Attestation("a")
	t.Logf("a at %d, m replayed %d: d without a route to a for %v of 600 s after m left; d now %v at seqno %d (a at %d), holding a's attestation of %d; %d uncertified",
		s0, old, down, ok, r.Seqno, a.seqno, held, d.Stats().Uncertified)
	if down > time.Second || !ok {
		t.Errorf("d had no route to a for %v after m left (reachable now: %v), want at most 1 s", down, ok)
	}
	if held == old {
		t.Errorf("d holds the attestation of %d m replayed", old)
	}
}
