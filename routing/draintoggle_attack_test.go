package routing

import "testing"

// TestAttackMemberDrainToggleDrawsMeshWork: n050, a member of the
// 120-node mesh that routes honestly, says on its four links that it
// drains them (its own route retracted at its seqno) and, 50 ms later,
// that it no longer does, every update interval (4 s), for a minute.
// Each drain taken makes its neighbours ask every origin routed through
// it for a newer seqno; the origins raise and sign, and the new seqnos
// travel with the drain's penalty to every node behind, which checks
// them. Taken once per update interval, that went on as long as n050
// kept it up: 32 drains taken, 252 raises and 7,496 signature checks in
// the mesh in the first 30 s, 28, 187 and 3,385 in the next (60 entries
// of n050's in 30 s, 1,020 bytes). A drain coming as soon as the last
// gap ran out now doubles the gap, up to about 4 minutes: 16 drains
// taken, 204 raises and 7,133 checks in the first 30 s, then 0, 4 and
// 212.
func TestAttackMemberDrainToggleDrawsMeshWork(t *testing.T) {
	s := newRedMesh(t, 120, nil)
	for i := 0; i < 15*200; i++ {
		s.step()
	}
	const a = "n050"
	ea := s.engines[a]
	nbrs := ea.Neighbours()
	own := func(metric Metric) {
		p := encodeMessage([]entry{{kind: kindUpdate, origin: a, seqno: ea.seqno, metric: metric, hops: 0}})
		for _, x := range nbrs {
			if err := s.engines[x].Receive(s.now, a, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := 0 // of 5 ms
	half := func() (raises, checks, taken int) {
		r0, c0 := s.counters()
		for range 30 * 200 {
			switch steps % (4 * 200) {
			case 0:
				own(DefaultInfinity)
				for _, x := range nbrs {
					if _, peer := s.engines[x].Draining(a); peer {
						taken++
					}
				}
			case 10:
				own(0)
			}
			s.step()
			steps++
		}
		r1, c1 := s.counters()
		return r1 - r0, c1 - c0, taken
	}
	r1, c1, d1 := half()
	r2, c2, d2 := half()
	t.Logf("first 30 s: %d drains of %s's taken by its %d neighbours, %d raises, %d signature checks in the mesh", d1, a, len(nbrs), r1, c1)
	t.Logf("next 30 s:  %d drains taken, %d raises, %d signature checks", d2, r2, c2)
	if c2*4 > c1 {
		t.Errorf("%s toggling a drain every 4 s made the mesh check %d signatures in its second 30 s against %d in the first: its drains are taken as often as at the start", a, c2, c1)
	}
	if c1 == 0 {
		t.Fatalf("the first drains of %s drew no checks in the mesh: the test no longer measures what it should", a)
	}
}
