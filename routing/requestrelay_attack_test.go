package routing

import (
	"slices"
	"testing"
	"time"
)

// requestChase returns m's attack of asking each node it is linked to,
// every call, for every origin the node routes, a seqno ahead of the one
// it holds by ahead plus the number of calls so far: each request asks
// for a seqno newer than the last, so no node takes it for one it
// forwarded already.
func (s *redMesh) requestChase(ahead uint16) func() (int, int) {
	calls := uint16(0)
	return func() (int, int) {
		calls++
		return s.sendPerOrigin(func(o string, r Route) entry {
			return entry{kind: kindRequest, origin: o, seqno: r.Seqno + ahead + calls, hopcnt: requestHopCount}
		}, nil)
	}
}

// requestChaseHops is requestChase with a hop count one larger each call
// from requestHopCount+1 on: each request would reach further than the
// one forwarded before it.
func (s *redMesh) requestChaseHops(ahead uint16) func() (int, int) {
	calls := uint16(0)
	return func() (int, int) {
		calls++
		hop := uint8(requestHopCount + int(calls)%(255-requestHopCount))
		return s.sendPerOrigin(func(o string, r Route) entry {
			return entry{kind: kindRequest, origin: o, seqno: r.Seqno + ahead + calls, hopcnt: hop}
		}, nil)
	}
}

// TestAttackChasedRequestsTravelToEveryOrigin: m, linked to three nodes
// of the 120-node mesh, asks them every triggered interval (50 ms) for a
// seqno of every origin ahead of any the origin will reach, a newer one
// each time. Each request was forwarded hop by hop to the origin, every
// 50 ms, since each asked for a seqno the last did not: the mesh carried
// 3.6 request entries for each of m's (128,200 for 35,700 in 5 s, 25,505
// messages, 1.32 MB), while the origins raise once a second whatever
// asks. A node now forwards no further request for an origin from the
// neighbour whose request it forwarded within the last 200 ms, for
// whatever seqno (another neighbour's for a newer one still goes on):
// 0.9, also when m raises the hop count of each request beyond what a
// node starts with (such a request counted as reaching further than the
// one forwarded: 3.6). Logged against m asking once a second
// (TestAttackSeqnoRequestsFanOutFromTheHub's rate).
func TestAttackChasedRequestsTravelToEveryOrigin(t *testing.T) {
	const secs = 5
	s := newRedMesh(t, 120, []string{"n000", "n040", "n080"})
	for i := 0; i < 15*200; i++ {
		s.step()
	}
	quiet := s.phaseEvery(secs*time.Second, 0, nil)
	slow := s.phaseEvery(secs*time.Second, 200, s.requestChase(1000))
	fast := s.phaseEvery(secs*time.Second, 10, s.requestChase(2000))
	grow := s.phaseEvery(secs*time.Second, 10, s.requestChaseHops(3000))
	t.Logf("%ds without m:          %v", secs, quiet)
	t.Logf("%ds, m once a second:   %v", secs, slow)
	t.Logf("%ds, m every 50 ms:     %v", secs, fast)
	t.Logf("%ds, m every 50 ms, its hop count one larger each time: %v", secs, grow)
	per := func(c redTally) float64 {
		return float64(c.requests-quiet.requests) / float64(c.mEntries)
	}
	t.Logf("request entries the mesh sent per entry of m's: %.1f (once a second), %.1f (every 50 ms), %.1f (its hop count growing); bytes of the mesh beyond the quiet run per byte of m's: %.1f, %.1f",
		per(slow), per(fast), per(grow), float64(slow.bytes-quiet.bytes)/float64(slow.mBytes), float64(fast.bytes-quiet.bytes)/float64(fast.mBytes))
	if per(fast) > 1.5 {
		t.Errorf("each request entry of m's made the mesh send %.1f request entries", per(fast))
	}
	// A hop count above what a node starts with passed as reaching
	// further than the request forwarded last: 3.6 again.
	if per(grow) > 1.5 {
		t.Errorf("raising its hop count, each request entry of m's made the mesh send %.1f request entries", per(grow))
	}
}

// TestChasedRequestsLeaveOthersTheirForward: x forwards m's request for
// a newer seqno of o, then holds back m's requests for o for 200 ms,
// however new the seqno they ask for; a's request for a newer one than
// m's forwarded goes on at once, and so do m's once the window of the
// last request forwarded (a's, then m's own) allows it.
func TestChasedRequestsLeaveOthersTheirForward(t *testing.T) {
	x, now := newXWithUpAM(t)
	mustReceive(t, x, now, "up", encodeMessage([]entry{att("o", 10, "att:o/10"), upd("o", 10, 20)}))
	x.Ready()
	var fwd []uint16 // seqnos of the requests for o x sent up
	ask := func(at time.Duration, from string, seqno uint16) {
		mustReceive(t, x, now.Add(at), from, encodeMessage([]entry{{kind: kindRequest, origin: "o", seqno: seqno, hopcnt: 10}}))
		if nt := x.NextTick(); !nt.IsZero() && !nt.After(now.Add(at)) {
			x.Tick(now.Add(at))
		}
		for _, msg := range x.Ready().Messages {
			for _, en := range decodeAll(t, []Message{msg}) {
				if msg.To == "up" && en.kind == kindRequest && en.origin == "o" {
					fwd = append(fwd, en.seqno)
				}
			}
		}
	}
	ask(0, "m", 11)
	ask(60*time.Millisecond, "m", 12)  // m's own, newer: held back
	ask(120*time.Millisecond, "m", 13) // held back
	ask(130*time.Millisecond, "a", 14) // another's, newer: forwarded
	ask(260*time.Millisecond, "m", 15) // newer, and a's was the last forwarded: forwarded
	ask(400*time.Millisecond, "m", 16) // m's own again, within 200 ms of its last: held back
	ask(470*time.Millisecond, "m", 17) // after that window: forwarded
	if want := []uint16{11, 14, 15, 17}; !slices.Equal(fwd, want) {
		t.Errorf("x forwarded requests for seqnos %v, want %v", fwd, want)
	}
}

// TestChasedRequestsForgetGoneAsker: the neighbour whose request x
// forwarded last for an origin is forgotten when its link goes down, so
// that x's origins do not keep a gone neighbour (and its tables) alive.
func TestChasedRequestsForgetGoneAsker(t *testing.T) {
	x, now := newXWithUpAM(t)
	mustReceive(t, x, now, "up", encodeMessage([]entry{att("o", 10, "att:o/10"), upd("o", 10, 20)}))
	x.Ready()
	m := x.nbrs["m"]
	mustReceive(t, x, now, "m", encodeMessage([]entry{{kind: kindRequest, origin: "o", seqno: 11, hopcnt: 10}}))
	x.Ready()
	o := x.origins.get("o")
	if xo := x.xOf(o); xo == nil || xo.fwdBy != m {
		t.Fatal("x did not record m as the asker of the request it forwarded")
	}
	x.LinkDown(now, "m")
	if xo := x.xOf(o); xo != nil && xo.fwdBy == m {
		t.Error("x keeps m as the asker of its last forwarded request after m's link went down")
	}
}
