package routing

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// paddedCertifier issues attestations of the size a real one has (it
// carries the origin's certificate): fakeAtt followed by padding. It
// accepts exactly those it issues.
type paddedCertifier struct{ pad int }

func (c *paddedCertifier) Attest(origin string, epoch uint64, seqno uint16) ([]byte, error) {
	b := fakeAtt(origin, 0, seqno)
	return append(b, bytes.Repeat([]byte{'#'}, c.pad)...), nil
}

func (c *paddedCertifier) Epoch([]byte) uint64 { return 0 }

func (c *paddedCertifier) Verify(origin string, epoch uint64, seqno uint16, att []byte) error {
	want, _ := c.Attest(origin, epoch, seqno)
	if !bytes.Equal(att, want) {
		return errors.New("forged")
	}
	return nil
}

// TestHubNeighbourAttestationRecordBounded: h has more neighbours than
// its per-origin masks hold (maskSlots), so what each of the others holds
// of h's attestations is kept per neighbour by name (attSent). Certified
// origins come and go behind h (nodes that join, are advertised to every
// neighbour, leave, and are forgotten two expiry periods later), as in a
// long-lived mesh where names change (restarts under new names). The
// table stays within MaxRoutes. h's record for its long-lived link to
// far kept every name h ever advertised, each key part of an attestation
// and keeping it alive: after 1,200 names it held 1,201 (the heap grew
// by 1,987 KiB) for a table of 34 destinations. An origin's entries now
// go with it, their keys copied: 1 (h itself), the heap 168 KiB more.
func TestHubNeighbourAttestationRecordBounded(t *testing.T) {
	const (
		maxRoutes = 64
		batch     = 30 // origins per message: an attestation and an update each
		rounds    = 40 // 1,200 names in all
		attPad    = 1500
	)
	c := &paddedCertifier{pad: attPad}
	h, err := New(Config{Self: "h", Certifier: c, MaxRoutes: maxRoutes})
	if err != nil {
		t.Fatal(err)
	}
	now := ct0
	h.LinkUp(now, "src", 10, false)
	for i := range maskSlots {
		h.LinkUp(now, fmt.Sprintf("n%02d", i), 10, false)
	}
	h.LinkUp(now, "far", 10, false)
	far := h.nbrs["far"]
	if far.slot < maskSlots {
		t.Fatalf("far has slot %d, below maskSlots %d", far.slot, maskSlots)
	}
	drain := func() {
		for h.HasReady() {
			h.Ready()
		}
	}
	// run ticks h until d has passed, at every NextTick.
	run := func(d time.Duration) {
		end := now.Add(d)
		for {
			next := h.NextTick()
			if next.IsZero() || next.After(end) {
				break
			}
			if next.After(now) {
				now = next
			}
			h.Tick(now)
			drain()
		}
		now = end
		h.Tick(now)
		drain()
	}
	run(time.Second)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for r := range rounds {
		var up, down []entry
		for i := range batch {
			name := fmt.Sprintf("node-%d-%d", r, i)
			a, _ := c.Attest(name, 0, 1)
			up = append(up, entry{kind: kindAttest, origin: name, seqno: 1, att: a}, upd(name, 1, 10))
			down = append(down, upd(name, 1, h.cfg.Infinity))
		}
		mustReceive(t, h, now, "src", encodeMessage(up))
		run(time.Second) // advertised to every neighbour, far included
		mustReceive(t, h, now, "src", encodeMessage(down))
		run(2*h.cfg.RouteExpiry + 5*time.Second) // lost, then forgotten
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	n := len(far.attSent)
	t.Logf("after %d names came and went: table %d destinations, h's record for far %d names (the others' masks: none held), heap +%d KiB",
		rounds*batch, h.origins.len(), n, held>>10)
	if h.origins.len() > maxRoutes {
		t.Fatalf("table holds %d destinations, MaxRoutes %d", h.origins.len(), maxRoutes)
	}
	if limit := maxRoutes + 1; n > limit {
		t.Fatalf("h records %d names of attestations held by far, its neighbour beyond maskSlots, for a table of %d destinations (MaxRoutes %d): "+
			"the record grows with every origin ever advertised, each entry keeping a %d-byte attestation alive",
			n, h.origins.len(), maxRoutes, attPad)
	}
	runtime.KeepAlive(h)
}

// TestHealReachesNeighbourBeyondMasks: origin x, linked to hub h only,
// is cut off long enough for h and h's neighbours to forget it, then
// links to h again with the attestation it held (nothing asked it for a
// newer seqno meanwhile). h's neighbours low and far, one within the
// per-origin masks (maskSlots) and one beyond them, must both reach x
// again within half a second of the heal (ten triggered intervals). low
// did in 10 ms; far took 1.03 s: h's record of the attestation it sent
// far before the cut outlived x's table entry and matched its seqno, so
// h sent far the route without it, far refused it as uncertified, and
// only the next summary repaired it. The record now goes with the entry,
// and far reaches x in 10 ms too, refusing nothing.
func TestHealReachesNeighbourBeyondMasks(t *testing.T) {
	s := &star{t: t, engines: map[string]*Engine{}, now: ct0}
	for _, name := range []string{"h", "low", "far", "x"} {
		e, err := New(Config{Self: name, Certifier: hostCertifier{f: &fakeCertifier{}}})
		if err != nil {
			t.Fatal(err)
		}
		s.engines[name] = e
		s.order = append(s.order, name)
	}
	h, low, far, x := s.engines["h"], s.engines["low"], s.engines["far"], s.engines["x"]
	link := func(a, b string) {
		s.engines[a].LinkUp(s.now, b, 10, false)
		s.engines[b].LinkUp(s.now, a, 10, false)
	}
	link("h", "x")
	link("h", "low")
	for i := range maskSlots {
		h.LinkUp(s.now, fmt.Sprintf("n%02d", i), 10, false) // neighbours without an engine here
	}
	link("h", "far")
	if slot := h.nbrs["far"].slot; slot < maskSlots {
		t.Fatalf("far has slot %d at h, below maskSlots %d", slot, maskSlots)
	}
	if slot := h.nbrs["low"].slot; slot >= maskSlots {
		t.Fatalf("low has slot %d at h, not below maskSlots %d", slot, maskSlots)
	}
	s.run(10 * time.Second)
	for _, v := range []*Engine{low, far} {
		if _, ok := v.Lookup("x"); !ok {
			t.Fatalf("before the cut: %s has no route to x", v.cfg.Self)
		}
	}
	seq := x.seqno
	h.LinkDown(s.now, "x")
	x.LinkDown(s.now, "h")
	s.run(2*h.cfg.RouteExpiry + 10*time.Second)
	for _, v := range []*Engine{h, low, far} {
		if v.Known("x") {
			t.Fatalf("%s still knows x %v after the cut", v.cfg.Self, 2*h.cfg.RouteExpiry+10*time.Second)
		}
	}
	if x.seqno != seq {
		t.Logf("x's seqno moved from %d to %d while cut off", seq, x.seqno)
	}
	link("h", "x")
	start := s.now
	reached := map[string]time.Duration{}
	for s.now.Sub(start) < 3*h.cfg.UpdateInterval {
		s.run(5 * time.Millisecond)
		for _, v := range []*Engine{low, far} {
			if _, ok := reached[v.cfg.Self]; !ok {
				if _, ok := v.Lookup("x"); ok {
					reached[v.cfg.Self] = s.now.Sub(start)
				}
			}
		}
	}
	t.Logf("after the heal: low reached x in %v, far in %v (far's refused uncertified updates: %d)",
		reached["low"], reached["far"], far.Stats().Uncertified)
	for _, name := range []string{"low", "far"} {
		d, ok := reached[name]
		if !ok || d > 500*time.Millisecond {
			t.Errorf("%s (slot %d at h) reached x %v after the heal (ok %v), want within 500ms; low took %v",
				name, h.nbrs[name].slot, d, ok, reached["low"])
		}
	}
}

// TestNewLifeAttestationNotTakenAsHeld: origin x, behind src, starts a
// new life (a newer epoch) and signs the seqno its previous life did. h
// takes the new attestation; low, within the per-origin masks
// (maskSlots), and far, beyond them, hold only the previous life's, sent
// them by h at the same seqno. h's record for far compared the seqno
// alone and took far as holding the new one, so x's next update would go
// to far without it; low's mask bit was cleared with the new attestation.
// The record now holds the epoch as well, and neither is taken as
// holding it.
func TestNewLifeAttestationNotTakenAsHeld(t *testing.T) {
	h := newEngine(t, Config{Self: "h", Certifier: &fakeCertifier{}})
	now := ct0
	h.LinkUp(now, "src", 10, false)
	h.LinkUp(now, "low", 10, false)
	for i := range maskSlots {
		h.LinkUp(now, fmt.Sprintf("n%02d", i), 10, false)
	}
	h.LinkUp(now, "far", 10, false)
	if slot := h.nbrs["far"].slot; slot < maskSlots {
		t.Fatalf("far has slot %d, below maskSlots %d", slot, maskSlots)
	}
	life := func(epoch uint64) {
		en := entry{kind: kindAttest, origin: "x", seqno: 5, att: fakeAtt("x", epoch, 5)}
		mustReceive(t, h, now, "src", encodeMessage([]entry{en, upd("x", 5, 10)}))
		now = now.Add(time.Second)
		h.Tick(now)
		h.Ready()
	}
	life(0)
	o := h.origins.get("x")
	for _, to := range []string{"low", "far"} {
		if !h.attHeld(h.nbrs[to], o) {
			t.Fatalf("h did not send %s x's attestation of its first life", to)
		}
	}
	life(1)
	for _, to := range []string{"low", "far"} {
		if h.attHeld(h.nbrs[to], o) {
			t.Errorf("h takes %s (slot %d) as holding x's attestation of its new life, sent only that of its first life at the same seqno",
				to, h.nbrs[to].slot)
		}
	}
}
