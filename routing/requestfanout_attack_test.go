package routing

import (
	"fmt"
	"testing"
	"time"
)

// seqnoAllGap is answerAllGap as the tests expect it: a new seqno goes to
// every neighbour at once at most once per origin per 64 s.
const seqnoAllGap = 64 * time.Second

// fanOutTally is what one phase of fanOutRun counted.
type fanOutTally struct{ mEntries, mBytes, out, outBytes, fwd, raises int }

// fanOutRun runs the star s for secs seconds in steps of 5 ms and counts
// what h sends its neighbours other than m: seqno requests (fwd) apart
// from the other entries (out). With ask, m asks h, once a
// second, for the next seqno of each origin (one request entry each);
// with relink, m's link to h goes down and up again half a second after
// each batch of requests, so that h sends m its whole table again.
func fanOutRun(t *testing.T, s *star, origins []string, secs int, ask, relink bool) fanOutTally {
	t.Helper()
	h := s.engines["h"]
	var c fanOutTally
	bumps0 := 0
	for _, o := range origins {
		bumps0 += int(s.engines[o].Stats().SeqnoBumps)
	}
	s.sent = func(from string, msg Message) {
		if _, ok := s.engines[msg.To]; !ok || from != "h" {
			return // to m, or not from h
		}
		for _, en := range decodeAll(t, []Message{msg}) {
			if en.kind == kindRequest {
				c.fwd++ // m's requests, forwarded
			} else {
				c.out++
			}
		}
		c.outBytes += len(msg.Payload)
	}
	defer func() { s.sent = nil }()
	for step := 0; step < secs*200; step++ {
		if ask && step%200 == 0 {
			var batch []entry
			send := func() {
				p := encodeMessage(batch)
				c.mEntries += len(batch)
				c.mBytes += len(p)
				mustReceive(t, h, s.now, "m", p)
				batch = nil
			}
			for _, o := range origins {
				r, _ := h.Lookup(o)
				batch = append(batch, entry{kind: kindRequest, origin: o, seqno: r.Seqno + 1, hopcnt: 127})
				if len(batch) == DefaultMaxRoutesPerMessage {
					send()
				}
			}
			if len(batch) > 0 {
				send()
			}
		}
		if relink && step%200 == 100 {
			h.LinkDown(s.now, "m")
			h.LinkUp(s.now, "m", 10, false)
		}
		s.run(5 * time.Millisecond)
	}
	for _, o := range origins {
		c.raises += int(s.engines[o].Stats().SeqnoBumps)
	}
	c.raises -= bumps0
	return c
}

// fanOutAttack builds a star of n origins, runs it secs seconds without
// m's requests, then secs seconds with them (and m relinking with
// relink), and checks what h sent its other neighbours in the second run
// beyond the first, m's requests it forwarded aside (at most one each):
// at most one update and one attestation per origin (and m's own route)
// per neighbour per seqnoAllGap begun.
func fanOutAttack(t *testing.T, n, secs int, relink bool) {
	origins := make([]string, n)
	for i := range origins {
		origins[i] = fmt.Sprintf("o%03d", i)
	}
	s := newStar(t, origins)
	s.run(10 * time.Second)
	others := len(origins) + 1 // the origins and v

	quiet := fanOutRun(t, s, origins, secs, false, false)
	loud := fanOutRun(t, s, origins, secs, true, relink)
	t.Logf("%ds without m: h sent its other %d neighbours %d entries (%d bytes)", secs, others, quiet.out, quiet.outBytes)
	t.Logf("%ds with m's requests (relinking: %v): m sent %d request entries (%d bytes), the origins raised %d times, h forwarded %d requests and sent its other neighbours %d other entries (%d bytes in all)",
		secs, relink, loud.mEntries, loud.mBytes, loud.raises, loud.fwd, loud.out, loud.outBytes)
	if loud.fwd > loud.mEntries {
		t.Errorf("h forwarded %d requests for m's %d", loud.fwd, loud.mEntries)
	}
	if loud.raises == 0 {
		t.Fatal("no origin raised its seqno: the requests did not reach them")
	}
	if max := n * (secs + 1); loud.raises > max {
		t.Errorf("the origins raised %d times in %ds on one request each a second, want at most %d", loud.raises, secs, max)
	}
	gaps := (time.Duration(secs)*time.Second + seqnoAllGap - 1) / seqnoAllGap
	extra, max := loud.out-quiet.out, 2*(n+1)*others*int(gaps)
	t.Logf("h sent its other neighbours %d entries more than without m (bound %d): %.1f for each request entry of m's", extra, max, float64(extra)/float64(loud.mEntries))
	if extra > max {
		t.Errorf("h sent its other neighbours %d more entries with m's requests, over %d raises: more than one update and attestation per origin per neighbour per %v (%d)",
			extra, loud.raises, seqnoAllGap, max)
	}
}

// TestAttackSeqnoRequestsFanOutFromTheHub measures what one neighbour's
// seqno requests make a node send to its OTHER neighbours. m, a
// neighbour of the hub h, asks h once a second for the next seqno of each
// of the 100 origins linked to h (one request entry each, about 9 bytes).
// h forwards each to the origin, which raises its seqno (at most once a
// second: raiseSelf) and announces it. The new seqno answers a request h
// forwarded: h sends it at once to m, which asked, and to every other
// neighbour only once per origin per 64 s; the others hold the seqno they
// had (each new seqno sent to all would cost h an update and an
// attestation per neighbour, and each of them a signature check, per
// request entry of m's).
func TestAttackSeqnoRequestsFanOutFromTheHub(t *testing.T) {
	fanOutAttack(t, 100, 20, false)
}

// TestAttackRelinkRestoresSeqnoFanOut is the attack above with m's link
// to h going down and up again every second: h then sends m its whole
// table, with the new seqnos m asked for. A route sent to one neighbour
// with a new seqno alone is not queued for the others either (beyond once
// per origin per 64 s), so relinking does not bring the fan-out back.
func TestAttackRelinkRestoresSeqnoFanOut(t *testing.T) {
	fanOutAttack(t, 100, 20, true)
}

// seqnoAnswer has m ask h for the next seqno of o, then runs the star
// for d in steps of 5 ms, and returns the seqno asked for, the newest
// seqno of o h sent m (0 and false if none) and the seqno v routes to o
// at the end.
func seqnoAnswer(t *testing.T, s *star, o string, d time.Duration) (asked, toM uint16, gotM bool, atV uint16) {
	t.Helper()
	h, v := s.engines["h"], s.engines["v"]
	r, _ := h.Lookup(o)
	asked = r.Seqno + 1
	mustReceive(t, h, s.now, "m", encodeMessage([]entry{{kind: kindRequest, origin: o, seqno: asked, hopcnt: 127}}))
	s.sent = func(_ string, msg Message) {
		if _, ok := s.engines[msg.To]; ok {
			return
		}
		for _, en := range decodeAll(t, []Message{msg}) {
			if en.kind == kindUpdate && en.origin == o && en.metric < DefaultInfinity && (!gotM || seqnoLess(toM, en.seqno)) {
				toM, gotM = en.seqno, true
			}
		}
	}
	defer func() { s.sent = nil }()
	s.run(d)
	rv, ok := v.Lookup(o)
	if !ok {
		t.Fatalf("v has no route to %s", o)
	}
	return asked, toM, gotM, rv.Seqno
}

// TestSeqnoAnswerReachesAllOncePerGap: m, a neighbour of h, asks h for
// the next seqno of o0 three times. The first answer reaches m and h's
// other neighbour v within 25 ms, as in RFC 8966 §3.8.1.2. The second, 2 s later, reaches m within 25 ms
// too, but not v, which keeps routing at the seqno it had. The third,
// asked 65 s after the first, reaches both within 25 ms again.
func TestSeqnoAnswerReachesAllOncePerGap(t *testing.T) {
	origins := []string{"o0", "o1", "o2"}
	s := newStar(t, origins)
	s.run(10 * time.Second)
	const within = 25 * time.Millisecond
	t0 := s.now

	asked, toM, gotM, atV := seqnoAnswer(t, s, "o0", within)
	t.Logf("first request (seqno %d): m got %d (%v), v routes at %d", asked, toM, gotM, atV)
	if !gotM || seqnoLess(toM, asked) {
		t.Errorf("first request: m got no answer within %v (newest seqno %d, %v; asked %d)", within, toM, gotM, asked)
	}
	if seqnoLess(atV, asked) {
		t.Errorf("first request: v routes to o0 at seqno %d after %v, not at the new seqno %d", atV, within, asked)
	}
	first := atV

	s.run(2 * time.Second)
	asked, toM, gotM, atV = seqnoAnswer(t, s, "o0", within)
	t.Logf("second request, 2 s later (seqno %d): m got %d (%v), v routes at %d", asked, toM, gotM, atV)
	if !gotM || seqnoLess(toM, asked) {
		t.Errorf("second request: m got no answer within %v (newest seqno %d, %v; asked %d)", within, toM, gotM, asked)
	}
	s.run(3 * time.Second)
	if r, _ := s.engines["v"].Lookup("o0"); r.Seqno != first {
		t.Errorf("second request: v, which did not ask, routes to o0 at seqno %d 3 s later, want the one it had (%d)", r.Seqno, first)
	}

	s.run(t0.Add(seqnoAllGap + time.Second).Sub(s.now))
	asked, toM, gotM, atV = seqnoAnswer(t, s, "o0", within)
	t.Logf("third request, %v after the first (seqno %d): m got %d (%v), v routes at %d", s.now.Sub(t0), asked, toM, gotM, atV)
	if !gotM || seqnoLess(toM, asked) {
		t.Errorf("third request: m got no answer within %v (newest seqno %d, %v; asked %d)", within, toM, gotM, asked)
	}
	if seqnoLess(atV, asked) {
		t.Errorf("third request, %v after the first: v routes to o0 at seqno %d after %v, not at the new seqno %d", s.now.Sub(t0), atV, within, asked)
	}
}

// TestSeqnoHoldsForgetDeadNeighbour: the neighbours h holds a newer
// seqno for (or forwarded a request of) are dropped when their link goes
// down, so that a neighbour of the same name linked again is a new entry,
// and every entry goes when the origin becomes unreachable. No origin
// holds more entries than h has neighbours.
func TestSeqnoHoldsForgetDeadNeighbour(t *testing.T) {
	origins := []string{"o0", "o1", "o2"}
	s := newStar(t, origins)
	s.run(10 * time.Second)
	h := s.engines["h"]
	holders := func(o string) []*neighbour {
		x := h.xOf(h.origins.get(o))
		if x == nil {
			return nil
		}
		var out []*neighbour
		for _, hd := range x.holds {
			out = append(out, hd.nb)
		}
		return out
	}
	// Twice, 2 s apart: the second answer goes to m alone, which then
	// holds a newer seqno than v.
	seqnoAnswer(t, s, "o0", time.Second)
	s.run(time.Second)
	seqnoAnswer(t, s, "o0", time.Second)
	old := h.nbrs["m"]
	if hs := holders("o0"); len(hs) != 1 || hs[0] != old {
		t.Fatalf("after m's second request: o0 held for %v, want m alone", hs)
	}
	h.LinkDown(s.now, "m")
	for _, o := range append(origins, "v") {
		for _, nb := range holders(o) {
			if nb == old {
				t.Fatalf("%s still names m's neighbour entry after its link went down", o)
			}
		}
	}
	h.LinkUp(s.now, "m", 10, false)
	s.run(time.Second)
	seqnoAnswer(t, s, "o0", time.Second)
	s.run(time.Second)
	seqnoAnswer(t, s, "o0", time.Second)
	hs := holders("o0")
	if len(hs) != 1 || hs[0] != h.nbrs["m"] || hs[0] == old {
		t.Fatalf("after m linked again and asked: o0 held for %v, want the new entry of m alone", hs)
	}
	for _, o := range append(origins, "v") {
		if n := len(holders(o)); n > len(h.nbrs) {
			t.Errorf("%s holds %d entries for %d neighbours", o, n, len(h.nbrs))
		}
	}
	h.LinkDown(s.now, "o0")
	if hs := holders("o0"); len(hs) != 0 {
		t.Errorf("o0 unreachable: still held for %d neighbours", len(hs))
	}
}
